"""Risk level of a checked track from its catalog matches, with one reason per match.

Thresholds (calibrated with `tunesmith eval similarity` on a generated catalog; see the report
in the eval command's output):
- fingerprint: a copied stretch (a run of ≥ 3.8 s, what a ≥ 5 s excerpt leaves) with mean
  bit-error rate ≤ 0.15 is the same recording → block. 5-6.5 s excerpts through MP3/gain/10 dB
  noise measured 0.02-0.15 (mostly ≤ 0.10); unrelated audio ~0.4. 0.15-0.20 → review.
- melody: the best 4.6 s window of tonal semitone spectra (see `melody`), mean cosine over
  transpositions within ±6 semitones and tempo ratios 0.92-1.08. Measured with `tunesmith
  eval similarity --catalog DIR --limit 24 --clean 100` (30 generated 45 s draft pieces,
  5-20 s excerpts spliced into other drafts), seeds 11 and 23: the best clean tracks scored
  0.899 and 0.917 (0.90 gave 3 false positives on seed 23), while pitch ±1 / tempo ±5 %
  copies scored 0.91-0.99 (recall 0.92-1.00) → review at ≥ 0.92.
"""

from __future__ import annotations

from schemas.jobs import RiskLevel, SimilarityMatch

FINGERPRINT_BLOCK_BER = 0.15
FINGERPRINT_REVIEW_BER = 0.20
MELODY_REVIEW_SCORE = 0.92

_ORDER: dict[RiskLevel, int] = {"clear": 0, "review": 1, "block": 2}


def fingerprint_risk(bit_error_rate: float) -> RiskLevel:
    if bit_error_rate <= FINGERPRINT_BLOCK_BER:
        return "block"
    return "review" if bit_error_rate <= FINGERPRINT_REVIEW_BER else "clear"


def melody_risk(score: float) -> RiskLevel:
    return "review" if score >= MELODY_REVIEW_SCORE else "clear"


def assess(matches: list[SimilarityMatch]) -> tuple[RiskLevel, list[str]]:
    """The highest risk among `matches` and a readable reason for each of them."""
    risk: RiskLevel = "clear"
    reasons: list[str] = []
    for m in matches:
        if _ORDER[m.risk] > _ORDER[risk]:
            risk = m.risk
        what = m.title or m.recording_id[:12]
        where = (
            f"{m.duration_s:.1f} s at {m.query_offset_s:.1f} s "
            f"(recording at {m.recording_offset_s:.1f} s)"
        )
        if m.method == "fingerprint":
            reasons.append(
                f"{m.risk}: fingerprint of '{what}' over {where}, bit-error rate "
                f"{m.bit_error_rate:.3f}"
            )
        else:
            reasons.append(
                f"{m.risk}: melody/harmony of '{what}' over {where}, score {m.score:.2f}, "
                f"transposed {m.semitones:+d} semitones"
                + (f", tempo ×{m.tempo_factor:.2f}" if m.tempo_factor else "")
            )
    return risk, reasons

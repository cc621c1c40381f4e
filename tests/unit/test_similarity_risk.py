"""Risk levels from matches, and the review policy routing on them."""

from activities.policy.review import decide
from activities.similarity import risk
from schemas.jobs import QualityReport, SimilarityMatch
from schemas.request import ReviewMode


def _match(method: str, score: float, level: str, ber: float | None = None) -> SimilarityMatch:
    return SimilarityMatch.model_validate({
        "recording_id": "ab" * 32, "title": "Song", "method": method, "score": score,
        "query_offset_s": 12.0, "recording_offset_s": 30.0, "duration_s": 6.0, "risk": level,
        "bit_error_rate": ber, "semitones": 1 if method == "melody" else None,
    })  # fmt: skip


def test_thresholds() -> None:
    assert risk.fingerprint_risk(0.02) == "block"
    assert risk.fingerprint_risk(0.18) == "review"
    assert risk.fingerprint_risk(0.4) == "clear"
    assert risk.melody_risk(0.95) == "review"
    assert risk.melody_risk(0.5) == "clear"


def test_highest_risk_wins_with_a_reason_per_match() -> None:
    level, reasons = risk.assess(
        [_match("melody", 0.93, "review"), _match("fingerprint", 0.98, "block", ber=0.02)]
    )
    assert level == "block"
    assert len(reasons) == 2
    assert "bit-error rate 0.020" in reasons[1] and "+1 semitones" in reasons[0]
    assert risk.assess([]) == ("clear", [])


def test_block_never_auto_publishes() -> None:
    match = _match("fingerprint", 0.98, "block", ber=0.02)
    rec = decide(review_mode=ReviewMode.AUTO, quality=QualityReport(), risk="block",
                 matches=[match])  # fmt: skip
    assert rec.decision == "needs_review"
    assert any("block" in r for r in rec.reasons)

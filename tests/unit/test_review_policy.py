import numpy as np

from activities.policy.review import decide
from activities.postprocess.quality import assess_quality
from schemas.jobs import QualityReport, SimilarityMatch
from schemas.request import ReviewMode

SR = 44100
GOOD = QualityReport()


def _match(risk: str = "review") -> SimilarityMatch:
    return SimilarityMatch(recording_id="r1", title="Song", method="fingerprint", score=0.9,
                           query_offset_s=12.0, recording_offset_s=30.0, duration_s=8.0,
                           risk=risk)  # type: ignore[arg-type]  # fmt: skip


def test_clean_output_is_auto_approved() -> None:
    rec = decide(review_mode=ReviewMode.AUTO, quality=GOOD, risk="clear", matches=[])
    assert rec.decision == "auto_approve" and rec.reasons == []


def test_required_review_always_goes_to_a_human() -> None:
    rec = decide(review_mode=ReviewMode.REQUIRED, quality=GOOD, risk="clear", matches=[])
    assert rec.decision == "needs_review"
    assert "required by the request" in rec.reasons[0]


def test_quality_findings_and_matches_need_review() -> None:
    bad = QualityReport(score=0.5, findings=["x"])
    rec = decide(review_mode=ReviewMode.AUTO, quality=bad, risk="review", matches=[_match()])
    assert rec.decision == "needs_review"
    assert any("quality" in r for r in rec.reasons)
    assert any("Song" in r and "12.0 s" in r for r in rec.reasons)


def test_block_never_auto_publishes() -> None:
    rec = decide(review_mode=ReviewMode.AUTO, quality=GOOD, risk="block", matches=[_match("block")])
    assert rec.decision == "needs_review" and "similarity risk block" in rec.reasons


def _assess(raw: np.ndarray, master: np.ndarray | None = None, **kw: float) -> QualityReport:
    args = {"requested_duration_s": 10.0, "integrated_lufs": -14.0, "target_lufs": -14.0} | kw
    return assess_quality(raw, raw if master is None else master, SR, **args)


def _faded_noise(seconds: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (int(SR * seconds), 2))
    x[-SR // 2 :] *= np.linspace(1, 0, SR // 2)[:, None]  # a proper ending
    return x


def test_quality_of_good_audio_is_perfect() -> None:
    report = _assess(_faded_noise())
    assert report.findings == [] and report.score == 1.0


def test_each_quality_problem_is_named_and_lowers_the_score() -> None:
    good = _faded_noise()
    silent = good.copy()
    silent[: SR * 5] = 0
    cases = {
        "silent": _assess(silent),
        "differs from the requested": _assess(good, requested_duration_s=12.0),
        "clipped": _assess(np.clip(good * 30, -1, 1), good),
        "DC offset": _assess(good + 0.2, good),
        "off the": _assess(good, integrated_lufs=-18.0),
        "abruptly": _assess(np.random.default_rng(1).normal(0, 0.1, (SR * 10, 2))),
    }
    for needle, report in cases.items():
        assert any(needle in f for f in report.findings), (needle, report)
        assert report.score < 1.0

import numpy as np

from activities.review.policy import decide
from activities.similarity.quality import quality_findings
from schemas.request import ReviewMode

SR = 44100


def test_clean_output_is_auto_approved() -> None:
    rec = decide(review_mode=ReviewMode.AUTO, quality_findings=[], matches=[])
    assert rec.decision == "auto_approve" and rec.reasons == []


def test_required_review_always_goes_to_a_human() -> None:
    rec = decide(review_mode=ReviewMode.REQUIRED, quality_findings=[], matches=[])
    assert rec.decision == "needs_review"
    assert "required by the request" in rec.reasons[0]


def test_quality_findings_and_matches_need_review() -> None:
    rec = decide(review_mode=ReviewMode.AUTO, quality_findings=["x"],
                 matches=[{"recording_id": "r1"}])  # fmt: skip
    assert rec.decision == "needs_review" and len(rec.reasons) == 2


def test_quality_findings() -> None:
    rng = np.random.default_rng(0)
    good = rng.normal(0, 0.1, (SR * 10, 2))
    assert quality_findings(good, SR, requested_duration_s=10.0) == []
    silent = good.copy()
    silent[: SR * 5] = 0
    assert any("silent" in f for f in quality_findings(silent, SR, requested_duration_s=10.0))
    assert any("duration" in f for f in quality_findings(good, SR, requested_duration_s=12.0))
    clipped = np.clip(good * 30, -1, 1)
    assert any("clipped" in f for f in quality_findings(clipped, SR, requested_duration_s=10.0))
    assert any("DC" in f for f in quality_findings(good + 0.2, SR, requested_duration_s=10.0))

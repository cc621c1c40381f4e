"""Review policy: auto-approve low-risk outputs, route everything else to a human."""

from __future__ import annotations

from schemas.jobs import QualityReport, ReviewRecommendation, RiskLevel, SimilarityMatch
from schemas.request import ReviewMode

POLICY_VERSION = "review-policy-2"
MIN_AUTO_APPROVE_QUALITY = 0.8


def decide(
    *,
    review_mode: ReviewMode,
    quality: QualityReport,
    risk: RiskLevel,
    matches: list[SimilarityMatch],
) -> ReviewRecommendation:
    """Auto-approve only when the request allows it, quality is good and nothing matched.

    A `block` similarity risk never auto-publishes: it always goes to a human with the reason.
    """
    reasons: list[str] = []
    if review_mode is ReviewMode.REQUIRED:
        reasons.append("human review required by the request")
    if quality.score < MIN_AUTO_APPROVE_QUALITY or quality.findings:
        reasons += [f"quality {quality.score:.2f}: {f}" for f in quality.findings] or [
            f"quality score {quality.score:.2f} under {MIN_AUTO_APPROVE_QUALITY}"
        ]
    if risk != "clear":
        reasons.append(f"similarity risk {risk}")
    reasons += [
        f"similar to catalog recording {m.title or m.recording_id} ({m.method}, score "
        f"{m.score:.2f}, at {m.query_offset_s:.1f} s)"
        for m in matches
    ]
    return ReviewRecommendation(
        decision="needs_review" if reasons else "auto_approve",
        reasons=reasons,
        policy_version=POLICY_VERSION,
    )

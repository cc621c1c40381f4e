"""Review policy: auto-approve low-risk outputs, route everything else to a human."""

from __future__ import annotations

from schemas.jobs import ReviewRecommendation
from schemas.request import ReviewMode

POLICY_VERSION = "review-policy-1"


def decide(
    *, review_mode: ReviewMode, quality_findings: list[str], matches: list[dict[str, object]]
) -> ReviewRecommendation:
    """Auto-approve only when the request allows it, quality checks pass and nothing matched."""
    reasons: list[str] = []
    if review_mode is ReviewMode.REQUIRED:
        reasons.append("human review required by the request")
    reasons += [f"quality: {f}" for f in quality_findings]
    reasons += [f"similar to catalog recording {m.get('recording_id')}" for m in matches]
    return ReviewRecommendation(
        decision="needs_review" if reasons else "auto_approve",
        reasons=reasons,
        policy_version=POLICY_VERSION,
    )

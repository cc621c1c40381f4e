"""Who may decide on a job: the reviewers table (roles, tenants), with a bootstrap rule.

Bootstrap: while the reviewers table is empty, authorization is off (a warning is logged), so a
fresh install can review; as soon as any reviewer exists (even an inactive one), it is enforced,
and a decision counts only with the proof signed by the reviewer's token (`proof_refusal`).
"""

from __future__ import annotations

import logging

from activities.policy.review import ROLES
from activities.review import store as review_db
from activities.review.proof import proof_matches
from infra.db import Database
from schemas.jobs import ReviewDecision

log = logging.getLogger(__name__)


def role_rank(role: str | None) -> int:
    return ROLES.index(role) if role in ROLES else -1


async def reviewer_refusal(
    db: Database, *, reviewer: str, tenant: str | None, min_role: str | None = None
) -> str | None:
    """Why `reviewer` may not act on a job of `tenant` (None: allowed)."""
    if await review_db.count_reviewers(db) == 0:
        log.warning("no reviewers configured: review authorization is off (bootstrap)")
        return None
    row = await review_db.get_reviewer(db, reviewer)
    if row is None:
        return f"unknown reviewer {reviewer!r}"
    if not row["active"]:
        return f"reviewer {reviewer!r} is inactive"
    if row["tenants"] is not None and tenant not in row["tenants"]:
        return f"reviewer {reviewer!r} may not review tenant {tenant!r}"
    if min_role is not None and role_rank(row["role"]) < role_rank(min_role):
        return f"the review was escalated to {min_role}s; reviewer {reviewer!r} is a {row['role']}"
    return None


async def proof_refusal(db: Database, job_id: str, decision: ReviewDecision) -> str | None:
    """Why `decision` does not prove it comes from its reviewer (None: it does, or review
    authorization is still off)."""
    if await review_db.count_reviewers(db) == 0:
        return None
    row = await review_db.get_reviewer(db, decision.reviewer)
    if row is None:
        return f"unknown reviewer {decision.reviewer!r}"
    if row["proof_key"] is None:
        return (
            f"reviewer {decision.reviewer!r} has no token yet; an operator issues one with "
            f"`tunesmith reviewers rotate {decision.reviewer}`"
        )
    if not decision.proof:
        return (
            f"the decision carries no proof of reviewer {decision.reviewer!r} (sign it with "
            "their token: TUNESMITH_REVIEWER_TOKEN, or `tunesmith review proof`)"
        )
    if not proof_matches(
        row["proof_key"], decision.proof, job_id=job_id, reviewer=decision.reviewer,
        decision=decision.decision,
    ):  # fmt: skip
        return (
            f"the proof does not match reviewer {decision.reviewer!r}'s token for this job "
            "and decision"
        )
    return None

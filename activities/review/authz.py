"""Who may decide on a job: the reviewers table (roles, tenants), with a bootstrap rule.

Bootstrap: while the reviewers table is empty, authorization is off (a warning is logged), so a
fresh install can review; as soon as any reviewer exists (even an inactive one), it is enforced.
"""

from __future__ import annotations

import logging

from activities.policy.review import ROLES
from activities.review import store as review_db
from infra.db import Database

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

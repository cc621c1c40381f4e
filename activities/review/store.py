"""Review queue tables (migrations 0005, 0010): reviewers and their tokens, the review audit
log, annotations."""

from __future__ import annotations

from typing import Any

from activities.review.proof import new_token
from infra.db import Database


# --- reviewers ------------------------------------------------------------------------------
async def add_reviewer(
    db: Database, name: str, *, role: str, tenants: list[str] | None
) -> str | None:
    """Create the reviewer, or update (and reactivate) an existing one.

    Returns:
        The reviewer's new token when one was issued (a new reviewer, or one from before
        reviewer proof), else None: an existing token is kept and never shown again.
    """
    token = new_token()
    issued = await db.pool.fetchval(
        """
        INSERT INTO reviewers (name, role, tenants, proof_key) VALUES ($1, $2, $3, $4)
        ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, tenants = EXCLUDED.tenants,
            active = true, updated_at = now(),
            proof_key = coalesce(reviewers.proof_key, EXCLUDED.proof_key)
        RETURNING proof_key = $4
        """,
        name, role, tenants, token,
    )  # fmt: skip
    return token if issued else None


async def rotate_token(db: Database, name: str) -> str | None:
    """Issue the reviewer a new token (the old one stops working); None if unknown."""
    token = new_token()
    status = await db.pool.execute(
        "UPDATE reviewers SET proof_key = $2, updated_at = now() WHERE name = $1", name, token
    )
    return token if status.endswith(" 1") else None


async def remove_reviewer(db: Database, name: str, *, purge: bool = False) -> bool:
    """Deactivate the reviewer (or delete the row with `purge`); False if unknown."""
    if purge:
        status = await db.pool.execute("DELETE FROM reviewers WHERE name = $1", name)
    else:
        status = await db.pool.execute(
            "UPDATE reviewers SET active = false, updated_at = now() WHERE name = $1", name
        )
    return not str(status).endswith(" 0")


async def get_reviewer(db: Database, name: str) -> dict[str, Any] | None:
    row = await db.pool.fetchrow("SELECT * FROM reviewers WHERE name = $1", name)
    return dict(row) if row else None


async def list_reviewers(db: Database) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.pool.fetch("SELECT * FROM reviewers ORDER BY name")]


async def count_reviewers(db: Database) -> int:
    """All rows, active or not: any row at all switches authorization on."""
    return int(await db.pool.fetchval("SELECT count(*) FROM reviewers"))


# --- audit ----------------------------------------------------------------------------------
async def audit(
    db: Database,
    job_id: str,
    *,
    reviewer: str | None,
    action: str,
    decision: str | None,
    accepted: bool,
    reason: str | None = None,
    event_key: str | None = None,
) -> None:
    """Append one audit row; a row with the same `event_key` is written only once."""
    await db.pool.execute(
        """
        INSERT INTO review_audit (job_id, reviewer, action, decision, accepted, reason, event_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_key) DO NOTHING
        """,
        job_id, reviewer, action, decision, accepted, reason, event_key,
    )  # fmt: skip


async def audit_log(db: Database, job_id: str) -> list[dict[str, Any]]:
    rows = await db.pool.fetch(
        "SELECT id, job_id, reviewer, action, decision, accepted, reason, at"
        " FROM review_audit WHERE job_id = $1 ORDER BY at, id",
        job_id,
    )
    return [dict(r) for r in rows]


# --- annotations ----------------------------------------------------------------------------
async def add_annotation(
    db: Database,
    job_id: str,
    *,
    reviewer: str,
    tags: list[str],
    rating: int | None,
    note: str | None,
    post_edit: bool,
) -> None:
    await db.pool.execute(
        """
        INSERT INTO review_annotations (job_id, reviewer, tags, rating, note, post_edit)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        job_id, reviewer, tags, rating, note, post_edit,
    )  # fmt: skip


async def list_annotations(db: Database, job_id: str) -> list[dict[str, Any]]:
    rows = await db.pool.fetch(
        "SELECT job_id, reviewer, tags, rating, note, post_edit, at"
        " FROM review_annotations WHERE job_id = $1 ORDER BY at",
        job_id,
    )
    return [dict(r) for r in rows]


# --- queue and metrics ----------------------------------------------------------------------
async def review_queue(
    db: Database,
    *,
    risk: str | None = None,
    tenant: str | None = None,
    older_than_s: float | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Jobs awaiting review, oldest first, with their similarity risk and approvals so far."""
    rows = await db.pool.fetch(
        """
        SELECT j.job_id, j.tenant, j.product, j.model_id, j.duration_s, j.prompt, j.created_at,
               j.review_reasons,
               CASE WHEN j.review_reasons ? 'similarity risk block' THEN 'block'
                    WHEN j.review_reasons ? 'similarity risk review' THEN 'review'
                    ELSE 'clear' END AS risk,
               CASE WHEN j.review_reasons ? 'needs 2 approvals from different reviewers'
                    THEN 2 ELSE 1 END AS required_approvals,
               (SELECT count(DISTINCT a.reviewer) FROM review_audit a
                 WHERE a.job_id = j.job_id AND a.accepted AND a.decision = 'approve'
                   AND a.action IN ('update', 'signal')) AS approvals
        FROM jobs j
        WHERE j.stage = 'awaiting_review'
          AND ($1::text IS NULL OR j.review_reasons ? ('similarity risk ' || $1))
          AND ($2::text IS NULL OR j.tenant = $2)
          AND ($3::float8 IS NULL OR j.created_at < now() - make_interval(secs => $3))
        ORDER BY j.created_at ASC
        LIMIT $4
        """,
        risk, tenant, older_than_s, limit,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def review_stats(db: Database) -> list[dict[str, Any]]:
    """Per tenant: reviewed/approved/auto-approved counts, approval rate, post-edit rate (share
    of approved or auto-approved jobs annotated `post_edit`), mean annotation rating."""
    rows = await db.pool.fetch(
        """
        WITH decided AS (
            SELECT j.tenant, r.job_id, r.outcome FROM reviews r JOIN jobs j USING (job_id)
        ), notes AS (
            SELECT j.tenant, n.job_id, bool_or(n.post_edit) AS post_edit
            FROM review_annotations n JOIN jobs j USING (job_id) GROUP BY j.tenant, n.job_id
        ), tenants AS (
            SELECT tenant FROM decided UNION SELECT tenant FROM notes
        )
        SELECT t.tenant,
               (SELECT count(*) FROM decided d WHERE d.tenant = t.tenant
                  AND d.outcome IN ('approved', 'rejected', 'expired')) AS reviewed,
               (SELECT count(*) FROM decided d WHERE d.tenant = t.tenant
                  AND d.outcome = 'approved') AS approved,
               (SELECT count(*) FROM decided d WHERE d.tenant = t.tenant
                  AND d.outcome = 'auto_approved') AS auto_approved,
               (SELECT count(*) FROM notes n WHERE n.tenant = t.tenant AND n.post_edit
                  AND EXISTS (SELECT 1 FROM decided d WHERE d.job_id = n.job_id
                              AND d.outcome IN ('approved', 'auto_approved'))) AS post_edited,
               (SELECT avg(a.rating) FROM review_annotations a JOIN jobs j USING (job_id)
                 WHERE j.tenant = t.tenant)::float8 AS mean_rating,
               (SELECT count(*) FROM review_annotations a JOIN jobs j USING (job_id)
                 WHERE j.tenant = t.tenant) AS annotations
        FROM tenants t ORDER BY t.tenant
        """
    )
    out = []
    for r in rows:
        row = dict(r)
        published = row["approved"] + row["auto_approved"]
        row["approval_rate"] = row["approved"] / row["reviewed"] if row["reviewed"] else None
        row["post_edit_rate"] = row["post_edited"] / published if published else None
        out.append(row)
    return out

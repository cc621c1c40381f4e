"""PostgreSQL queries for takedowns (tables from `infra/migrations/0006_takedowns.sql`, claimant
callbacks and outbox recipients from `0009_takedown_claimant_callback.sql`).

Every write is idempotent, so a retried activity never writes a second row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from infra.db import Database


class TakedownDB:
    """Takedown rows, their audit log, the job flag and their webhook outbox events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self,
        *,
        takedown_id: str,
        workflow_id: str,
        job_id: str,
        claimant: str,
        contact_email: str,
        evidence: str,
        evidence_url: str | None,
        owner: str,
        filed_at: datetime,
        dispute_deadline: datetime,
        claimant_callback_url: str | None = None,
    ) -> None:
        await self.db.pool.execute(
            """
            INSERT INTO takedowns (takedown_id, workflow_id, job_id, claimant, contact_email,
                                   evidence, evidence_url, owner, state, filed_at,
                                   dispute_deadline, claimant_callback_url)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'filed', $9, $10, $11)
            ON CONFLICT (takedown_id) DO NOTHING
            """,
            takedown_id, workflow_id, job_id, claimant, contact_email, evidence, evidence_url,
            owner, filed_at, dispute_deadline, claimant_callback_url,
        )  # fmt: skip

    async def set_state(
        self,
        takedown_id: str,
        job_id: str,
        state: str,
        *,
        objects: list[str] | None = None,
        recording_id: str | None = None,
    ) -> None:
        """Move the takedown (and the job's flag) to `state`."""
        async with self.db.transaction() as tx:
            await tx.pool.execute(
                """
                UPDATE takedowns SET state = $2, objects = COALESCE($3, objects),
                    recording_id = COALESCE($4, recording_id), updated_at = now()
                WHERE takedown_id = $1
                """,
                takedown_id, state, objects, recording_id,
            )  # fmt: skip
            await tx.pool.execute(
                "UPDATE jobs SET takedown_state = $2, updated_at = now() WHERE job_id = $1",
                job_id,
                state,
            )

    async def set_recording(self, takedown_id: str, recording_id: str) -> None:
        await self.db.pool.execute(
            "UPDATE takedowns SET recording_id = $2, updated_at = now() WHERE takedown_id = $1",
            takedown_id,
            recording_id,
        )

    async def audit(
        self,
        *,
        event_key: str,
        takedown_id: str,
        job_id: str,
        actor: str,
        action: str,
        at: datetime,
        detail: dict[str, Any],
    ) -> None:
        await self.db.pool.execute(
            """
            INSERT INTO takedown_events (event_key, takedown_id, job_id, actor, action, at, detail)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_key) DO NOTHING
            """,
            event_key, takedown_id, job_id, actor, action, at, detail,
        )  # fmt: skip

    async def enqueue_webhook(
        self,
        takedown_id: str,
        job_id: str,
        *,
        event: str,
        payload: dict[str, Any],
        recipient: Literal["owner", "claimant"] = "owner",
    ) -> None:
        """A webhook outbox event keyed by the filing (not the job), so a later takedown of the
        same (restored) job gets its own events; delivered by a DeliverJobEvents run for
        `recipient` (the owner's callback URL, or this takedown's claimant's)."""
        # The owner's keys are unchanged; the claimant's differ, so both rows exist.
        key = (
            f"{takedown_id}:{event}"
            if recipient == "owner"
            else f"{takedown_id}:{recipient}:{event}"
        )
        await self.db.pool.execute(
            """
            INSERT INTO webhook_outbox (job_id, event, idempotency_key, payload, recipient,
                                        takedown_id)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING
            """,
            job_id, event, key, payload, recipient, takedown_id,
        )  # fmt: skip

    async def get(self, takedown_id: str) -> dict[str, Any] | None:
        row = await self.db.pool.fetchrow(
            "SELECT * FROM takedowns WHERE takedown_id = $1", takedown_id
        )
        return dict(row) if row else None

    async def latest_for_job(self, job_id: str) -> dict[str, Any] | None:
        row = await self.db.pool.fetchrow(
            "SELECT * FROM takedowns WHERE job_id = $1 ORDER BY filed_at DESC LIMIT 1", job_id
        )
        return dict(row) if row else None

    async def list_takedowns(
        self, *, state: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch(
            """
            SELECT takedown_id, job_id, claimant, owner, state, dispute_deadline, filed_at,
                   updated_at, recording_id
            FROM takedowns WHERE ($1::text IS NULL OR state = $1)
            ORDER BY filed_at DESC LIMIT $2
            """,
            state,
            limit,
        )
        return [dict(r) for r in rows]

    async def events(self, takedown_id: str) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch(
            "SELECT actor, action, detail, at, recorded_at FROM takedown_events"
            " WHERE takedown_id = $1 ORDER BY id",
            takedown_id,
        )
        return [dict(r) for r in rows]

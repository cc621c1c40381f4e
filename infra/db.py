"""PostgreSQL access (asyncpg): migrations and the few queries the platform needs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from infra.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_426_001  # pg_advisory_lock key: concurrent starters apply migrations once


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.dsn)


async def ensure_database(settings: Settings) -> None:
    """Create the embedded server's `tunesmith` database if missing (external DBs: no-op)."""
    if not settings.embedded_database:
        return
    conn = await asyncpg.connect(settings.dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'tunesmith'")
        if not exists:
            await conn.execute("CREATE DATABASE tunesmith")
    finally:
        await conn.close()


async def apply_migrations(settings: Settings) -> list[str]:
    """Apply pending `migrations/*.sql` in name order, each in its own transaction."""
    conn = await asyncpg.connect(settings.dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.stem in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", path.stem)
            applied.append(path.stem)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied


TERMINAL_DB_STAGES = ("published", "rejected", "expired", "cancelled")


class Database:
    """A connection pool plus the platform's queries. Writes are idempotent upserts.

    `pool` may also be a single connection (see `transaction()`): both offer the same
    execute/fetch API.
    """

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """A Database whose queries all run in one transaction (committed on success)."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield Database(conn)

    @classmethod
    async def open(cls, settings: Settings, *, max_size: int = 5) -> Database:
        pool = await asyncpg.create_pool(
            settings.dsn, min_size=1, max_size=max_size, init=_init_connection
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    # --- jobs -------------------------------------------------------------------------------
    async def upsert_job(
        self,
        *,
        job_id: str,
        tenant: str,
        idempotency_key: str | None,
        request: dict[str, Any],
        request_sha256: str,
        controls: dict[str, Any],
        model_id: str,
        stage: str,
    ) -> None:
        """Insert the job row at `stage` (the stage the workflow named), or update the
        controls of an existing one (its stage is left alone)."""
        await self.pool.execute(
            """
            INSERT INTO jobs (job_id, tenant, idempotency_key, request, request_sha256, controls,
                              prompt, tier, product, duration_s, seed, model_id, stage)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            ON CONFLICT (job_id) DO UPDATE SET controls = EXCLUDED.controls, updated_at = now()
            """,
            job_id, tenant, idempotency_key, request, request_sha256, controls,
            controls["prompt"], controls["tier"], controls["product"], controls["duration_s"],
            controls["seed"], model_id, stage,
        )  # fmt: skip

    async def finished_stage(self, job_id: str) -> str | None:
        """The job's stage if it already ended for good, else None."""
        return await self.pool.fetchval(
            "SELECT stage FROM jobs WHERE job_id = $1 AND stage = ANY($2::text[])",
            job_id,
            list(TERMINAL_DB_STAGES),
        )

    async def set_stage(
        self,
        job_id: str,
        stage: str,
        *,
        review_state: str | None = None,
        review_reasons: list[str] | None = None,
        model_version: str | None = None,
        error: str | None = None,
        finished: bool = False,
    ) -> None:
        await self.pool.execute(
            """
            UPDATE jobs SET stage = $2,
                review_state = COALESCE($3, review_state),
                review_reasons = COALESCE($4, review_reasons),
                model_version = COALESCE($5, model_version),
                error = COALESCE($6, error),
                finished_at = CASE WHEN $7 THEN COALESCE(finished_at, now()) ELSE finished_at END,
                updated_at = now()
            WHERE job_id = $1 AND NOT (stage = ANY($8::text[]))
            """,
            job_id, stage, review_state, review_reasons, model_version, error, finished,
            # A late, stale attempt must never move a finished job back.
            list(TERMINAL_DB_STAGES),
        )  # fmt: skip

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
        return dict(row) if row else None

    async def list_jobs(
        self, *, stage: str | None = None, tenant: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """
            SELECT job_id, tenant, stage, review_state, model_id, tier, product, duration_s,
                   prompt, created_at, finished_at
            FROM jobs WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR tenant = $2)
            ORDER BY created_at DESC LIMIT $3
            """,
            stage, tenant, limit,
        )  # fmt: skip
        return [dict(r) for r in rows]

    # --- artifacts, fingerprints, reviews, provenance, ledger, outbox ----------------------
    _ARTIFACT_COLUMNS = frozenset(
        {"uri", "sha256", "format", "sample_rate", "channels", "duration_s", "size_bytes",
         "integrated_lufs", "true_peak_dbtp", "features", "loudness_range_lu", "tempo_bpm",
         "musical_key", "instruments", "embedding", "embedding_model"}
    )  # fmt: skip

    async def upsert_artifact(self, job_id: str, kind: str, **fields: Any) -> None:
        """Insert or update the (job, kind) artifact row; only the given columns change."""
        unknown = set(fields) - self._ARTIFACT_COLUMNS
        if unknown:
            raise ValueError(f"unknown artifact columns: {sorted(unknown)}")
        cols = list(fields)
        values = [fields[c] for c in cols]
        casts = []
        for i, col in enumerate(cols):
            if col == "embedding" and values[i] is not None:
                # pgvector's text form; asyncpg has no codec for the vector type.
                values[i] = "[" + ",".join(f"{v:.6g}" for v in values[i]) + "]"
                casts.append("::vector")
            else:
                casts.append("")
        placeholders = ", ".join(f"${i + 3}{cast}" for i, cast in enumerate(casts))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
        await self.pool.execute(
            f"INSERT INTO artifacts (job_id, kind, {', '.join(cols)}) VALUES ($1, $2, "
            f"{placeholders}) ON CONFLICT (job_id, kind) DO UPDATE SET {updates}",
            job_id,
            kind,
            *values,
        )

    async def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        # Every column but the embedding vector (no asyncpg codec, and too big to print).
        rows = await self.pool.fetch(
            "SELECT job_id, kind, uri, sha256, format, sample_rate, channels, duration_s,"
            " size_bytes, integrated_lufs, true_peak_dbtp, features, loudness_range_lu,"
            " tempo_bpm, musical_key, instruments, embedding_model, created_at"
            " FROM artifacts WHERE job_id = $1 ORDER BY kind",
            job_id,
        )
        return [dict(r) for r in rows]

    async def upsert_fingerprint(
        self, job_id: str, *, algorithm: str, items: list[int], sha256: str, duration_s: float
    ) -> None:
        await self.pool.execute(
            """
            INSERT INTO fingerprints (job_id, algorithm, items, sha256, duration_s)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (job_id) DO UPDATE SET algorithm = EXCLUDED.algorithm,
                items = EXCLUDED.items, sha256 = EXCLUDED.sha256, duration_s = EXCLUDED.duration_s
            """,
            job_id, algorithm, items, sha256, duration_s,
        )  # fmt: skip

    async def record_review(
        self,
        job_id: str,
        *,
        outcome: str,
        reviewer: str | None,
        note: str | None,
        reasons: list[str],
    ) -> None:
        # First decision wins: a retried activity must not overwrite the recorded decision.
        await self.pool.execute(
            """
            INSERT INTO reviews (job_id, outcome, reviewer, note, reasons)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id) DO NOTHING
            """,
            job_id, outcome, reviewer, note, reasons,
        )  # fmt: skip

    async def get_review(self, job_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM reviews WHERE job_id = $1", job_id)
        return dict(row) if row else None

    async def upsert_provenance(
        self, job_id: str, *, record: dict[str, Any], sha256: str, uri: str
    ) -> None:
        await self.pool.execute(
            """
            INSERT INTO provenance (job_id, record, sha256, uri) VALUES ($1, $2, $3, $4)
            ON CONFLICT (job_id) DO UPDATE SET record = EXCLUDED.record,
                sha256 = EXCLUDED.sha256, uri = EXCLUDED.uri
            """,
            job_id, record, sha256, uri,
        )  # fmt: skip

    async def get_provenance(self, job_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM provenance WHERE job_id = $1", job_id)
        return dict(row) if row else None

    async def charge(
        self, job_id: str, *, tenant: str, kind: str, amount_cents: int, audio_seconds: float
    ) -> bool:
        """Write the ledger row for (job, kind) once. Returns whether this call wrote it."""
        status = await self.pool.execute(
            """
            INSERT INTO ledger (job_id, tenant, kind, amount_cents, audio_seconds)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, kind) DO NOTHING
            """,
            job_id, tenant, kind, amount_cents, audio_seconds,
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    async def ledger(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM ledger WHERE job_id = $1 ORDER BY id", job_id)
        return [dict(r) for r in rows]

    async def search_masters(
        self,
        *,
        tempo: tuple[float, float] | None = None,
        key: str | None = None,
        lufs: tuple[float, float] | None = None,
        duration: tuple[float, float] | None = None,
        instrument: str | None = None,
        similar_to: str | None = None,
        published_only: bool = False,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """Find masters by their stored features; with `similar_to`, nearest embeddings first.

        Raises:
            LookupError: `similar_to` names a job without an embedding.
        """
        ref = None
        if similar_to is not None:
            ref = await self.pool.fetchrow(
                "SELECT embedding::text AS embedding, embedding_model FROM artifacts"
                " WHERE job_id = $1 AND kind = 'master_wav' AND embedding IS NOT NULL",
                similar_to,
            )
            if ref is None:
                raise LookupError(f"job {similar_to!r} has no stored embedding to compare with")
        rows = await self.pool.fetch(
            """
            SELECT j.job_id, j.stage, j.prompt, a.tempo_bpm, a.musical_key, a.integrated_lufs,
                   a.loudness_range_lu, a.duration_s, a.instruments,
                   CASE WHEN $9::text IS NULL THEN NULL
                        ELSE a.embedding <=> $9::vector END AS distance
            FROM artifacts a JOIN jobs j USING (job_id)
            WHERE a.kind = 'master_wav'
              AND ($1::float8 IS NULL OR a.tempo_bpm BETWEEN $1 AND $2)
              AND ($3::text IS NULL OR a.musical_key = $3)
              AND ($4::float8 IS NULL OR a.integrated_lufs BETWEEN $4 AND $5)
              AND ($6::float8 IS NULL OR a.duration_s BETWEEN $6 AND $7)
              AND ($8::text IS NULL OR $8 = ANY (a.instruments))
              AND ($9::text IS NULL OR (a.embedding_model = $10 AND j.job_id <> $11))
              AND (NOT $12 OR j.stage = 'published')
            ORDER BY distance ASC NULLS LAST, j.created_at DESC
            LIMIT $13
            """,
            tempo[0] if tempo else None, tempo[1] if tempo else None, key,
            lufs[0] if lufs else None, lufs[1] if lufs else None,
            duration[0] if duration else None, duration[1] if duration else None, instrument,
            ref["embedding"] if ref else None, ref["embedding_model"] if ref else None,
            similar_to, published_only, limit,
        )  # fmt: skip
        return [dict(r) for r in rows]

    async def enqueue_webhook(self, job_id: str, *, event: str, payload: dict[str, Any]) -> None:
        await self.pool.execute(
            """
            INSERT INTO webhook_outbox (job_id, event, idempotency_key, payload)
            VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING
            """,
            job_id, event, f"{job_id}:{event}", payload,
        )  # fmt: skip

    async def record_webhook_attempt(self, outbox_id: int, *, error: str | None) -> None:
        """Count one delivery attempt; no error means the receiver accepted it."""
        await self.pool.execute(
            """
            UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $2,
                delivered_at = CASE WHEN $2::text IS NULL THEN now() ELSE NULL END
            WHERE id = $1
            """,
            outbox_id,
            error,
        )

    async def outbox(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM webhook_outbox WHERE job_id = $1 ORDER BY id", job_id
        )
        return [dict(r) for r in rows]


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A DB row with datetimes as ISO strings, for printing and JSON output."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}

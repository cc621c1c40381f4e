"""The stored similarity check of a job (migration 0011): one `similarity_checks` row with the
risk and the review recommendation, one `similarity_matches` row per catalog match."""

from __future__ import annotations

from infra.db import Database
from schemas.jobs import CheckSimilarityOutput, ReviewRecommendation, SimilarityMatch

_MATCH_FIELDS = ("title", "score", "duration_s", "risk", "bit_error_rate", "semitones",
                 "tempo_factor")  # fmt: skip


async def record_check(db: Database, job_id: str, result: CheckSimilarityOutput) -> None:
    """Store the check's result, in one transaction. Upserts keyed on the job (the check) and
    on job + match identity (recording, method, both offsets): a retried attempt writes the
    same rows once; matches an earlier attempt found and this one did not are removed."""
    async with db.transaction() as tx:
        await tx.pool.execute(
            """
            INSERT INTO similarity_checks (job_id, fingerprint_sha256, fingerprint_items, risk,
                                           risk_reasons, recommendation)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (job_id) DO UPDATE SET fingerprint_sha256 = EXCLUDED.fingerprint_sha256,
                fingerprint_items = EXCLUDED.fingerprint_items, risk = EXCLUDED.risk,
                risk_reasons = EXCLUDED.risk_reasons, recommendation = EXCLUDED.recommendation,
                checked_at = now()
            """,
            job_id, result.fingerprint_sha256, result.fingerprint_items, result.risk,
            result.risk_reasons, result.recommendation.model_dump(mode="json"),
        )  # fmt: skip
        keys = []
        for position, m in enumerate(result.matches):
            key = (m.recording_id, m.method, m.query_offset_s, m.recording_offset_s)
            if key in keys:  # the same stretch found twice: the first (best) one counts
                continue
            keys.append(key)
            await tx.pool.execute(
                f"""
                INSERT INTO similarity_matches (job_id, recording_id, method, query_offset_s,
                    recording_offset_s, position, {", ".join(_MATCH_FIELDS)})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                ON CONFLICT (job_id, recording_id, method, query_offset_s, recording_offset_s)
                DO UPDATE SET position = EXCLUDED.position,
                    {", ".join(f"{c} = EXCLUDED.{c}" for c in _MATCH_FIELDS)}
                """,
                job_id, *key, position, *(getattr(m, c) for c in _MATCH_FIELDS),
            )  # fmt: skip
        await tx.pool.execute(
            """
            DELETE FROM similarity_matches WHERE job_id = $1 AND (recording_id, method,
                query_offset_s, recording_offset_s) NOT IN (
                SELECT * FROM unnest($2::text[], $3::text[], $4::float8[], $5::float8[]))
            """,
            job_id, *([list(c) for c in zip(*keys, strict=True)] if keys else [[], [], [], []]),
        )  # fmt: skip


async def read_check(db: Database, job_id: str) -> CheckSimilarityOutput | None:
    """The job's stored similarity check, matches in the check's order; None when none is
    stored (not checked yet, or checked before migration 0011)."""
    row = await db.pool.fetchrow("SELECT * FROM similarity_checks WHERE job_id = $1", job_id)
    if row is None:
        return None
    matches = await db.pool.fetch(
        "SELECT * FROM similarity_matches WHERE job_id = $1 ORDER BY position", job_id
    )
    return CheckSimilarityOutput(
        fingerprint_sha256=row["fingerprint_sha256"],
        fingerprint_items=row["fingerprint_items"],
        matches=[
            SimilarityMatch.model_validate(
                {k: v for k, v in dict(m).items() if k not in ("job_id", "position")}
            )
            for m in matches
        ],
        risk=row["risk"],
        recommendation=ReviewRecommendation.model_validate(row["recommendation"]),
        risk_reasons=row["risk_reasons"],
    )

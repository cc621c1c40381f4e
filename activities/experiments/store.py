"""PostgreSQL access for experiments, their assignments and model promotions (0007 migration).

Every function takes the platform's `infra.db.Database` (pool or single connection).
"""

from __future__ import annotations

import json
from typing import Any

from activities.experiments.model import Assignment, Experiment, Variant
from infra.db import Database


class ExperimentExistsError(ValueError):
    """An experiment of that name exists already (names are never reused)."""


def _json(value: Any) -> Any:
    # Pools opened by Database.open decode jsonb; a bare connection returns text.
    return json.loads(value) if isinstance(value, str) else value


def _experiment(row: Any) -> Experiment:
    return Experiment(
        name=row["name"],
        variants=[Variant.model_validate(v) for v in _json(row["variants"])],
        tenant=row["tenant"],
        product=row["product"],
        active=row["status"] == "active",
    )


async def create_experiment(db: Database, experiment: Experiment) -> None:
    """Store a new, active experiment.

    Raises:
        ExperimentExistsError: the name is taken (by a running or a stopped experiment).
    """
    status = await db.pool.execute(
        """
        INSERT INTO experiments (name, variants, tenant, product, status)
        VALUES ($1, $2::text::jsonb, $3, $4, 'active') ON CONFLICT (name) DO NOTHING
        """,
        experiment.name,
        json.dumps([v.model_dump() for v in experiment.variants]),
        experiment.tenant,
        experiment.product,
    )
    if not status.endswith(" 1"):
        raise ExperimentExistsError(f"experiment {experiment.name!r} exists already")


async def get_experiment(db: Database, name: str) -> Experiment | None:
    row = await db.pool.fetchrow("SELECT * FROM experiments WHERE name = $1", name)
    return _experiment(row) if row else None


async def active_experiments(db: Database) -> list[Experiment]:
    """Running experiments, oldest first (the order `apply_experiments` takes them in)."""
    rows = await db.pool.fetch(
        "SELECT * FROM experiments WHERE status = 'active' ORDER BY created_at, name"
    )
    return [_experiment(r) for r in rows]


async def list_experiments(db: Database) -> list[dict[str, Any]]:
    """Every experiment with its status, dates and assigned job count per variant."""
    rows = await db.pool.fetch(
        """
        SELECT e.name, e.variants::text AS variants, e.tenant, e.product, e.status,
               e.created_at, e.stopped_at,
               COALESCE((SELECT jsonb_object_agg(variant, n)::text FROM
                   (SELECT variant, count(*) AS n FROM experiment_assignments a
                    WHERE a.experiment = e.name GROUP BY variant) c), '{}') AS assigned
        FROM experiments e ORDER BY e.created_at, e.name
        """
    )
    out = []
    for r in rows:
        row = dict(r)
        row["variants"] = json.loads(row["variants"])
        row["assigned"] = json.loads(row["assigned"])
        out.append(row)
    return out


async def stop_experiment(db: Database, name: str) -> bool:
    """Stop assigning new jobs (results stay). False when no such experiment; idempotent."""
    status = await db.pool.execute(
        """
        UPDATE experiments SET status = 'stopped', stopped_at = COALESCE(stopped_at, now())
        WHERE name = $1
        """,
        name,
    )
    return bool(status.endswith(" 1"))


async def record_assignments(db: Database, job_id: str, assignments: list[Assignment]) -> None:
    """Record a job's assignments once (a resubmitted job keeps its first, identical, rows)."""
    for a in assignments:
        await db.pool.execute(
            """
            INSERT INTO experiment_assignments (job_id, experiment, variant, overrides)
            VALUES ($1, $2, $3, $4::text::jsonb) ON CONFLICT (job_id, experiment) DO NOTHING
            """,
            job_id,
            a.experiment,
            a.variant,
            json.dumps(a.overrides),
        )


async def job_assignments(db: Database, job_id: str) -> list[Assignment]:
    rows = await db.pool.fetch(
        "SELECT experiment, variant, overrides::text AS overrides FROM experiment_assignments"
        " WHERE job_id = $1 ORDER BY experiment",
        job_id,
    )
    return [
        Assignment(experiment=r["experiment"], variant=r["variant"],
                   overrides=json.loads(r["overrides"]))
        for r in rows
    ]  # fmt: skip


async def _rating_table(db: Database) -> str | None:
    """The table holding review ratings (`review_annotations`, else `annotations`) if one
    with `job_id` and a numeric `rating` column exists."""
    cols = await db.pool.fetch(
        """
        SELECT table_name, column_name, data_type FROM information_schema.columns
        WHERE table_schema = current_schema()
          AND table_name IN ('review_annotations', 'annotations')
        """
    )
    numeric = {"integer", "smallint", "bigint", "real", "double precision", "numeric"}
    for table in ("review_annotations", "annotations"):
        types = {r["column_name"]: r["data_type"] for r in cols if r["table_name"] == table}
        if "job_id" in types and types.get("rating") in numeric:
            return table
    return None


async def report_rows(db: Database, name: str) -> tuple[list[dict[str, Any]], bool]:
    """One row per assigned job that has a job row: variant, stage, error, master quality score,
    loudness, true peak, review outcome, charged cents and (when review annotations exist)
    its mean rating. Returns (rows, whether ratings were available)."""
    table = await _rating_table(db)
    with_ratings = table is not None
    rating = (
        f"(SELECT avg(n.rating)::float8 FROM {table} n WHERE n.job_id = a.job_id)"
        if with_ratings
        else "NULL::float8"
    )
    rows = await db.pool.fetch(
        f"""
        SELECT a.variant, a.job_id, j.stage, j.error,
               (m.features -> 'quality' ->> 'score')::float8 AS quality_score,
               m.integrated_lufs, m.true_peak_dbtp,
               r.outcome AS review_outcome,
               (SELECT COALESCE(sum(l.amount_cents), 0)::float8 FROM ledger l
                WHERE l.job_id = a.job_id) AS cost_cents,
               {rating} AS rating
        FROM experiment_assignments a
        JOIN jobs j ON j.job_id = a.job_id
        LEFT JOIN artifacts m ON m.job_id = a.job_id AND m.kind = 'master_wav'
        LEFT JOIN reviews r ON r.job_id = a.job_id
        WHERE a.experiment = $1
        ORDER BY a.variant, a.job_id
        """,
        name,
    )
    return [dict(r) for r in rows], with_ratings


async def record_promotion(
    db: Database,
    *,
    tier: str,
    model_id: str,
    model_version: str | None,
    previous_model_id: str,
    previous_model_version: str | None,
    tolerances: dict[str, float],
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    comparison: list[dict[str, Any]],
) -> int:
    """Write an accepted promotion; returns its id."""
    dumps = json.dumps
    return int(
        await db.pool.fetchval(
            """
            INSERT INTO model_promotions (tier, model_id, model_version, previous_model_id,
                previous_model_version, tolerances, baseline, candidate, comparison)
            VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8::text::jsonb,
                    $9::text::jsonb)
            RETURNING id
            """,
            tier,
            model_id,
            model_version,
            previous_model_id,
            previous_model_version,
            dumps(tolerances),
            dumps(baseline),
            dumps(candidate),
            dumps(comparison),
        )
    )


async def promoted_model(db: Database, tier: str) -> str | None:
    """The model id last promoted to `tier` through the guard, or None (use configuration)."""
    value = await db.pool.fetchval(
        "SELECT model_id FROM model_promotions WHERE tier = $1 ORDER BY id DESC LIMIT 1", tier
    )
    return str(value) if value is not None else None


async def promotions(
    db: Database, tier: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Recent promotions, newest first (figures as JSON text decoded)."""
    rows = await db.pool.fetch(
        """
        SELECT id, tier, model_id, model_version, previous_model_id, previous_model_version,
               tolerances::text AS tolerances, comparison::text AS comparison, created_at
        FROM model_promotions WHERE ($1::text IS NULL OR tier = $1) ORDER BY id DESC LIMIT $2
        """,
        tier,
        limit,
    )
    out = []
    for r in rows:
        row = dict(r)
        row["tolerances"] = json.loads(row["tolerances"])
        row["comparison"] = json.loads(row["comparison"])
        out.append(row)
    return out

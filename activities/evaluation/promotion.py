"""Promoting a model to a tier (`tunesmith models promote`): the regression guard end to end.

Both models are loaded here, serving just these two (not a worker's configuration), render the
guard's fixed request set (`activities.evaluation.guard`), their masters go through the catalog
check (a flagged master is a similarity false positive: every render is new), and the promotion
is recorded only when the candidate is not worse than the tier's model beyond tolerance.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from activities.evaluation.guard import (
    GuardResult,
    ModelEvaluation,
    RequestOutcome,
    compare,
    evaluate_model,
    guard_requests,
    parse_tolerances,
)
from activities.experiments import store as edb
from activities.inference.backend import ModelBackend
from activities.inference.failures import ModelWeightsMissingError, UnknownModelError
from activities.inference.registry import ModelRegistry
from activities.models.settings import TIERS, get_model_settings
from infra.db import Database
from infra.settings import get_settings
from schemas.errors import TunesmithError

# Progress of one model's renders: called with ("current" | "candidate", model id, number of
# requests); the context it returns is entered while that model renders and yields the
# callback told of each request's outcome.
EvaluationProgress = Callable[
    [str, str, int], AbstractContextManager[Callable[[RequestOutcome], None]]
]


class PromotionError(TunesmithError):
    """The promotion cannot be evaluated as asked (tier, tolerance, model, weights, backend)."""


@dataclass(frozen=True)
class Promotion:
    """A promotion ready to evaluate: both models loaded, the request set fixed."""

    tier: str
    model_id: str  # the candidate
    current: str  # the model it would replace
    current_backend: ModelBackend
    candidate_backend: ModelBackend
    requests: list[dict[str, object]]
    tolerances: dict[str, float]


@dataclass(frozen=True)
class PromotionOutcome:
    promotion: Promotion
    result: GuardResult
    promotion_id: int | None  # None: refused, or not recorded (dry run)


def plan_promotion(
    model_id: str, *, tier: str, tolerances: list[str], requests: int, baseline: str | None
) -> Promotion:
    """Check the arguments and load both models.

    Args:
        model_id: the candidate.
        tier: `draft` or `final`.
        tolerances: `METRIC=VALUE` specs over the guard's defaults.
        requests: size of the fixed request set.
        baseline: compare against this model instead of the tier's configured one.

    Raises:
        PromotionError: unknown tier, metric or model; missing weights; a backend that cannot
            load here.
    """
    if tier not in TIERS:
        raise PromotionError(f"tier must be one of {list(TIERS)}, got {tier!r}")
    try:
        tols = parse_tolerances(tolerances)
    except ValueError as exc:
        raise PromotionError(str(exc)) from None
    current = baseline or get_model_settings().tier_models[tier]
    current_backend, candidate_backend = _load_backends(current, model_id)
    return Promotion(tier, model_id, current, current_backend, candidate_backend,
                     guard_requests(requests), tols)  # fmt: skip


def _load_backends(current: str, candidate: str) -> tuple[ModelBackend, ModelBackend]:
    """Both backends from the registry, serving just these two here (not a worker's config)."""
    ms = get_model_settings()
    served = ms.model_copy(update={"served_models": f"{current},{candidate}"})
    try:
        registry = ModelRegistry(get_settings(), served)
        return registry.get(current), registry.get(candidate)
    except UnknownModelError as exc:
        raise PromotionError(
            f"unknown model: {exc.args[0]} (see `tunesmith models list`)"
        ) from None
    except ModelWeightsMissingError as exc:
        raise PromotionError(
            f"cannot evaluate: weights missing: {exc} (models dir {ms.models_dir})"
        ) from None
    except ImportError as exc:
        raise PromotionError(f"cannot load the model's backend here: {exc}") from None


async def run_promotion(
    promotion: Promotion, *, db: Database | None, progress: EvaluationProgress | None = None
) -> PromotionOutcome:
    """Render the request set with both models, compare them, and record the promotion if
    the candidate passes. Without `db` (a dry run) the catalog check is skipped and nothing is
    recorded.
    """
    p = promotion

    def evaluate(backend: ModelBackend, which: str, keep: Path | None) -> ModelEvaluation:
        if progress is None:
            return evaluate_model(backend, p.requests, keep_masters=keep)
        with progress(which, backend.model_id, len(p.requests)) as on_outcome:
            return evaluate_model(backend, p.requests, keep_masters=keep, on_outcome=on_outcome)

    with tempfile.TemporaryDirectory(prefix="tunesmith-promote-") as tmp:
        keep = Path(tmp) if db is not None else None
        base = await asyncio.to_thread(
            evaluate, p.current_backend, "current", keep / "current" if keep else None
        )
        cand = await asyncio.to_thread(
            evaluate, p.candidate_backend, "candidate", keep / "candidate" if keep else None
        )
        if db is not None and keep is not None:
            await flag_false_positives(db, base, keep / "current")
            await flag_false_positives(db, cand, keep / "candidate")
        else:
            for ev in (base, cand):
                ev.similarity_note = "skipped: --dry-run (no catalog)"
    result = compare(base, cand, p.tolerances)
    if db is None or not result.ok:
        return PromotionOutcome(p, result, None)
    promotion_id = await edb.record_promotion(
        db, tier=p.tier, model_id=p.model_id, model_version=cand.model_version,
        previous_model_id=p.current, previous_model_version=base.model_version,
        tolerances=result.tolerances, baseline=base.as_dict(), candidate=cand.as_dict(),
        comparison=result.comparison_rows(),
    )  # fmt: skip
    return PromotionOutcome(p, result, promotion_id)


async def flag_false_positives(db: Database, ev: ModelEvaluation, masters: Path) -> None:
    """Mark each master (`masters/NN.wav`) the catalog check does not clear: a false
    positive, since every render is new. Skipped, with a note, when the catalog is empty or
    the check fails."""
    from activities.catalog.store import CatalogDB
    from activities.similarity.checker import SimilarityChecker

    catalog = CatalogDB(db.pool)
    if await catalog.count() == 0:
        ev.similarity_note = "skipped: the catalog is empty (`tunesmith catalog add`)"
        return
    checker = SimilarityChecker(catalog)
    try:
        for o in ev.outcomes:
            path = masters / f"{o.index:02d}.wav"
            if path.exists():
                o.similarity_flagged = (await checker.check_file(path)).risk != "clear"
    except Exception as exc:
        ev.similarity_note = f"skipped: {type(exc).__name__}: {exc}"
        for o in ev.outcomes:
            o.similarity_flagged = None

"""CLI for A/B experiments (`experiments create/list/stop/report`) and the model-promotion
regression guard (`promote`, wired into `tunesmith` as `models promote`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from activities.evaluation.guard import DEFAULT_REQUESTS, GuardResult, RequestOutcome
from activities.evaluation.promotion import PromotionError, plan_promotion, run_promotion
from activities.experiments import store as edb
from activities.experiments.model import Experiment, ExperimentError, parse_variant
from activities.experiments.report import METRICS, build_report, format_estimate
from infra.db import Database, jsonable
from tunesmith.cli_common import console, err
from tunesmith.cli_common import fail as _fail
from tunesmith.cli_common import run_with_db as _with_db

experiments_app = typer.Typer(
    help="A/B experiments: split traffic between model/template/profile variants.",
    no_args_is_help=True,
)

T = TypeVar("T")


def _variant_text(v: dict[str, Any]) -> str:
    overrides = ",".join(f"{k}={val}" for k, val in v.get("overrides", {}).items())
    return (
        f"{v['name']}:{overrides}:{v['weight']:g}" if overrides else f"{v['name']}:{v['weight']:g}"
    )


@experiments_app.command("create")
def experiments_create(
    name: Annotated[str, typer.Argument(help="experiment name (never reused)")],
    variant: Annotated[
        list[str],
        typer.Option(
            "--variant",
            "-v",
            help="NAME:KEY=VALUE[,KEY=VALUE]:WEIGHT (keys: model, template, profile) "
            "or NAME:WEIGHT for a control arm; give 2 or more",
        ),
    ],
    tenant: Annotated[str | None, typer.Option(help="only this tenant's requests")] = None,
    product: Annotated[str | None, typer.Option(help="only this product's requests")] = None,
) -> None:
    """Start an experiment: matching new jobs are split between the variants by weight.

    Example: `experiments create small-vs-draft --variant a:model=draft:0.5
    --variant b:model=musicgen-small:0.5 --tenant acme`.
    """
    try:
        experiment = Experiment(name=name, variants=[parse_variant(v) for v in variant],
                                tenant=tenant, product=product)  # fmt: skip
    except ExperimentError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(f"experiment {name!r}: {exc}") from None

    async def create(db: Database) -> None:
        await edb.create_experiment(db, experiment)

    try:
        _with_db(create)
    except edb.ExperimentExistsError as exc:
        raise _fail(str(exc)) from None
    total = sum(v.weight for v in experiment.variants)
    split = ", ".join(f"{v.name} {v.weight / total:.0%}" for v in experiment.variants)
    console.print(f"experiment {name} started: {split}")


@experiments_app.command("list")
def experiments_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List experiments, running and stopped, with jobs assigned per variant."""
    rows = _with_db(edb.list_experiments)
    if as_json:
        console.print_json(json.dumps([jsonable(r) for r in rows]))
        return
    table = Table("name", "status", "tenant", "product", "variants", "assigned", "created")
    for r in rows:
        assigned = ", ".join(f"{k}={n}" for k, n in sorted(r["assigned"].items())) or "0"
        table.add_row(r["name"], r["status"], r["tenant"] or "*", r["product"] or "*",
                      " ".join(_variant_text(v) for v in r["variants"]), assigned,
                      r["created_at"].strftime("%Y-%m-%d %H:%M"))  # fmt: skip
    console.print(table)


@experiments_app.command("stop")
def experiments_stop(name: Annotated[str, typer.Argument(help="experiment name")]) -> None:
    """Stop assigning new jobs to an experiment (its results stay reportable)."""

    async def stop(db: Database) -> bool:
        return await edb.stop_experiment(db, name)

    if not _with_db(stop):
        raise _fail(f"no experiment named {name!r}")
    console.print(f"experiment {name} stopped")


@experiments_app.command("report")
def experiments_report(
    name: Annotated[str, typer.Argument(help="experiment name")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Per variant: jobs, mean quality, auto-approve and human approval rates, review rating
    (when annotations exist), error rate and cost per job, each with a 95 % interval (Wilson
    for rates, Student t for means), and a verdict where intervals do not overlap."""

    async def load(db: Database) -> tuple[Experiment | None, list[dict[str, Any]], bool]:
        experiment = await edb.get_experiment(db, name)
        if experiment is None:
            return None, [], False
        rows, ratings = await edb.report_rows(db, name)
        return experiment, rows, ratings

    experiment, rows, ratings = _with_db(load)
    if experiment is None:
        raise _fail(f"no experiment named {name!r}")
    report = build_report(name, [v.name for v in experiment.variants], rows, ratings=ratings)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    state = "running" if experiment.active else "stopped"
    console.print(f"[bold]{name}[/bold] ({state}; tenant {experiment.tenant or '*'}, "
                  f"product {experiment.product or '*'})")  # fmt: skip
    table = Table("metric (95 % CI)", *(v.variant for v in report.variants))
    table.add_row("jobs (finished)", *(f"{v.jobs} ({v.finished})" for v in report.variants))
    for key, (label, _, _) in METRICS.items():
        if key not in report.variants[0].metrics:
            continue
        table.add_row(label, *(format_estimate(key, v.metrics[key]) for v in report.variants))
    console.print(table)
    if not ratings:
        console.print("(no review ratings: no annotations table)")
    for line in report.verdicts:
        console.print(f"verdict: {line}")


# --- regression guard -------------------------------------------------------------------------


def _print_guard(result: GuardResult) -> None:
    b, c = result.baseline, result.candidate
    table = Table("metric", f"current {b.model_id} ({b.model_version})",
                  f"candidate {c.model_id} ({c.model_version})", "tolerance", "ok")  # fmt: skip

    def fmt(metric: str, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if metric == "quality" else f"{value:.0%}"

    for row in result.comparisons:
        tol = f"{row.tolerance:g}" if row.metric == "quality" else f"{row.tolerance * 100:g} pts"
        ok = "[green]ok[/green]" if row.ok else f"[red]REGRESSION[/red] {row.note}"
        if row.ok and row.note:
            ok = f"ok ({row.note})"
        table.add_row(row.label, fmt(row.metric, row.baseline), fmt(row.metric, row.candidate),
                      tol, ok)  # fmt: skip
    console.print(table)
    for which, ev in (("current", b), ("candidate", c)):
        if ev.similarity_note:
            console.print(f"similarity ({which} {ev.model_id}): {ev.similarity_note}")
        for o in ev.outcomes:
            if o.error:
                console.print(f"{which} {ev.model_id}: request {o.index} ({o.product}) "
                              f"failed: {o.error}")  # fmt: skip


def promote(
    model_id: Annotated[str, typer.Argument(help="candidate model id, e.g. musicgen-small")],
    tier: Annotated[str, typer.Option(help="tier to promote it to: draft | final")] = "final",
    tolerance: Annotated[
        list[str] | None,
        typer.Option(
            "--tolerance",
            "-t",
            help="METRIC=VALUE, repeatable: how much worse the candidate may be "
            "(rates in 0..1, e.g. tempo=0.05 is 5 points; quality in score units). "
            "Metrics: render_ok tempo key duration loop_seam stems quality "
            "similarity_fp",
        ),
    ] = None,
    requests: Annotated[int, typer.Option(min=1, max=200, help="size of the fixed request set")] = (
        DEFAULT_REQUESTS
    ),
    baseline: Annotated[
        str | None, typer.Option(help="compare against this model instead of the tier's")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="evaluate and compare only; no DB")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Promote a model to a tier only if it is not worse than the tier's current model.

    Renders a fixed request set with both models and compares controls adherence, quality and
    (when a catalog exists) similarity false positives, each within its tolerance. Exit code 1
    and nothing recorded when the candidate regresses; else the promotion is recorded.
    """
    try:
        plan = plan_promotion(model_id, tier=tier, tolerances=tolerance or [],
                              requests=requests, baseline=baseline)  # fmt: skip
    except PromotionError as exc:
        raise _fail(str(exc)) from None
    current = plan.current

    @contextmanager
    def progress(which: str, model: str, total: int) -> Iterator[Callable[[RequestOutcome], None]]:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=True, disable=as_json) as bar:
            task = bar.add_task(f"{which} {model}", total=total)
            yield lambda _: bar.advance(task)

    if dry_run:
        outcome = asyncio.run(run_promotion(plan, db=None, progress=progress))
    else:
        outcome = _with_db(lambda db: run_promotion(plan, db=db, progress=progress))
    result, promotion_id = outcome.result, outcome.promotion_id
    if as_json:
        console.print_json(json.dumps({
            "tier": tier, "candidate": model_id, "current": current, "ok": result.ok,
            "promotion_id": promotion_id, "comparison": result.comparison_rows(),
            "baseline": result.baseline.as_dict(), "candidate_eval": result.candidate.as_dict(),
        }))  # fmt: skip
    else:
        _print_guard(result)
    if not result.ok:
        failed = ", ".join(c.label for c in result.failed)
        err.print(f"[red]refused:[/red] {model_id} is worse than {current} beyond tolerance "
                  f"on: {failed}; nothing was promoted")  # fmt: skip
        raise typer.Exit(1)
    if as_json:
        return
    var = f"TUNESMITH_{tier.upper()}_MODEL"
    if promotion_id is None:
        console.print(f"passed: {model_id} may replace {current} as the {tier} model "
                      "(dry run: nothing recorded)")  # fmt: skip
        return
    console.print(f"promotion #{promotion_id} recorded: {tier} → {model_id} "
                  f"(was {current}). To apply it, set {var}={model_id} on the CPU workers "
                  f"(they resolve tiers to models), add {model_id} to TUNESMITH_SERVED_MODELS "
                  "on the GPU workers, and restart them.")  # fmt: skip

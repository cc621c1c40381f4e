"""Per-variant results of an experiment, with 95 % intervals and a plain-language verdict."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from activities.experiments.stats import Estimate, mean_ci, wilson

TERMINAL = frozenset({"published", "rejected", "expired", "failed", "cancelled"})

# metric key → (label, kind, which direction is better: +1 higher, -1 lower, 0 neither)
METRICS: dict[str, tuple[str, str, int]] = {
    "quality": ("mean quality score", "mean", +1),
    "auto_approve": ("auto-approve rate", "rate", +1),
    "human_approval": ("human approval rate", "rate", +1),
    "rating": ("mean review rating", "mean", +1),
    "error": ("error rate", "rate", -1),
    "cost": ("cost per job (cents)", "mean", -1),
    "lufs": ("mean integrated LUFS", "mean", 0),
    "true_peak": ("mean true peak dBTP", "mean", 0),
}


@dataclass
class VariantResult:
    variant: str
    jobs: int
    finished: int
    metrics: dict[str, Estimate] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "jobs": self.jobs, "finished": self.finished,
                "metrics": {k: e.as_dict() for k, e in self.metrics.items()}}  # fmt: skip


@dataclass
class ExperimentReport:
    experiment: str
    variants: list[VariantResult]
    verdicts: list[str]
    ratings: bool  # whether review ratings (annotations) were available

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "ratings": self.ratings,
                "variants": [v.as_dict() for v in self.variants],
                "verdicts": self.verdicts}  # fmt: skip


def _floats(rows: Iterable[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None]


def variant_result(variant: str, rows: list[dict[str, Any]], *, ratings: bool) -> VariantResult:
    """Metrics of one variant's jobs (rows of `activities.experiments.store.report_rows`).

    Error rate and cost are over finished jobs; auto-approve over jobs with a review outcome;
    human approval over human decisions (approved | rejected).
    """
    finished = [r for r in rows if r.get("stage") in TERMINAL]
    outcomes = [r["review_outcome"] for r in rows if r.get("review_outcome")]
    human = [o for o in outcomes if o in ("approved", "rejected")]
    metrics = {
        "quality": mean_ci(_floats(rows, "quality_score")),
        "auto_approve": wilson(sum(o == "auto_approved" for o in outcomes), len(outcomes)),
        "human_approval": wilson(sum(o == "approved" for o in human), len(human)),
        "error": wilson(sum(r["stage"] == "failed" for r in finished), len(finished)),
        "cost": mean_ci(_floats(finished, "cost_cents")),
        "lufs": mean_ci(_floats(rows, "integrated_lufs")),
        "true_peak": mean_ci(_floats(rows, "true_peak_dbtp")),
    }
    if ratings:
        metrics["rating"] = mean_ci(_floats(rows, "rating"))
    ordered = {k: metrics[k] for k in METRICS if k in metrics}
    return VariantResult(variant, len(rows), len(finished), ordered)


def _fmt(e: Estimate, kind: str) -> str:
    if e.value is None:
        return "n/a"
    if kind == "rate":
        return f"{e.value:.0%} [{e.low:.0%}, {e.high:.0%}]"
    if e.low is None:
        return f"{e.value:.3g}"
    return f"{e.value:.3g} [{e.low:.3g}, {e.high:.3g}]"


def format_estimate(key: str, e: Estimate) -> str:
    return _fmt(e, METRICS[key][1])


def verdicts(variants: list[VariantResult]) -> list[str]:
    """One sentence per metric and pair of variants whose 95 % intervals do not overlap."""
    out: list[str] = []
    for key, (label, kind, better) in METRICS.items():
        for i, a in enumerate(variants):
            for b in variants[i + 1 :]:
                ea, eb = a.metrics.get(key), b.metrics.get(key)
                if ea is None or eb is None or ea.value is None or eb.value is None:
                    continue
                if ea.overlaps(eb):
                    continue
                hi, lo = (a, b) if ea.value > eb.value else (b, a)
                values = f"{_fmt(hi.metrics[key], kind)} vs {_fmt(lo.metrics[key], kind)}"
                sentence = f"{hi.variant} has a higher {label} than {lo.variant}: {values}"
                if better:
                    winner = hi if better > 0 else lo
                    sentence += f" — {winner.variant} is better on this"
                out.append(sentence + ".")
    if not out:
        out.append("No clear difference: every metric's 95 % intervals overlap between the "
                   "variants; keep the experiment running to collect more jobs.")  # fmt: skip
    return out


def build_report(
    experiment: str, variant_names: list[str], rows: list[dict[str, Any]], *, ratings: bool
) -> ExperimentReport:
    """The report over `rows` (one per job), one entry per variant in `variant_names` order."""
    results = [
        variant_result(name, [r for r in rows if r["variant"] == name], ratings=ratings)
        for name in variant_names
    ]
    return ExperimentReport(experiment, results, verdicts(results), ratings)

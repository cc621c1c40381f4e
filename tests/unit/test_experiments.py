"""Experiments: variant parsing, deterministic assignment, request overrides, intervals, report."""

from __future__ import annotations

from collections import Counter

import pytest

from activities.experiments import (
    Experiment,
    ExperimentError,
    Variant,
    apply_experiments,
    assign_variant,
    parse_variant,
)
from activities.experiments.report import build_report
from activities.experiments.stats import mean_ci, wilson


def _exp(name: str = "m", *, weights: tuple[float, float] = (0.5, 0.5), **kw: object) -> Experiment:
    variants = [
        Variant(name="a", weight=weights[0], overrides={"model": "draft"}),
        Variant(name="b", weight=weights[1], overrides={"model": "musicgen-small"}),
    ]
    return Experiment(name=name, variants=variants, **kw)  # type: ignore[arg-type]


def test_parse_variant_forms() -> None:
    v = parse_variant("b:model=musicgen-small:0.5")
    assert (v.name, v.weight, v.overrides) == ("b", 0.5, {"model": "musicgen-small"})
    v = parse_variant("x:template=3,profile=apple:2")
    assert v.overrides == {"template": "3", "profile": "apple"}
    assert parse_variant("control:1").overrides == {}


@pytest.mark.parametrize(
    "spec",
    ["a", "a:model=draft", "a:model=draft:zero", "a:color=red:1", "a:model=Bad_Id:1",
     "a:profile=loud:1", "a:template=v2:1", "a:model=draft:0", "a:model:1"],
)  # fmt: skip
def test_parse_variant_rejects(spec: str) -> None:
    with pytest.raises(ExperimentError):
        parse_variant(spec)


def test_experiment_needs_distinct_variants() -> None:
    with pytest.raises(ValueError):
        Experiment(name="x", variants=[parse_variant("a:1"), parse_variant("a:1")])
    with pytest.raises(ValueError):
        Experiment(name="x", variants=[parse_variant("a:1")])


def test_assignment_is_deterministic_and_follows_weights() -> None:
    exp = _exp(weights=(0.2, 0.8))
    jobs = [f"job-{i}" for i in range(20000)]
    first = [assign_variant(exp, j).name for j in jobs]
    assert first == [assign_variant(exp, j).name for j in jobs]
    share = Counter(first)["a"] / len(jobs)
    assert 0.19 < share < 0.21
    # Another experiment name reshuffles the same jobs independently.
    other = [assign_variant(_exp("n", weights=(0.2, 0.8)), j).name for j in jobs]
    both = sum(x == "a" and y == "a" for x, y in zip(first, other, strict=True)) / len(jobs)
    assert 0.03 < both < 0.05


def test_apply_overrides_model_and_records_assignment() -> None:
    req = {"prompt": "x", "tenant": "acme", "tier": "final"}
    out, assigned = apply_experiments(req, "job-1", [_exp()])
    variant = assign_variant(_exp(), "job-1")
    assert out["model"] == variant.overrides["model"]
    assert "model" not in req  # the input is not modified
    assert [(a.experiment, a.variant, a.overrides) for a in assigned] == [
        ("m", variant.name, {"model": out["model"]})
    ]


def test_apply_respects_filters_and_explicit_choices() -> None:
    req = {"prompt": "x", "tenant": "acme"}
    assert apply_experiments(req, "j", [_exp(tenant="other")])[1] == []
    assert apply_experiments(req, "j", [_exp(tenant="acme")])[1] != []
    assert apply_experiments(req | {"product": "loop"}, "j", [_exp(product="track")])[1] == []
    assert apply_experiments(req, "j", [_exp(product="track")])[1] != []  # default product
    assert apply_experiments(req | {"model": "draft"}, "j", [_exp()]) == (
        req | {"model": "draft"}, []
    )  # fmt: skip
    assert apply_experiments(req, "j", [_exp(active=False)])[1] == []


def test_template_and_profile_overrides() -> None:
    tpl = Experiment(name="t", variants=[parse_variant("old:template=1:1"),
                                         parse_variant("new:template=2:1")])  # fmt: skip
    req = {"template": "podcast-intro", "variables": {"brand": "Acme"}}
    out, assigned = apply_experiments(req, "job-9", [tpl])
    assert out["template"] == f"podcast-intro@{assigned[0].overrides['template'].split('@')[1]}"
    assert apply_experiments(req | {"template": "podcast-intro@1"}, "j", [tpl])[1] == []
    assert apply_experiments({"prompt": "x"}, "j", [tpl])[1] == []  # no template to version

    prof = Experiment(name="p", variants=[parse_variant("s:1"),
                                          parse_variant("a:profile=apple:1")])  # fmt: skip
    jobs = [f"j{i}" for i in range(50)]
    profiles = {apply_experiments({"prompt": "x", "profile": "streaming"}, j, [prof])[0]
                .get("profile") for j in jobs}  # fmt: skip
    assert profiles == {"streaming", "apple"}
    assert apply_experiments({"prompt": "x", "profile": "broadcast"}, "j", [prof])[1] == []


def test_overlapping_experiments_first_wins() -> None:
    _, assigned = apply_experiments({"prompt": "x"}, "j", [_exp("first"), _exp("second")])
    assert [a.experiment for a in assigned] == ["first"]


def test_wilson_interval() -> None:
    e = wilson(8, 10)
    assert e.value == 0.8
    assert e.low == pytest.approx(0.4902, abs=1e-4)
    assert e.high == pytest.approx(0.9433, abs=1e-4)
    zero = wilson(0, 20)
    assert zero.low == 0.0 and 0.0 < zero.high < 0.2  # type: ignore[operator]
    assert wilson(0, 0).value is None


def test_mean_interval() -> None:
    e = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert e.value == 2.5
    # t(0.975, 3) = 3.182; sd = 1.291; half = 3.182 * 1.291 / 2 = 2.054
    assert e.low == pytest.approx(0.446, abs=1e-3)
    assert e.high == pytest.approx(4.554, abs=1e-3)
    assert mean_ci([5.0]).low is None
    assert not mean_ci([1.0, 1.1, 0.9]).overlaps(mean_ci([3.0, 3.1, 2.9]))


def _row(variant: str, i: int, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "variant": variant, "job_id": f"{variant}-{i}", "stage": "published", "error": None,
        "quality_score": 0.9, "integrated_lufs": -14.0, "true_peak_dbtp": -1.2,
        "review_outcome": "auto_approved", "cost_cents": 5.0, "rating": None,
    }  # fmt: skip
    row.update(kw)
    return row


def test_report_metrics_and_verdict() -> None:
    rows = [_row("a", i, quality_score=0.9 + 0.01 * (i % 3)) for i in range(30)]
    rows += [_row("b", i, quality_score=0.5 + 0.01 * (i % 3),
                  review_outcome="approved" if i % 2 else "rejected",
                  stage="failed" if i < 10 else "published",
                  cost_cents=0.0 if i < 10 else 5.0) for i in range(30)]  # fmt: skip
    rows.append(_row("b", 99, stage="generating", review_outcome=None, quality_score=None))
    report = build_report("m", ["a", "b", "c"], rows, ratings=False)
    a, b, c = report.variants
    assert (a.jobs, b.jobs, b.finished, c.jobs) == (30, 31, 30, 0)
    assert "rating" not in a.metrics
    assert a.metrics["auto_approve"].value == 1.0
    assert b.metrics["human_approval"].value == 0.5 and b.metrics["human_approval"].n == 30
    assert b.metrics["error"].value == pytest.approx(1 / 3)
    assert b.metrics["cost"].value == pytest.approx(20 / 6)
    assert c.metrics["quality"].value is None
    text = " ".join(report.verdicts)
    assert "a has a higher mean quality score than b" in text
    assert "a is better on this" in text
    assert "b has a higher error rate than a" in text
    assert report.as_dict()["variants"][0]["metrics"]["quality"]["n"] == 30


def test_report_without_difference_says_so() -> None:
    rows = [_row(v, i) for v in ("a", "b") for i in range(3)]
    report = build_report("m", ["a", "b"], rows, ratings=True)
    assert "rating" in report.variants[0].metrics
    assert report.verdicts[0].startswith("No clear difference")

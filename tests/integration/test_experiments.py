"""Experiments on the real stack: jobs split by a profile experiment, reported per variant from
the DB; `promote` of the draft model over itself is recorded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from activities.experiments import apply_experiments, assign_variant
from activities.experiments import store as edb
from infra.stack import LocalStack
from schemas.request import validate_request
from tunesmith.client import job_id_for

pytestmark = pytest.mark.integration

_EXPERIMENTS = "from tunesmith.cli_experiments import experiments_app as a; a()"
_PROMOTE = ("import typer; from tunesmith.cli_experiments import promote; "
            "a = typer.Typer(); a.command()(promote); a()")  # fmt: skip


def _cli(stack: LocalStack, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], env=stack.child_env(),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


async def test_profile_experiment_report_and_promotion(
    stack: LocalStack, db: object, client: object
) -> None:
    name = "itest-profile"
    out = _cli(stack, _EXPERIMENTS, "create", name, "--variant", "a:profile=streaming:1",
               "--variant", "b:profile=podcast:1", "--tenant", "exp-tenant")  # fmt: skip
    assert out.returncode == 0, out.stderr
    again = _cli(stack, _EXPERIMENTS, "create", name, "--variant", "a:1", "--variant", "b:1")
    assert again.returncode == 2 and "exists already" in again.stderr

    # What the SDK does: assign before normalization, record, submit. Two jobs per variant.
    experiments = await edb.active_experiments(db)  # type: ignore[arg-type]
    experiment = next(e for e in experiments if e.name == name)
    picked: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(100):
        key = f"exp-{i}"
        variant = assign_variant(experiment, job_id_for("exp-tenant", key)).name
        if len(picked[variant]) < 2:
            picked[variant].append(key)
    handles = []
    for key in picked["a"] + picked["b"]:
        job_id = job_id_for("exp-tenant", key)
        request = {"prompt": "experiment groove", "duration_s": 6.0, "tempo_bpm": 120.0,
                   "instruments": ["piano", "bass"], "seed": 3, "tenant": "exp-tenant"}  # fmt: skip
        request, assignments = apply_experiments(request, job_id, experiments)
        assert [a.experiment for a in assignments] == [name]
        await edb.record_assignments(db, job_id, assignments)  # type: ignore[arg-type]
        await edb.record_assignments(db, job_id, assignments)  # type: ignore[arg-type]  # idempotent
        handles.append(await client.submit(validate_request(request), key))  # type: ignore[attr-defined]
    for handle in handles:
        await handle.result()

    rated = job_id_for("exp-tenant", picked["a"][0])
    await db.pool.execute(  # type: ignore[attr-defined]
        "INSERT INTO review_annotations (job_id, reviewer, rating) VALUES ($1, 'r1', 4)", rated
    )

    listed = json.loads(_cli(stack, _EXPERIMENTS, "list", "--json").stdout)
    assert next(r for r in listed if r["name"] == name)["assigned"] == {"a": 2, "b": 2}

    out = _cli(stack, _EXPERIMENTS, "report", name, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    by_variant = {v["variant"]: v for v in report["variants"]}
    assert by_variant["a"]["jobs"] == 2 and by_variant["b"]["finished"] == 2
    lufs = {v: by_variant[v]["metrics"]["lufs"]["value"] for v in "ab"}
    assert lufs["a"] == pytest.approx(-14.0, abs=0.5) and lufs["b"] == pytest.approx(-16.0, abs=0.5)
    assert by_variant["a"]["metrics"]["error"]["value"] == 0.0
    assert by_variant["a"]["metrics"]["cost"]["value"] > 0
    assert any("mean integrated LUFS" in v for v in report["verdicts"])
    assert report["ratings"] and by_variant["a"]["metrics"]["rating"]["value"] == 4.0
    text = _cli(stack, _EXPERIMENTS, "report", name)
    assert text.returncode == 0 and "auto-approve rate" in text.stdout and "verdict:" in text.stdout

    assert _cli(stack, _EXPERIMENTS, "stop", name).returncode == 0
    assert all(e.name != name for e in await edb.active_experiments(db))  # type: ignore[arg-type]
    assert _cli(stack, _EXPERIMENTS, "stop", "no-such").returncode == 2

    # The guard: draft over itself on a 2-request set passes and is recorded.
    out = _cli(stack, _PROMOTE, "draft", "--tier", "final", "--requests", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TUNESMITH_FINAL_MODEL=draft" in out.stdout
    assert await edb.promoted_model(db, "final") == "draft"  # type: ignore[arg-type]
    missing = _cli(stack, _PROMOTE, "no-such-model", "--requests", "1")
    assert missing.returncode == 2 and "unknown model" in missing.stderr

"""The `tunesmith` CLI as a user runs it, against the real stack."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import soundfile as sf

from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from tests.integration.helpers import add_reviewer, assert_nothing_recorded, run_cli

pytestmark = pytest.mark.integration

GEN = ["generate", "cli test groove", "--duration", "6", "--tempo", "100", "--key", "D major",
       "--instruments", "piano,bass,drums", "--seed", "3"]  # fmt: skip


def test_status_reports_every_service_running(stack: LocalStack) -> None:
    proc = run_cli(stack, "status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("temporal", "postgres", "s3", "worker-cpu", "worker-gpu"):
        assert name in proc.stdout
    assert "stopped" not in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "   "], "prompt"),
        (["generate", "x", "--tempo", "500"], "tempo_bpm"),
        (["generate", "x", "--key", "Q minor"], "unknown key"),
        (["generate", "x", "--instruments", "piano,kazoo"], "unknown instrument"),
        (["generate", "x", "--duration", "0"], "duration_s"),
        (["generate", "x", "--duration", "9999"], "limit"),
    ],
)
def test_bad_requests_fail_fast_with_a_clear_message(
    stack: LocalStack, args: list[str], message: str
) -> None:
    proc = run_cli(stack, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "job-" not in proc.stdout


def test_unknown_tier_is_refused_by_the_cli(stack: LocalStack) -> None:
    proc = run_cli(stack, "generate", "x", "--tier", "ultra")
    assert proc.returncode == 2 and "ultra" in proc.stderr


async def test_a_model_only_the_workers_refuse_fails_fast(
    stack: LocalStack, db: Database, store: ObjectStore
) -> None:
    """The pre-flight leaves the model to the workers: the job starts and `normalize_controls`
    refuses it (InvalidRequest) before anything is rendered, stored or charged."""
    started = time.monotonic()
    proc = run_cli(stack, "generate", "x", "--duration", "5", "--model", "no-such-model",
                   "--wait", timeout_s=60)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert time.monotonic() - started < 45, "not fast"
    assert "unknown model 'no-such-model'" in proc.stderr and "models list" in proc.stderr
    job_id = proc.stdout.split()[1]  # "job <id>  (<web ui link>)"
    assert re.fullmatch(r"job-[0-9a-f]{24}", job_id), proc.stdout
    assert f"job {job_id} failed" in proc.stderr
    await assert_nothing_recorded(db, store, job_id)


def test_generate_wait_out_then_jobs_list_and_show(stack: LocalStack, tmp_path: Path) -> None:
    proc = run_cli(stack, *GEN, "--wait", "--out", str(tmp_path), "--idempotency-key", "cli-1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    job_id = out.split()[1]
    assert job_id.startswith("job-")
    for expected in ("generating", "postprocessing", "published", "LUFS", "s3://", "/namespaces/"):
        assert expected in out
    wavs = list(tmp_path.glob("*.wav"))
    assert len(wavs) == 1 and sf.info(wavs[0]).duration == pytest.approx(6.0)
    assert (tmp_path / "provenance.json").exists()

    again = run_cli(stack, *GEN, "--idempotency-key", "cli-1")
    assert again.returncode == 0 and again.stdout.split()[1] == job_id

    listed = run_cli(stack, "jobs", "list")
    assert job_id in listed.stdout and "published" in listed.stdout
    shown = run_cli(stack, "jobs", "show", job_id)
    detail = json.loads(shown.stdout)
    assert detail["job"]["stage"] == "published" and len(detail["ledger"]) == 1
    missing = run_cli(stack, "jobs", "show", "job-does-not-exist")
    assert missing.returncode == 2 and "no job" in missing.stderr


def test_review_queue_from_the_cli(stack: LocalStack) -> None:
    proc = run_cli(stack, *GEN, "--seed", "4", "--review", "required", "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "awaiting review" in proc.stdout
    job_id = proc.stdout.split()[1]

    assert job_id in run_cli(stack, "review", "list").stdout
    shown = run_cli(stack, "review", "show", job_id)
    assert "required by the request" in shown.stdout and "listen:" in shown.stdout

    missing_reason = run_cli(stack, "review", "reject", job_id, "--reviewer", "eve")
    assert missing_reason.returncode != 0  # --reason is required

    # No reviewers yet: authorization is off (bootstrap). Once one exists, it is enforced.
    token = add_reviewer(stack, "eve", "--role", "reviewer")
    try:
        refused = run_cli(stack, "review", "approve", job_id, "--reviewer", "mallory")
        assert refused.returncode == 2 and "unknown reviewer 'mallory'" in refused.stderr
        approved = run_cli(stack, "review", "approve", job_id, "--reviewer", "eve", "--note", "ok",
                           env={"TUNESMITH_REVIEWER_TOKEN": token})  # fmt: skip
    finally:
        run_cli(stack, "reviewers", "remove", "eve", "--purge")
    assert approved.returncode == 0, approved.stderr
    assert "published" in approved.stdout
    assert job_id not in run_cli(stack, "review", "list").stdout

    again = run_cli(stack, "review", "reject", job_id, "--reviewer", "eve", "--reason", "late")
    assert again.returncode == 2 and "not awaiting review" in again.stderr

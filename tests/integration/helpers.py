"""Helpers for integration tests on the real stack."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import JobStatus, Stage
from schemas.request import validate_request
from tunesmith import GenerationRequest, JobHandle


def short_request(**changes: object) -> GenerationRequest:
    base: dict[str, object] = {"prompt": "test groove", "duration_s": 8.0, "tempo_bpm": 120.0,
                               "key": "A minor", "instruments": ["piano", "bass", "drums"],
                               "seed": 7}  # fmt: skip
    base.update(changes)
    return validate_request(base)


async def wait_for_stage(handle: JobHandle, *stages: Stage, timeout_s: float = 90.0) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    last: Stage | None = None
    while True:
        try:
            status = await handle.status()
            if status.stage in stages:
                return status
            last = status.stage
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"{handle.job_id} never reached {stages}; last: {last}")
        await asyncio.sleep(0.1)


def run_cli(
    stack: LocalStack, *args: str, timeout_s: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `tunesmith` CLI against the test stack (`env`: extra variables)."""
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", *args],
        env=stack.child_env() | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def add_reviewer(stack: LocalStack, name: str, *args: str) -> str:
    """`tunesmith reviewers add NAME ARGS`; returns the token it printed (once)."""
    added = run_cli(stack, "reviewers", "add", name, *args)
    assert added.returncode == 0, added.stdout + added.stderr
    match = re.search(r"^token:\s+(rvt_\S+)$", added.stdout, re.MULTILINE)
    assert match, added.stdout
    return match.group(1)


async def assert_nothing_recorded(db: Database, store: ObjectStore, job_id: str) -> None:
    """The job left no trace: no job row, artifact or ledger row, no stored object (a
    request refused at its first step, before any work)."""
    assert await db.get_job(job_id) is None
    assert await db.artifacts(job_id) == [] and await db.ledger(job_id) == []
    settings = store.settings
    for bucket in (settings.raw_bucket, settings.published_bucket):
        assert store.list_keys(bucket, f"{job_id}/") == [], bucket

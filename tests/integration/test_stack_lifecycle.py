"""`tunesmith up` is idempotent, `down` stops only what `up` started, and state survives both."""

from __future__ import annotations

import asyncio
import shutil

import psutil
import pytest

from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import Stage
from tests.conftest import make_settings, private_home
from tests.integration.helpers import short_request
from tunesmith import Client

pytestmark = pytest.mark.integration

SERVICES = ("temporal", "postgres", "s3", "worker-cpu", "worker-gpu")


def test_state_survives_down_and_up() -> None:
    home = private_home("tunesmith-lifecycle-")
    stack = LocalStack(make_settings(home, pg_shared_buffers="160MB"))
    bystander = psutil.Popen(["sleep", "300"])  # a process `down` must not touch
    try:
        stack.up(log=lambda _m: None)
        pids = {name: stack.process(name).running_pid() for name in SERVICES}
        assert all(pids.values())

        messages: list[str] = []
        stack.up(log=messages.append)  # idempotent: nothing restarted
        assert {n: stack.process(n).running_pid() for n in SERVICES} == pids
        assert sum("already running" in m for m in messages) == len(SERVICES)

        job_id, wav_uri = asyncio.run(_publish_one(stack))
        assert (
            "catalog fingerprint index warm: " in stack.process("worker-cpu").log_file.read_text()
        )

        stack.down(log=lambda _m: None)
        assert all(not psutil.pid_exists(pid) for pid in pids.values())
        assert bystander.is_running()
        assert [s.state for s in stack.status()] == ["stopped"] * len(SERVICES)

        stack.up(log=lambda _m: None)
        asyncio.run(_still_there(stack, job_id, wav_uri))
    finally:
        stack.destroy(log=lambda _m: None)
        shutil.rmtree(home.parent, ignore_errors=True)
        bystander.kill()


async def _publish_one(stack: LocalStack) -> tuple[str, str]:
    client = await Client.connect(stack.settings)
    handle = await client.submit(short_request(duration_s=5.0, seed=31))
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED
    return handle.job_id, result.artifacts["published_wav24"]


async def _still_there(stack: LocalStack, job_id: str, wav_uri: str) -> None:
    client = await Client.connect(stack.settings)
    status = await client.get_handle(job_id).status()  # workflow history replayed by a worker
    assert status.stage is Stage.PUBLISHED and status.artifacts["published_wav24"] == wav_uri
    history = await client.temporal.get_workflow_handle(job_id).fetch_history()
    assert len(history.events) > 10
    db = await Database.open(stack.settings)
    try:
        job = await db.get_job(job_id)
        assert job is not None and job["stage"] == "published"
        assert await db.pool.fetchval("SHOW shared_buffers") == "160MB"  # TUNESMITH_PG_...
    finally:
        await db.close()
    assert ObjectStore(stack.settings).exists(wav_uri)

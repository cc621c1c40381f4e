"""A GPU worker killed mid-generation: the job still completes, with one artifact and one charge."""

from __future__ import annotations

import asyncio
import time

import pytest

from infra.db import Database
from infra.settings import Settings
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import Stage
from tests.integration.helpers import short_request, wait_for_stage
from tunesmith import Client

pytestmark = pytest.mark.integration


async def test_worker_killed_mid_generation_is_retried_once(
    client: Client, db: Database, store: ObjectStore, settings: Settings, stack: LocalStack
) -> None:
    # Long enough to take several seconds to render, so the kill lands mid-activity.
    handle = await client.submit(short_request(duration_s=300.0, seed=21))
    await wait_for_stage(handle, Stage.GENERATING)
    deadline = time.monotonic() + 60
    while (await handle.status()).progress <= 0.0:
        assert time.monotonic() < deadline, "generate_audio never reported progress"
        await asyncio.sleep(0.05)

    gpu = stack.process("worker-gpu")
    gpu.kill()  # SIGKILL: no graceful shutdown, no chance to finish the render
    assert gpu.running_pid() is None
    stack.start_worker("gpu")

    result = await asyncio.wait_for(handle.result(), timeout=240)
    assert result.stage is Stage.PUBLISHED

    history = await handle._handle.fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    retried = [
        scheduled[e.activity_task_started_event_attributes.scheduled_event_id]
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.attempt > 1
    ]
    assert retried == ["generate_audio"], "exactly the killed render should have been retried"
    assert store.list_keys(settings.raw_bucket, f"{handle.job_id}/generate_audio/") == [
        f"{handle.job_id}/generate_audio/raw.wav"
    ]
    raw_rows = [a for a in await db.artifacts(handle.job_id) if a["kind"] == "raw"]
    assert len(raw_rows) == 1 and raw_rows[0]["duration_s"] == pytest.approx(300.0)
    assert len(await db.ledger(handle.job_id)) == 1
    names = sorted(k.split("/", 1)[1] for k in
                   store.list_keys(settings.published_bucket, f"{handle.job_id}/"))  # fmt: skip
    assert names == sorted([f"{handle.job_id}.mp3", f"{handle.job_id}.wav", "overview.png",
                            "preview.mp3", "provenance.json"])  # fmt: skip

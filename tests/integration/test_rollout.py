"""Worker rollouts on the real stack: a new build ramps, is promoted, and takes over running jobs.

The stack's CPU worker is the current version (rollout "auto"); the test starts a second CPU
worker in-process as another build of the same deployment, exactly as a deploy would, and
always hands the deployment back to the stack's build afterwards.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from infra.db import Database
from infra.settings import Settings
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import Stage
from tests.integration.helpers import run_cli, short_request, wait_for_stage
from tunesmith import Client
from workers import versioning
from workers.runtime import build_workers

NEW_BUILD = "wf-rollout-test"


@pytest.fixture
async def new_build(settings: Settings, client: Client, db: Database) -> AsyncIterator[Worker]:
    """A CPU worker of build NEW_BUILD, polling next to the stack's; undone afterwards."""
    old = versioning.build_id(settings)
    new_settings = settings.model_copy(update={"build_id": NEW_BUILD})
    (worker,) = build_workers("cpu", client.temporal, db, ObjectStore(new_settings), new_settings)
    async with worker:
        await versioning.wait_for_build(client.temporal, settings, NEW_BUILD)
        try:
            yield worker
        finally:
            await versioning.ramp(client.temporal, settings, None, 0)
            await versioning.promote(client.temporal, settings, old)


async def _build_of_last_task(client: Client, job_id: str) -> str:
    """The build id of the worker that completed the job's last workflow task."""
    builds = [
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        async for e in client.temporal.get_workflow_handle(job_id).fetch_history_events()
        if e.HasField("workflow_task_completed_event_attributes")
    ]
    return builds[-1]


async def test_new_build_takes_over_a_running_job_after_promotion(
    stack: LocalStack, settings: Settings, client: Client, new_build: Worker
) -> None:
    old = versioning.build_id(settings)
    state = await versioning.describe(client.temporal, settings)
    assert state.current == old and state.ramping is None
    assert {v.build_id: v.status for v in state.versions}[NEW_BUILD] == "inactive"

    # A job waiting for review on the old build.
    handle = await client.submit(short_request(review="required", seed=41, duration_s=6.0))
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    assert await _build_of_last_task(client, handle.job_id) == old

    # Bad rollout commands are refused before anything changes.
    bad = run_cli(stack, "rollout", "ramp", NEW_BUILD, "--percent", "150")
    assert bad.returncode == 2 and "0–100" in bad.stderr
    unknown = run_cli(stack, "rollout", "promote", "wf-never-started")
    assert unknown.returncode == 2 and "has no workers" in unknown.stderr
    again = run_cli(stack, "rollout", "ramp", old, "--percent", "10")
    assert again.returncode == 2 and "already current" in again.stderr
    assert (await versioning.describe(client.temporal, settings)).current == old

    ramped = run_cli(stack, "rollout", "ramp", NEW_BUILD, "--percent", "25")
    assert ramped.returncode == 0, ramped.stderr
    state = await versioning.describe(client.temporal, settings)
    assert (state.ramping, state.ramp_percent) == (NEW_BUILD, 25.0)
    assert run_cli(stack, "rollout", "unramp").returncode == 0
    assert (await versioning.describe(client.temporal, settings)).ramping is None

    promoted = run_cli(stack, "rollout", "promote", NEW_BUILD)
    assert promoted.returncode == 0, promoted.stderr
    shown = json.loads(run_cli(stack, "rollout", "status", "--json").stdout)
    assert shown["current"] == NEW_BUILD and shown["ramping"] is None
    versions = {v["build_id"]: v for v in shown["versions"]}
    assert versions[NEW_BUILD]["status"] == "current"
    assert versions[old]["status"] in {"draining", "drained"}

    # The running job continues on the new build (AUTO_UPGRADE) and publishes.
    await handle.approve(reviewer="ops", note="after rollout")
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED
    assert await _build_of_last_task(client, handle.job_id) == NEW_BUILD
    described = await client.temporal.get_workflow_handle(handle.job_id).describe()
    assert described.status is WorkflowExecutionStatus.COMPLETED

    # New jobs run wholly on the new build.
    fresh = await client.submit(short_request(seed=42, duration_s=4.0, review="auto"))
    assert (await fresh.result()).stage is Stage.PUBLISHED
    assert await _build_of_last_task(client, fresh.job_id) == NEW_BUILD

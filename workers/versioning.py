"""Temporal Worker Versioning: how new workflow code rolls out without breaking running jobs.

Every CPU (workflow) worker joins the Worker Deployment `settings.deployment_name` as version
`build_id`. Temporal sends each workflow task to the deployment's *current* version (or, for a
share of workflows, its *ramping* one), so workers of a build that is not yet promoted never
pick up work, and an old build stops receiving work the moment a new one is promoted.

All workflows run with the AUTO_UPGRADE behaviour: each can outlive a deploy (GenerateTrack
waits days for review, Takedown for a dispute window, DeliverJobEvents retries for 24 h), so a
running one moves to the new current version at its next task instead of being pinned to
workers that are gone. That is safe because every workflow command change is guarded by
`workflow.patched` and the replay test (tests/unit/test_replay.py) replays saved histories of
every path against the new code before it ships.

GPU workers run activities only and stay unversioned: an activity has no history to replay,
and activity inputs only ever gain optional fields.

The build id defaults to a hash of the code that decides workflow commands (`workflows/`,
`schemas/`), so two processes of the same code agree without configuration and any change to
it is a new version; CI/CD may set `TUNESMITH_BUILD_ID` (e.g. the git sha) instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from infra.settings import Settings
from schemas.errors import TunesmithError

_ROOT = Path(__file__).resolve().parent.parent
# The code whose change can change workflow commands (and so needs a new version).
WORKFLOW_CODE_DIRS = ("workflows", "schemas")
IDENTITY = "tunesmith-rollout"


class RolloutError(TunesmithError):
    """A rollout command that cannot be carried out (unknown build, bad percentage...)."""


def code_build_id(root: Path = _ROOT, dirs: tuple[str, ...] = WORKFLOW_CODE_DIRS) -> str:
    """`wf-<12 hex>`: sha256 over the paths and bytes of the workflow code's Python files."""
    digest = hashlib.sha256()
    for folder in dirs:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return f"wf-{digest.hexdigest()[:12]}"


def build_id(settings: Settings) -> str:
    """The build id this process's workflow workers register as."""
    return settings.build_id or code_build_id()


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The CPU workers' Worker Deployment options, or None when versioning is switched off."""
    if not settings.worker_versioning:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.deployment_name, build_id(settings)),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
    )


@dataclass(frozen=True)
class VersionState:
    """One build of the deployment as Temporal sees it."""

    build_id: str
    status: str  # current | ramping | draining | drained | inactive | created
    created: datetime | None
    running_workflows: int


@dataclass(frozen=True)
class DeploymentState:
    """The deployment's routing: which build gets new work, and every known build."""

    name: str
    current: str | None
    ramping: str | None
    ramp_percent: float
    versions: list[VersionState]


def _status_name(value: int) -> str:
    return (
        WorkerDeploymentVersionStatus.Name(value)  # type: ignore[arg-type]
        .removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_")
        .lower()
    )


async def _deployment_info(client: Client, settings: Settings) -> WorkerDeploymentInfo:
    """The server's view of the deployment (one RPC, no per-version workflow counts).

    Raises:
        RolloutError: no worker of the deployment has ever polled (versioning off or no worker).
    """
    try:
        return (
            await client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(
                    namespace=settings.temporal_namespace,
                    deployment_name=settings.deployment_name,
                )
            )
        ).worker_deployment_info
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise RolloutError(
                f"no worker deployment {settings.deployment_name!r}: no versioned worker has"
                " polled yet (is the stack up, with TUNESMITH_WORKER_VERSIONING on?)"
            ) from None
        raise


async def describe(client: Client, settings: Settings) -> DeploymentState:
    """The deployment's routing and versions, with running workflows per version.

    Raises:
        RolloutError: no worker of the deployment has ever polled (versioning off or no worker).
    """
    info = await _deployment_info(client, settings)
    routing = info.routing_config
    versions = []
    for summary in sorted(info.version_summaries, key=lambda s: s.create_time.ToDatetime()):
        build = summary.deployment_version.build_id
        query = (
            f'TemporalWorkerDeploymentVersion = "{settings.deployment_name}:{build}"'
            ' AND ExecutionStatus = "Running"'
        )
        count = (await client.count_workflows(query)).count
        created = summary.create_time.ToDatetime() if summary.HasField("create_time") else None
        versions.append(VersionState(build, _status_name(summary.status), created, count))
    return DeploymentState(
        name=info.name,
        current=routing.current_deployment_version.build_id or None,
        ramping=routing.ramping_deployment_version.build_id or None,
        ramp_percent=round(float(routing.ramping_version_percentage), 2),
        versions=versions,
    )


async def _known_build(client: Client, settings: Settings, build: str) -> WorkerDeploymentInfo:
    """The deployment's info, after checking that workers of `build` have polled it."""
    info = await _deployment_info(client, settings)
    builds = [v.deployment_version.build_id for v in info.version_summaries]
    if build not in builds:
        raise RolloutError(
            f"build {build!r} has no workers in deployment {settings.deployment_name!r}"
            f" (known builds: {', '.join(builds) or 'none'}); start its workers first"
        )
    return info


async def promote(client: Client, settings: Settings, build: str) -> None:
    """Make `build` the current version: all new workflow tasks go to its workers.

    Raises:
        RolloutError: no worker of that build has polled the deployment.
    """
    await _known_build(client, settings, build)
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=settings.temporal_namespace,
            deployment_name=settings.deployment_name,
            build_id=build,
            identity=IDENTITY,
        )
    )


async def ramp(client: Client, settings: Settings, build: str | None, percent: float) -> None:
    """Send `percent` of workflows (chosen by workflow id, so stable) to `build`.

    `build=None` removes the ramp. Raises RolloutError for an unknown build, a percentage
    outside 0–100, or ramping the current version.
    """
    if not 0 <= percent <= 100:
        raise RolloutError(f"ramp percentage must be within 0–100, not {percent}")
    if build is not None:
        info = await _known_build(client, settings, build)
        if build == info.routing_config.current_deployment_version.build_id:
            raise RolloutError(f"build {build!r} is already current; nothing to ramp")
    await client.workflow_service.set_worker_deployment_ramping_version(
        SetWorkerDeploymentRampingVersionRequest(
            namespace=settings.temporal_namespace,
            deployment_name=settings.deployment_name,
            build_id=build or "",
            percentage=percent if build is not None else 0.0,
            identity=IDENTITY,
        )
    )


async def wait_for_build(
    client: Client, settings: Settings, build: str, *, timeout_s: float = 30.0
) -> None:
    """Wait until the server knows `build`: it learns of a version from the first poll of its
    workers, a moment after they start. Raises RolloutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await _known_build(client, settings, build)
            return
        except RolloutError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def promote_when_polling(
    client: Client, settings: Settings, build: str, *, timeout_s: float = 30.0
) -> None:
    """Promote `build` as soon as its just-started workers are known (rollout "auto")."""
    await wait_for_build(client, settings, build, timeout_s=timeout_s)
    await promote(client, settings, build)

"""SDK for takedowns: file a claim against a published asset, dispute it, decide it.

Every function takes a connected `tunesmith.Client`. Bad input fails here with a typed error
before anything is started or changed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Literal

from pydantic import ValidationError
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from schemas import names
from schemas.errors import InvalidRequestError
from schemas.jobs import Stage
from schemas.takedown import (
    DECIDE_UPDATE,
    DISPUTE_UPDATE,
    STATUS_QUERY,
    TAKEDOWN_WORKFLOW,
    DecisionRequest,
    DisputeRequest,
    TakedownClaim,
    TakedownFiled,
    TakedownInput,
    TakedownNotAllowedError,
    TakedownNotFoundError,
    TakedownSettings,
    TakedownState,
    TakedownStatus,
    takedown_workflow_id,
)
from tunesmith.client import Client

__all__ = [
    "TakedownNotAllowedError",
    "TakedownNotFoundError",
    "decide",
    "dispute",
    "file_takedown",
    "get_takedown",
    "validate_claim",
]


def _handle(client: Client, job_id: str) -> WorkflowHandle[Any, TakedownStatus]:
    return client.temporal.get_workflow_handle(
        takedown_workflow_id(job_id), result_type=TakedownStatus
    )


async def _describe_status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    """The takedown workflow's execution status, or None when there is none."""
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return desc.status


async def get_takedown(client: Client, job_id: str) -> TakedownStatus:
    """The takedown of `job_id` (the latest filing).

    Raises:
        TakedownNotFoundError: none was filed.
    """
    try:
        return await _handle(client, job_id).query(STATUS_QUERY, result_type=TakedownStatus)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise TakedownNotFoundError(f"no takedown filed for {job_id!r}") from None
        raise


def validate_claim(
    job_id: str,
    *,
    claimant: str,
    evidence: str,
    contact_email: str,
    evidence_url: str | None = None,
    callback_url: str | None = None,
) -> TakedownClaim:
    """A validated claim (what `file_takedown` files); needs no connection.

    Raises:
        InvalidRequestError: a field is missing or malformed (one problem per field).
    """
    try:
        return TakedownClaim(job_id=job_id, claimant=claimant, evidence=evidence,
                             contact_email=contact_email, evidence_url=evidence_url,
                             callback_url=callback_url)  # fmt: skip
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise InvalidRequestError("; ".join(problems), problems=problems) from None


async def file_takedown(
    client: Client,
    job_id: str,
    *,
    claimant: str,
    evidence: str,
    contact_email: str,
    evidence_url: str | None = None,
    callback_url: str | None = None,
    dispute_window_s: float | None = None,
    escalate_after_s: float | None = None,
    wait_s: float = 60.0,
) -> TakedownFiled:
    """File a claim: the asset is quarantined at once (this waits up to `wait_s` for it).

    Filing again for an asset whose takedown is open returns that takedown (`created` False).
    Windows default to `TUNESMITH_TAKEDOWN_*` settings. With `callback_url` (http or https),
    the claimant receives signed webhook events of this takedown: `takedown.filed` once the
    asset is quarantined, then `takedown.restored` or `takedown.removed`.

    Raises:
        InvalidRequestError: a field is missing or malformed.
        JobNotFoundError: no such job.
        TakedownNotAllowedError: the job is not published, or its content was already removed.
    """
    claim = validate_claim(job_id, claimant=claimant, evidence=evidence,
                           contact_email=contact_email, evidence_url=evidence_url,
                           callback_url=callback_url)  # fmt: skip
    defaults = TakedownSettings()
    window = defaults.dispute_window_s if dispute_window_s is None else dispute_window_s
    escalate = defaults.escalate_after_s if escalate_after_s is None else escalate_after_s
    if window <= 0 or escalate <= 0:
        raise InvalidRequestError("dispute window and escalation delay must be positive")

    status = await client.get_handle(claim.job_id).status()  # JobNotFoundError when unknown
    if status.stage is not Stage.PUBLISHED:
        raise TakedownNotAllowedError(
            f"job {claim.job_id} is not published (stage: {status.stage.value}); "
            "only published assets can be taken down"
        )
    handle = _handle(client, claim.job_id)
    existing = await _describe_status(handle)
    if existing is WorkflowExecutionStatus.RUNNING:
        return TakedownFiled(workflow_id=handle.id, created=False,
                             status=await get_takedown(client, claim.job_id))  # fmt: skip
    if existing is WorkflowExecutionStatus.COMPLETED:
        previous = await get_takedown(client, claim.job_id)
        if previous.state is TakedownState.REMOVED:
            raise TakedownNotAllowedError(
                f"job {claim.job_id} was already removed (takedown {previous.takedown_id})"
            )
        # Restored earlier: a new claim gets a new takedown.

    takedown_id = f"td-{uuid.uuid4().hex[:20]}"
    await client.temporal.start_workflow(
        TAKEDOWN_WORKFLOW,
        TakedownInput(takedown_id=takedown_id, claim=claim, dispute_window_s=window,
                      escalate_after_s=escalate,
                      quarantine_bucket=defaults.quarantine_bucket),
        id=handle.id,
        task_queue=names.CPU_TASK_QUEUE,
        # A concurrent filing for the same asset joins the running takedown.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )  # fmt: skip
    current = await _wait_quarantined(client, handle, claim.job_id, wait_s)
    return TakedownFiled(
        workflow_id=handle.id, created=current.takedown_id == takedown_id, status=current
    )


async def _wait_quarantined(
    client: Client, handle: WorkflowHandle[Any, TakedownStatus], job_id: str, wait_s: float
) -> TakedownStatus:
    deadline = time.monotonic() + wait_s
    while True:
        if await _describe_status(handle) is WorkflowExecutionStatus.FAILED:
            try:
                await handle.result()
            except WorkflowFailureError as exc:
                cause = exc.cause
                raise TakedownNotAllowedError(str(getattr(cause, "message", cause))) from None
        current = await get_takedown(client, job_id)
        if current.state is not TakedownState.FILED or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.2)


async def dispute(client: Client, job_id: str, *, by: str, reason: str) -> TakedownStatus:
    """The owner disputes the takedown (within the dispute window).

    Raises:
        TakedownNotFoundError: no takedown for this asset.
        TakedownNotAllowedError: refused (window closed, not the owner, already decided, ...).
    """
    if not by.strip() or not reason.strip():
        raise TakedownNotAllowedError("a dispute needs who disputes (--by) and a reason")
    return await _update(client, job_id, DISPUTE_UPDATE, DisputeRequest(by=by, reason=reason))


async def decide(
    client: Client,
    job_id: str,
    *,
    decision: Literal["restore", "remove"],
    reviewer: str,
    note: str | None = None,
) -> TakedownStatus:
    """A reviewer's decision; returns once the outcome is applied (restored or removed).

    Raises:
        TakedownNotFoundError: no takedown for this asset.
        TakedownNotAllowedError: refused (no reviewer, already decided, a party to the claim).
    """
    if decision not in ("restore", "remove"):
        raise TakedownNotAllowedError(f"decision must be restore or remove, not {decision!r}")
    if not reviewer.strip():
        raise TakedownNotAllowedError("a decision needs a reviewer")
    req = DecisionRequest(decision=decision, reviewer=reviewer.strip(), note=note)
    return await _update(client, job_id, DECIDE_UPDATE, req)


async def _update(client: Client, job_id: str, update: str, arg: object) -> TakedownStatus:
    handle = _handle(client, job_id)
    try:
        return await handle.execute_update(update, arg, result_type=TakedownStatus)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise TakedownNotAllowedError(str(getattr(cause, "message", cause))) from None
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        # Finished (decided) or never filed: get_takedown raises TakedownNotFoundError.
        current = await get_takedown(client, job_id)
        raise TakedownNotAllowedError(
            f"the takedown of {job_id} is closed (state: {current.state.value})"
        ) from None

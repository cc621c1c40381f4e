"""The Python SDK: submit generation jobs, follow them, review them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from temporalio.client import (
    Client as TemporalClient,
)
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.controls.inputs import upload_local_inputs
from activities.review.proof import review_proof
from infra.db import Database
from infra.settings import Settings, get_settings
from infra.store import ObjectStore
from infra.temporal import connect_temporal
from schemas import names
from schemas.errors import (
    REVIEW_REFUSAL_UNAUDITED,
    IdempotencyConflictError,
    InvalidRequestError,
    JobNotFoundError,
    ReviewNotAllowedError,
    TunesmithError,
)
from schemas.jobs import (
    AuditReviewRefusalInput,
    GenerateTrackInput,
    GenerationResult,
    JobStatus,
    ReviewDecision,
    Stage,
)
from schemas.request import GenerationRequest
from tunesmith.jobs import JobView, read_job
from tunesmith.preflight import CheckedRequest, check_request

_MEMO_REQUEST_SHA = "request_sha256"
_AUDIT_WAIT_S = 60.0  # how long a refused review decision waits for its audit row
log = logging.getLogger("tunesmith.client")


class JobFailedError(TunesmithError):
    """The job's workflow failed; `error_type` carries the pipeline's error type."""

    def __init__(self, job_id: str, message: str, error_type: str | None) -> None:
        super().__init__(f"job {job_id} failed: {message}")
        self.job_id = job_id
        self.error_type = error_type


def job_id_for(tenant: str, idempotency_key: str) -> str:
    """The job id an idempotency key maps to: one key, one job, forever."""
    digest = hashlib.sha256(f"{tenant}\x00{idempotency_key}".encode()).hexdigest()
    return f"job-{digest[:24]}"


class JobHandle:
    """A handle on one job (one GenerateTrack workflow)."""

    def __init__(self, client: Client, job_id: str) -> None:
        self._client = client
        self.job_id = job_id
        self._handle: WorkflowHandle[Any, GenerationResult] = client.temporal.get_workflow_handle(
            job_id, result_type=GenerationResult
        )

    @property
    def web_url(self) -> str:
        """Link to the run in the Temporal Web UI."""
        return self._client.settings.workflow_url(self.job_id)

    async def status(self) -> JobStatus:
        """Current stage, progress, artifact URIs and review state.

        Raises:
            JobNotFoundError: no such job.
        """
        try:
            status = await self._handle.query(names.STATUS_QUERY, result_type=JobStatus)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise JobNotFoundError(f"no job {self.job_id!r}") from None
            raise
        if status.stage is Stage.GENERATING:
            status.progress = await self._generation_progress()
        elif status.stage not in (Stage.QUEUED, Stage.NORMALIZING):
            status.progress = 1.0
        return status

    async def _generation_progress(self) -> float:
        """Progress heartbeated by the running `generate_audio` activity, if any."""
        desc = await self._handle.describe()
        converter = self._client.temporal.data_converter
        for pending in desc.raw_description.pending_activities:
            if (
                pending.activity_type.name == names.GENERATE_AUDIO
                and pending.heartbeat_details.payloads
            ):
                details = await converter.decode(pending.heartbeat_details.payloads)
                if details and isinstance(details[0], dict):
                    return float(details[0].get("progress", 0.0))
        return 0.0

    async def result(self) -> GenerationResult:
        """Wait for the job to end: published, rejected, expired (or awaiting a review).

        Raises:
            JobFailedError: the workflow failed (e.g. invalid request started directly).
        """
        try:
            return await self._handle.result()
        except WorkflowFailureError as exc:
            cause = exc.cause
            raise JobFailedError(
                self.job_id, str(getattr(cause, "message", cause)), getattr(cause, "type", None)
            ) from None

    async def approve(
        self, *, reviewer: str, note: str | None = None, token: str | None = None
    ) -> JobStatus:
        """Approve a job awaiting review; it is then published.

        Args:
            reviewer: a registered reviewer.
            note: kept with the decision.
            token: the reviewer's token (default: `TUNESMITH_REVIEWER_TOKEN`); it signs the
                decision and is never sent itself.

        Raises:
            ReviewNotAllowedError: the job is not awaiting review, or the reviewer may not
                decide (unknown, wrong tenant, no or wrong proof).
        """
        return await self._review(self._decision("approve", reviewer, note, token))

    async def reject(self, *, reviewer: str, reason: str, token: str | None = None) -> JobStatus:
        """Reject a job awaiting review; nothing is published or charged.

        Args: as `approve`, with `reason` kept as the note.

        Raises:
            ReviewNotAllowedError: as `approve`.
        """
        return await self._review(self._decision("reject", reviewer, reason, token))

    def _decision(
        self, decision: Literal["approve", "reject"], reviewer: str, note: str | None,
        token: str | None,
    ) -> ReviewDecision:  # fmt: skip
        token = token or self._client.settings.reviewer_token
        proof = None
        if token:
            proof = review_proof(token, job_id=self.job_id, reviewer=reviewer, decision=decision)
        return ReviewDecision(decision=decision, reviewer=reviewer, note=note, proof=proof)

    async def _review(self, decision: ReviewDecision) -> JobStatus:
        """Submit the decision; a refusal that no activity audited is audited here (action
        `client`), so every decision is audited whichever client sent it.

        The workflow's `authorize_review` activity audits the refusals it makes; those of the
        update's validator (the job is not awaiting review, already decided or approved by
        this reviewer) carry the `unaudited` detail, and a decision for a finished or unknown
        job never reaches a workflow. Those are audited by the AuditReviewRefusal workflow,
        awaited before the refusal is raised: the SDK needs Temporal only, never the DB.
        """
        try:
            return await self._submit_review(decision)
        except (_UnauditedRefusal, JobNotFoundError) as exc:
            await self._client._audit_refusal(self.job_id, decision, str(exc))
            raise

    async def _submit_review(self, decision: ReviewDecision) -> JobStatus:
        try:
            return await self._handle.execute_update(
                names.SUBMIT_REVIEW_UPDATE, decision, result_type=JobStatus
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = str(getattr(cause, "message", cause))
            if REVIEW_REFUSAL_UNAUDITED in getattr(cause, "details", ()):
                raise _UnauditedRefusal(message) from None
            raise ReviewNotAllowedError(message) from None
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            # The workflow has finished (or never existed: status() raises JobNotFoundError).
            status = await self.status()
            raise _UnauditedRefusal(
                f"job {self.job_id} is not awaiting review (stage: {status.stage.value})"
            ) from None


class _UnauditedRefusal(ReviewNotAllowedError):
    """A refused decision nothing has audited yet (see `JobHandle._review`)."""


class Client:
    """The tunesmith SDK client. Create it with `await Client.connect()`."""

    def __init__(self, temporal: TemporalClient, settings: Settings) -> None:
        self.temporal = temporal
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> Client:
        """Connect to the platform (the local stack unless `TUNESMITH_*` settings say otherwise)."""
        settings = settings or get_settings()
        return cls(await connect_temporal(settings), settings)

    def get_handle(self, job_id: str) -> JobHandle:
        return JobHandle(self, job_id)

    async def _audit_refusal(self, job_id: str, decision: ReviewDecision, reason: str) -> None:
        """Audit a refused decision (action `client`) through the AuditReviewRefusal workflow
        on the CPU workers; waits up to `_AUDIT_WAIT_S` for the row. Started, the workflow
        writes it later if the workers are busy or down (then a warning is logged)."""
        inp = AuditReviewRefusalInput(job_id=job_id, reviewer=decision.reviewer,
                                      decision=decision.decision, reason=reason)  # fmt: skip
        handle = await self.temporal.start_workflow(
            names.AUDIT_REVIEW_REFUSAL_WORKFLOW,
            inp,
            id=f"{job_id}-review-refusal-{uuid.uuid4().hex[:12]}",
            task_queue=names.CPU_TASK_QUEUE,
        )
        try:
            await asyncio.wait_for(handle.result(), _AUDIT_WAIT_S)
        except TimeoutError:
            log.warning("the refusal of %s's decision on %s is audited later (run %s)",
                        decision.reviewer, job_id, handle.id)  # fmt: skip

    async def job(self, job_id: str, *, db: Database | None = None) -> JobView:
        """Everything recorded about a job: its row, artifacts, review, ledger, review audit,
        similarity check and overview image (`tunesmith.jobs.read_job`).

        Args:
            job_id: the job.
            db: an open metadata DB to read from (default: a short-lived connection).

        Raises:
            JobNotFoundError: the metadata DB has no such job.
        """
        if db is None:
            db = await Database.open(self.settings, max_size=1)
            try:
                return await self.job(job_id, db=db)
            finally:
                await db.close()
        url = self.settings.workflow_url(job_id)
        return await read_job(db, job_id, web_ui=url, temporal=self.temporal)

    @cached_property
    def store(self) -> ObjectStore:
        """The artifact store (inputs are uploaded here; outputs are read from here)."""
        return ObjectStore(self.settings)

    async def submit(
        self,
        request: GenerationRequest | dict[str, Any] | CheckedRequest,
        idempotency_key: str | None = None,
        *,
        midi: Path | str | None = None,
        reference: Path | str | None = None,
    ) -> JobHandle:
        """Check `request` and start its job; returns at once.

        `midi` (a .mid melody) and `reference` (an audio file) are local files: they are
        checked and read here, then uploaded, and the request refers to them by URI.
        The request is checked first (`check_request`: schema, input files, template,
        contradictions between controls), so bad input fails before anything is uploaded,
        started or charged; a request already checked (`CheckedRequest`) is not checked again.
        The model (tier -> model, its card) is the workers' to decide: a request they refuse
        fails the job at its first step, before any work.
        With an idempotency key, submitting again returns the same job (never a second one).

        Raises:
            InvalidRequestError: the request or an input file is invalid; nothing was started.
            IdempotencyConflictError: the key was used before with a different request.
        """
        if isinstance(request, CheckedRequest):
            if midi is not None or reference is not None:
                raise InvalidRequestError("a checked request carries its own input files")
            checked = request
        else:
            checked = await asyncio.to_thread(
                check_request, request, midi=midi, reference=reference, store=self.store
            )
        req = checked.request
        if idempotency_key is not None:
            if not idempotency_key.strip() or len(idempotency_key) > 200:
                raise InvalidRequestError("idempotency_key must be 1-200 non-blank characters")
            job_id = job_id_for(req.tenant, idempotency_key)
        else:
            job_id = f"job-{uuid.uuid4().hex[:24]}"
        if checked.midi is not None or checked.reference is not None:
            await asyncio.to_thread(upload_local_inputs, self.store, checked.midi,
                                    checked.reference)  # fmt: skip
        digest = req.sha256()
        s = self.settings
        inp = GenerateTrackInput(
            job_id=job_id,
            request=req.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            review_timeout_s=s.review_timeout_s,
            heartbeat_timeout_s=s.heartbeat_timeout_s,
            gpu_queue_timeout_s=s.gpu_queue_timeout_s,
        )
        try:
            # Search attributes (stage, model, product, tenant) are the workflow's to set.
            await self.temporal.start_workflow(
                names.GENERATE_TRACK_WORKFLOW,
                inp,
                id=job_id,
                task_queue=names.CPU_TASK_QUEUE,
                # A key maps to one job: a running job is returned as is, a finished one is
                # never started again; only a failed one may run again under its key.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                memo={_MEMO_REQUEST_SHA: digest},
            )
        except WorkflowAlreadyStartedError:
            pass  # the job of this key exists already and is finished
        if idempotency_key is not None:
            await self._check_same_request(job_id, digest)
        return JobHandle(self, job_id)

    async def _check_same_request(self, job_id: str, digest: str) -> None:
        desc = await self.temporal.get_workflow_handle(job_id).describe()
        memo = await desc.memo()
        if memo.get(_MEMO_REQUEST_SHA) != digest:
            raise IdempotencyConflictError(
                f"idempotency key already used for job {job_id} with a different request"
            )

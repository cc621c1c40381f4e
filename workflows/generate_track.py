"""GenerateTrack: request → normalized controls → audio → master → checks → review → publish."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from schemas import names
    from schemas.controls import ControlTokens
    from schemas.errors import MODEL_NOT_SERVED, NON_RETRYABLE_ERROR_TYPES, REVIEW_NOT_ALLOWED
    from schemas.jobs import (
        STAGE_AFTER_REVIEW,
        AuthorizeReviewInput,
        AuthorizeReviewOutput,
        CheckSimilarityInput,
        CheckSimilarityOutput,
        DeliverWebhooksInput,
        EscalateReviewInput,
        FinishJobInput,
        GenerateAudioInput,
        GenerateAudioOutput,
        GenerateTrackInput,
        GenerationResult,
        JobStatus,
        NormalizeInput,
        NormalizeOutput,
        PostprocessInput,
        PostprocessOutput,
        PublishInput,
        PublishOutput,
        RecordReviewInput,
        ReviewDecision,
        ReviewState,
        Stage,
    )
    from schemas.request import GenerationRequest

T = TypeVar("T")
_SA = {name: SearchAttributeKey.for_keyword(name) for name in names.SEARCH_ATTRIBUTES}

CPU_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)
# Once audio has been rendered (GPU time spent), the CPU steps retry until they succeed or fail
# for a reason retrying cannot fix: a DB or store outage must delay a job, not lose it.
AFTER_RENDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,  # unlimited
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)
GPU_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)


@workflow.defn(name=names.GENERATE_TRACK_WORKFLOW)
class GenerateTrack:
    """One generation job. The workflow id is the job id."""

    def __init__(self) -> None:
        self._status = JobStatus(job_id="", stage=Stage.QUEUED)
        self._decision: ReviewDecision | None = None
        # review-authz-v1: decisions are authorized (and audited) by an activity first.
        self._authz = False
        self._required_approvals = 1
        self._approvals: list[ReviewDecision] = []
        self._min_role: str | None = None  # set by an escalation to a reviewer role
        self._authorizing = 0  # decisions being authorized right now
        self._review_closed = False  # the gate stopped waiting: later decisions are refused
        self._review_lock = asyncio.Lock()  # one decision is authorized and applied at a time

    # --- queries, signals, updates -------------------------------------------------------
    @workflow.query(name=names.STATUS_QUERY)
    def status(self) -> JobStatus:
        return self._status

    @workflow.signal(name=names.REVIEW_SIGNAL)
    async def review(self, decision: ReviewDecision) -> None:
        """Review decision from any client, e.g. the stock `temporal workflow signal`.

        A signal cannot be refused: one from a reviewer who may not decide, or that arrives when
        no review is pending, is ignored (and audited); the `submit_review` update refuses it.
        """
        if self._authz:
            refusal = await self._authorize_and_apply(decision, "signal")
            if refusal is not None:
                workflow.logger.warning("review signal ignored: %s", refusal)
            return
        if self._status.stage is not Stage.AWAITING_REVIEW or self._decision is not None:
            workflow.logger.warning("review signal ignored: job is %s", self._status.stage.value)
            return
        self._decision = decision

    @workflow.update(name=names.SUBMIT_REVIEW_UPDATE)
    async def submit_review(self, decision: ReviewDecision) -> JobStatus:
        """Review decision, authorized before it is applied (a refusal changes nothing).

        Returns the status once the job has moved on, or at once when more approvals are needed.
        """
        if self._authz:
            refusal = await self._authorize_and_apply(decision, "update")
            if refusal is not None:
                raise ApplicationError(refusal, type=REVIEW_NOT_ALLOWED)
            if self._decision is None:  # a first approval of two
                return self._status
        else:
            self._decision = decision
        await workflow.wait_condition(lambda: self._status.stage is not Stage.AWAITING_REVIEW)
        return self._status

    @submit_review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        if self._status.stage is not Stage.AWAITING_REVIEW:
            raise ApplicationError(
                f"job {self._status.job_id} is not awaiting review (stage: "
                f"{self._status.stage.value})",
                type=REVIEW_NOT_ALLOWED,
            )
        if self._decision is not None:
            raise ApplicationError("a review decision was already given", type=REVIEW_NOT_ALLOWED)
        if decision.reviewer in self._status.approvals:
            raise ApplicationError(
                f"{decision.reviewer} already approved job {self._status.job_id}",
                type=REVIEW_NOT_ALLOWED,
            )

    async def _authorize_and_apply(
        self, decision: ReviewDecision, channel: Literal["update", "signal"]
    ) -> str | None:
        """Run `authorize_review`, then apply an allowed decision; returns the refusal reason.

        Decisions are handled one at a time, and the workflow state only changes once the
        decision is allowed.
        """
        self._authorizing += 1
        try:
            async with self._review_lock:
                awaiting = (
                    self._status.stage is Stage.AWAITING_REVIEW
                    and self._decision is None
                    and not self._review_closed
                )
                authz = AuthorizeReviewInput(
                    job_id=self._status.job_id,
                    decision=decision,
                    channel=channel,
                    awaiting=awaiting,
                    stage=self._status.stage,
                    approvers=list(self._status.approvals),
                    min_role=self._min_role,
                )
                try:
                    verdict = await self._cpu(
                        names.AUTHORIZE_REVIEW, authz, AuthorizeReviewOutput, 30, retry=CPU_RETRY
                    )
                except ActivityError:
                    return "the decision could not be authorized (review service unavailable)"
                if not verdict.allowed:
                    return verdict.reason
                if decision.decision == "reject":
                    self._decision = decision
                else:
                    self._approvals.append(decision)
                    self._status.approvals.append(decision.reviewer)
                    if len(self._status.approvals) >= self._required_approvals:
                        self._decision = decision
                return None
        finally:
            self._authorizing -= 1

    # --- helpers ---------------------------------------------------------------------------
    def _set_stage(self, stage: Stage, review_state: ReviewState | None = None) -> None:
        self._status.stage = stage
        if stage not in self._status.stages_seen:
            self._status.stages_seen.append(stage)
        updates = [_SA[names.SA_STAGE].value_set(stage.value)]
        if review_state is not None:
            self._status.review_state = review_state
            updates.append(_SA[names.SA_REVIEW_STATE].value_set(review_state.value))
        workflow.upsert_search_attributes(updates)

    async def _cpu(
        self,
        activity: str,
        arg: object,
        result_type: type[T],
        timeout_s: float,
        retry: RetryPolicy = AFTER_RENDER_RETRY,
    ) -> T:
        """Run a CPU-queue activity (a `schemas.names` activity type) with its typed result."""
        return await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            task_queue=names.CPU_TASK_QUEUE,
            start_to_close_timeout=timedelta(seconds=timeout_s),
            retry_policy=retry,
        )

    # --- the run ---------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: GenerateTrackInput) -> GenerationResult:
        self._status.job_id = inp.job_id
        try:
            return await self._run(inp)
        except ActivityError as err:
            cause = err.cause
            message = str(cause) if cause is not None else str(err)
            error_type = getattr(cause, "type", None) or "ActivityFailed"
            await self._finish(inp.job_id, Stage.FAILED, f"{error_type}: {message}")
            raise ApplicationError(message, type=error_type, non_retryable=True) from err
        except asyncio.CancelledError:
            # Cancelled from the UI/CLI: record it, then let the cancellation complete.
            await self._finish(inp.job_id, Stage.CANCELLED, "cancelled")
            raise

    async def _finish(self, job_id: str, stage: Stage, error: str) -> None:
        """Record a job that ends without publishing (best effort: the workflow ends anyway)."""
        self._status.error = error
        self._set_stage(stage)
        try:
            done = FinishJobInput(job_id=job_id, stage=stage, error=error)
            await self._cpu(names.FINISH_JOB, done, type(None), 30, retry=CPU_RETRY)
        except ActivityError:
            workflow.logger.exception("could not record the end of %s", job_id)

    async def _run(self, inp: GenerateTrackInput) -> GenerationResult:
        job_id = inp.job_id
        self._set_stage(Stage.NORMALIZING, ReviewState.PENDING)
        normalized: NormalizeOutput = await self._cpu(
            names.NORMALIZE_CONTROLS,
            NormalizeInput(job_id=job_id, request=inp.request, idempotency_key=inp.idempotency_key),
            NormalizeOutput,
            30,
            retry=CPU_RETRY,  # nothing spent yet: give up on a persistent outage
        )
        request, tokens = normalized.request, normalized.tokens
        self._status.model_id = tokens.model_id
        workflow.upsert_search_attributes(
            [
                _SA[names.SA_MODEL].value_set(tokens.model_id),
                _SA[names.SA_PRODUCT].value_set(tokens.product),
                _SA[names.SA_TENANT].value_set(request.tenant),
            ]
        )

        self._set_stage(Stage.GENERATING)
        if request.draft_first and workflow.patched("draft-first-v1"):
            await self._draft_preview(inp, tokens, request)
        # Histories from before per-model queues scheduled every render on one GPU queue.
        per_model = workflow.patched("per-model-gpu-queue-v1")
        queue = names.gpu_task_queue(tokens.model_id) if per_model else names.GPU_TASK_QUEUE
        try:
            generated: GenerateAudioOutput = await workflow.execute_activity(
                names.GENERATE_AUDIO,
                GenerateAudioInput(job_id=job_id, tokens=tokens, next_stage=Stage.POSTPROCESSING),
                result_type=GenerateAudioOutput,
                task_queue=queue,
                # Generous for long renders; a dead worker is noticed by the heartbeat timeout.
                start_to_close_timeout=timedelta(seconds=300 + 2 * tokens.duration_s),
                # No worker serving the model: fail clearly instead of waiting forever.
                schedule_to_start_timeout=timedelta(seconds=inp.gpu_queue_timeout_s)
                if per_model
                else None,
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
                retry_policy=GPU_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if (
                isinstance(cause, ActivityTimeoutError)
                and cause.type == TimeoutType.SCHEDULE_TO_START
            ):
                message = (f"no GPU worker serves model {tokens.model_id!r} (waited "
                           f"{inp.gpu_queue_timeout_s:g} s on {queue})")  # fmt: skip
                await self._finish(job_id, Stage.FAILED, f"{MODEL_NOT_SERVED}: {message}")
                raise ApplicationError(message, type=MODEL_NOT_SERVED, non_retryable=True) from err
            raise
        self._status.artifacts["raw"] = generated.raw.uri

        self._set_stage(Stage.POSTPROCESSING)
        post: PostprocessOutput = await self._cpu(
            names.POSTPROCESS,
            PostprocessInput(
                job_id=job_id,
                raw=generated.raw,
                requested_duration_s=tokens.duration_s,
                profile=request.profile,
                formats=list(request.formats),
                title=tokens.prompt[:120],
                model=generated.model_ref,
                instruments=[i.name for i in tokens.instruments],
                seed=tokens.seed,
                tokens=tokens,
                parts=generated.parts,
                main_part=generated.main_part,
                next_stage=Stage.CHECKING,
            ),
            PostprocessOutput,
            # Loops are mastered as three or more repeats; every part is mastered like the main.
            120 + tokens.duration_s * (1 + len(generated.parts)) * (3 if tokens.loop else 1),
        )
        self._status.artifacts["master_wav"] = post.master.uri

        self._set_stage(Stage.CHECKING)
        checked: CheckSimilarityOutput = await self._cpu(
            names.CHECK_SIMILARITY,
            CheckSimilarityInput(
                job_id=job_id,
                master=post.master,
                measurements=post.measurements,
                requested_duration_s=tokens.duration_s,
                review_mode=request.review,
                quality=post.quality,
                stage_if_review=Stage.AWAITING_REVIEW,
                stage_if_auto_approved=Stage.PUBLISHING,
            ),
            CheckSimilarityOutput,
            60 + tokens.duration_s,
        )

        review_state, reasons = await self._review_gate(inp, checked)
        if review_state in (ReviewState.REJECTED, ReviewState.EXPIRED):
            await self._notify(job_id, request)
        result = GenerationResult(
            job_id=job_id,
            stage=self._status.stage,
            review_state=review_state,
            model_id=generated.model_id,
            model_version=generated.model_version,
            seed=tokens.seed,
            measurements=post.measurements,
            review=self._decision,
        )
        if review_state not in (ReviewState.AUTO_APPROVED, ReviewState.APPROVED):
            return result

        self._set_stage(Stage.PUBLISHING)
        published: PublishOutput = await self._cpu(
            names.PUBLISH,
            PublishInput(
                job_id=job_id,
                tokens=tokens,
                request=request,
                request_sha256=normalized.request_sha256,
                generated=generated,
                postprocessed=post,
                similarity=checked,
                review_state=review_state,
                review=self._decision,
                review_reasons=reasons,
                published_at=workflow.now(),
                experiments=normalized.experiments,
                next_stage=Stage.PUBLISHED,
            ),
            PublishOutput,
            120,
        )
        self._status.artifacts.update(published.artifacts)
        self._set_stage(Stage.PUBLISHED)
        await self._notify(job_id, request)
        return result.model_copy(
            update={
                "stage": Stage.PUBLISHED,
                "artifacts": published.artifacts,
                "provenance_uri": published.provenance_uri,
                "charge_cents": published.charge_cents,
            }
        )

    async def _draft_preview(
        self, inp: GenerateTrackInput, tokens: ControlTokens, request: GenerationRequest
    ) -> None:
        """Progressive refinement: a draft-model render of the same controls, stored and
        announced (status query, `job.draft_ready` webhook) before the final render starts.
        Best effort: a failed preview never fails the job."""
        product = "loop" if tokens.loop else "track"  # the preview is one file
        draft = tokens.model_copy(
            update={"model_id": "draft", "tier": "draft", "layers": [], "product": product}
        )
        try:
            preview: GenerateAudioOutput = await workflow.execute_activity(
                names.GENERATE_AUDIO,
                GenerateAudioInput(job_id=inp.job_id, tokens=draft, preview=True),
                result_type=GenerateAudioOutput,
                task_queue=names.gpu_task_queue("draft"),
                start_to_close_timeout=timedelta(seconds=120 + tokens.duration_s),
                schedule_to_start_timeout=timedelta(seconds=inp.gpu_queue_timeout_s),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
                retry_policy=GPU_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("draft preview of %s failed; rendering the final", inp.job_id)
            return
        self._status.artifacts["draft_preview"] = preview.raw.uri
        if request.callback_url:
            await workflow.start_child_workflow(
                names.DELIVER_JOB_EVENTS_WORKFLOW,
                DeliverWebhooksInput(job_id=inp.job_id, callback_url=request.callback_url),
                id=f"{inp.job_id}-webhooks-draft",
                task_queue=names.CPU_TASK_QUEUE,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )

    async def _notify(self, job_id: str, request: GenerationRequest) -> None:
        """Hand the job's outbox events to an abandoned child that delivers them (if the request
        has a callback URL), so the receiver's availability never holds up this workflow."""
        callback_url = request.callback_url
        # Histories recorded before webhook delivery existed have no child here.
        if not callback_url or not workflow.patched("deliver-webhooks-v1"):
            return
        await workflow.start_child_workflow(
            names.DELIVER_JOB_EVENTS_WORKFLOW,
            DeliverWebhooksInput(job_id=job_id, callback_url=callback_url),
            id=f"{job_id}-webhooks",
            task_queue=names.CPU_TASK_QUEUE,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )

    async def _review_gate(
        self, inp: GenerateTrackInput, checked: CheckSimilarityOutput
    ) -> tuple[ReviewState, list[str]]:
        """Auto-approve low risk; otherwise wait for human decisions or the review timeout.

        With review-authz-v1: the policy sets how many approvals (1 or 2, one rejection
        rejects), its timeout (capped by the input's) and an escalation before the timeout.
        """
        rec = checked.recommendation
        reasons = rec.reasons
        self._status.review_reasons = reasons
        if rec.decision == "auto_approve":
            self._set_stage(Stage.PUBLISHING, ReviewState.AUTO_APPROVED)
            return ReviewState.AUTO_APPROVED, reasons

        self._authz = workflow.patched("review-authz-v1")
        timeout = inp.review_timeout_s
        if self._authz:
            self._required_approvals = max(1, rec.required_approvals)
            self._status.required_approvals = self._required_approvals
            timeout = min(timeout, rec.review_timeout_s or timeout)
        self._set_stage(Stage.AWAITING_REVIEW, ReviewState.AWAITING_REVIEW)
        target = rec.escalation_target
        if self._authz and target and rec.escalate_after_s and rec.escalate_after_s < timeout:
            if not await self._wait_for_decision(rec.escalate_after_s):
                await self._escalate(inp, target, reasons)
            timeout -= rec.escalate_after_s
        decided = await self._wait_for_decision(timeout)
        if self._authz:
            # Decisions already being authorized when time ran out still count.
            await workflow.wait_condition(lambda: self._authorizing == 0)
            self._review_closed = True
            decided = self._decision is not None
        if not decided:
            outcome = ReviewState.EXPIRED
        else:
            approved = self._decision is not None and self._decision.decision == "approve"
            outcome = ReviewState.APPROVED if approved else ReviewState.REJECTED
        stage = STAGE_AFTER_REVIEW[outcome]
        await self._cpu(
            names.RECORD_REVIEW,
            RecordReviewInput(job_id=inp.job_id, decision=self._decision, outcome=outcome,
                              reasons=reasons, next_stage=stage),
            type(None),
            30,
        )  # fmt: skip
        self._set_stage(stage, outcome)
        return outcome, reasons

    async def _wait_for_decision(self, timeout_s: float) -> bool:
        """True once a decision is in; False when `timeout_s` passed without one."""
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None, timeout=timedelta(seconds=timeout_s)
            )
        except TimeoutError:
            return False
        return True

    async def _escalate(self, inp: GenerateTrackInput, target: str, reasons: list[str]) -> None:
        """No decision in time: audit, queue `review.escalated`, restrict to the target role."""
        await self._cpu(
            names.ESCALATE_REVIEW,
            EscalateReviewInput(job_id=inp.job_id, target=target, reasons=reasons),
            type(None),
            30,
        )
        self._status.escalated_to = target
        if target != "webhook":
            self._min_role = target
        callback_url = inp.request.get("callback_url")
        if callback_url:
            await workflow.start_child_workflow(
                names.DELIVER_JOB_EVENTS_WORKFLOW,
                DeliverWebhooksInput(job_id=inp.job_id, callback_url=str(callback_url)),
                id=f"{inp.job_id}-webhooks-escalated",
                task_queue=names.CPU_TASK_QUEUE,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )

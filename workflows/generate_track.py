"""GenerateTrack: request → normalized controls → audio → master → checks → review → publish.

The workflow owns the job's stage: it moves the status query and search attributes itself
(`record_stage`) and names, in each step's input, the stage the step's activity records in the
job row when it is done. The review gate is its own class (`workflows/review_gate.py`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from schemas import names
    from schemas.controls import ControlTokens
    from schemas.errors import MODEL_NOT_SERVED
    from schemas.jobs import (
        CheckSimilarityInput,
        CheckSimilarityOutput,
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
        ReviewDecision,
        ReviewState,
        Stage,
    )
    from schemas.request import GenerationRequest

from workflows.job_steps import (
    CPU_RETRY,
    GPU_RETRY,
    SA_KEYS,
    deliver_job_events,
    record_stage,
    run_cpu,
)
from workflows.review_gate import ReviewGate

# Histories recorded before webhook delivery existed have no delivery child for the outcome.
DELIVER_WEBHOOKS_PATCH: Final = "deliver-webhooks-v1"
# Histories from before progressive refinement never render a draft preview.
DRAFT_FIRST_PATCH: Final = "draft-first-v1"
# Histories from before per-model queues scheduled every render on one GPU queue.
PER_MODEL_QUEUE_PATCH: Final = "per-model-gpu-queue-v1"


@workflow.defn(name=names.GENERATE_TRACK_WORKFLOW)
class GenerateTrack:
    """One generation job. The workflow id is the job id."""

    def __init__(self) -> None:
        self._status = JobStatus(job_id="", stage=Stage.QUEUED)
        self._gate = ReviewGate(self._status)

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
        await self._gate.on_signal(decision)

    @workflow.update(name=names.SUBMIT_REVIEW_UPDATE)
    async def submit_review(self, decision: ReviewDecision) -> JobStatus:
        """Review decision, authorized before it is applied (a refusal changes nothing).

        Returns the status once the job has moved on, or at once when more approvals are needed.
        """
        return await self._gate.on_update(decision)

    @submit_review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        self._gate.validate(decision)

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
        record_stage(self._status, stage)
        try:
            await run_cpu(names.FINISH_JOB, FinishJobInput(job_id=job_id, stage=stage, error=error),
                          type(None), 30, retry=CPU_RETRY)  # fmt: skip
        except ActivityError:
            workflow.logger.exception("could not record the end of %s", job_id)

    async def _run(self, inp: GenerateTrackInput) -> GenerationResult:
        job_id = inp.job_id
        record_stage(self._status, Stage.NORMALIZING, ReviewState.PENDING)
        normalized: NormalizeOutput = await run_cpu(
            names.NORMALIZE_CONTROLS,
            NormalizeInput(
                job_id=job_id,
                request=inp.request,
                idempotency_key=inp.idempotency_key,
                next_stage=Stage.GENERATING,
            ),
            NormalizeOutput,
            30,
            retry=CPU_RETRY,  # nothing spent yet: give up on a persistent outage
        )
        request, tokens = normalized.request, normalized.tokens
        self._status.model_id = tokens.model_id
        workflow.upsert_search_attributes(
            [
                SA_KEYS[names.SA_MODEL].value_set(tokens.model_id),
                SA_KEYS[names.SA_PRODUCT].value_set(tokens.product),
                SA_KEYS[names.SA_TENANT].value_set(request.tenant),
            ]
        )

        record_stage(self._status, Stage.GENERATING)
        if request.draft_first and workflow.patched(DRAFT_FIRST_PATCH):
            await self._draft_preview(inp, tokens, request)
        generated = await self._generate(inp, tokens)
        self._status.artifacts["raw"] = generated.raw.uri

        record_stage(self._status, Stage.POSTPROCESSING)
        post: PostprocessOutput = await run_cpu(
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

        record_stage(self._status, Stage.CHECKING)
        checked: CheckSimilarityOutput = await run_cpu(
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

        review_state = await self._gate.run(
            checked.recommendation, inp.review_timeout_s, request.callback_url
        )
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
            review=self._gate.decision,
        )
        if review_state not in (ReviewState.AUTO_APPROVED, ReviewState.APPROVED):
            return result

        record_stage(self._status, Stage.PUBLISHING)
        published: PublishOutput = await run_cpu(
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
                review=self._gate.decision,
                review_reasons=checked.recommendation.reasons,
                published_at=workflow.now(),
                experiments=normalized.experiments,
                next_stage=Stage.PUBLISHED,
            ),
            PublishOutput,
            120,
        )
        self._status.artifacts.update(published.artifacts)
        record_stage(self._status, Stage.PUBLISHED)
        await self._notify(job_id, request)
        return result.model_copy(
            update={
                "stage": Stage.PUBLISHED,
                "artifacts": published.artifacts,
                "provenance_uri": published.provenance_uri,
                "charge_cents": published.charge_cents,
            }
        )

    async def _generate(
        self, inp: GenerateTrackInput, tokens: ControlTokens
    ) -> GenerateAudioOutput:
        """Render on the GPU queue of the model; no worker serving it fails the job clearly."""
        per_model = workflow.patched(PER_MODEL_QUEUE_PATCH)
        queue = names.gpu_task_queue(tokens.model_id) if per_model else names.GPU_TASK_QUEUE
        try:
            return await workflow.execute_activity(
                names.GENERATE_AUDIO,
                GenerateAudioInput(
                    job_id=inp.job_id, tokens=tokens, next_stage=Stage.POSTPROCESSING
                ),
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
                await self._finish(inp.job_id, Stage.FAILED, f"{MODEL_NOT_SERVED}: {message}")
                raise ApplicationError(message, type=MODEL_NOT_SERVED, non_retryable=True) from err
            raise

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
        await deliver_job_events(inp.job_id, request.callback_url, "draft")

    async def _notify(self, job_id: str, request: GenerationRequest) -> None:
        """Deliver the job's outcome events to the request's callback URL (if any)."""
        if request.callback_url and workflow.patched(DELIVER_WEBHOOKS_PATCH):
            await deliver_job_events(job_id, request.callback_url)

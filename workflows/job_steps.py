"""What GenerateTrack and its review gate share: retry policies, the call of a CPU-queue step,
the job's stage as the workflow shows it, and the job's webhook deliveries."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from schemas import names
    from schemas.errors import NON_RETRYABLE_ERROR_TYPES
    from schemas.jobs import DeliverWebhooksInput, JobStatus, ReviewState, Stage

from workflows.deliver_webhooks import start_delivery

T = TypeVar("T")
SA_KEYS = {name: SearchAttributeKey.for_keyword(name) for name in names.SEARCH_ATTRIBUTES}

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


async def run_cpu(
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


def record_stage(status: JobStatus, stage: Stage, review_state: ReviewState | None = None) -> None:
    """Move the job to `stage` in the status query and the search attributes.

    The workflow owns the stage: the job row records the same stages, written by the activity
    that ends a step with the stage the workflow named in its input (`next_stage`, ...).
    """
    status.stage = stage
    if stage not in status.stages_seen:
        status.stages_seen.append(stage)
    updates = [SA_KEYS[names.SA_STAGE].value_set(stage.value)]
    if review_state is not None:
        status.review_state = review_state
        updates.append(SA_KEYS[names.SA_REVIEW_STATE].value_set(review_state.value))
    workflow.upsert_search_attributes(updates)


async def deliver_job_events(job_id: str, callback_url: str | None, occasion: str = "") -> None:
    """Hand the job's pending outbox events to a delivery child when the request has a callback
    URL, so the receiver's availability never holds up the job. One child per occasion:
    `{job_id}-webhooks` for the outcome, `{job_id}-webhooks-<occasion>` before it."""
    if not callback_url:
        return
    suffix = f"-{occasion}" if occasion else ""
    await start_delivery(
        DeliverWebhooksInput(job_id=job_id, callback_url=callback_url), f"{job_id}-webhooks{suffix}"
    )

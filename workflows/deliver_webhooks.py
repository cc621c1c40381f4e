"""DeliverJobEvents: POST a job's outbox events to its callback URL, retrying for up to a day.

Started (with `start_delivery`) by GenerateTrack and Takedown as an abandoned child, so a slow
or failing receiver never delays the parent; the parent names the child after the occasion
(`{job_id}-webhooks`, `{job_id}-webhooks-draft`, `{takedown_id}-webhooks-<n>`, ...), so an
occasion has one delivery run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from schemas import names
    from schemas.errors import WEBHOOK_REJECTED
    from schemas.jobs import DeliverWebhooksInput, DeliverWebhooksOutput

WEBHOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=0,  # bounded by schedule_to_close below
    non_retryable_error_types=[WEBHOOK_REJECTED],
)


@workflow.defn(name=names.DELIVER_JOB_EVENTS_WORKFLOW)
class DeliverJobEvents:
    """Deliver one job's pending webhook events; gives up after 24 h (recorded in the outbox)."""

    @workflow.run
    async def run(self, inp: DeliverWebhooksInput) -> DeliverWebhooksOutput:
        try:
            return await workflow.execute_activity(
                names.DELIVER_WEBHOOKS,
                inp,
                result_type=DeliverWebhooksOutput,
                task_queue=names.CPU_TASK_QUEUE,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(hours=24),
                retry_policy=WEBHOOK_RETRY,
            )
        except ActivityError as err:
            # The outbox row keeps the attempts and last error for operators; the job is fine.
            workflow.logger.warning("webhooks of %s not delivered: %s", inp.job_id, err.cause)
            return DeliverWebhooksOutput(delivered=0)


async def start_delivery(inp: DeliverWebhooksInput, workflow_id: str) -> None:
    """Start a DeliverJobEvents child that outlives its parent (called from a workflow)."""
    await workflow.start_child_workflow(
        names.DELIVER_JOB_EVENTS_WORKFLOW,
        inp,
        id=workflow_id,
        task_queue=names.CPU_TASK_QUEUE,
        parent_close_policy=ParentClosePolicy.ABANDON,
    )

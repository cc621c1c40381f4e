"""AuditReviewRefusal: write the review audit row of a decision the SDK saw refused.

A decision refused by the `submit_review` update's validator (the job is not awaiting review,
it was already decided or approved by this reviewer), or sent to a finished or unknown job,
never reaches the `authorize_review` activity that audits the gate's own refusals. The SDK
executes this workflow for those, so a client needs only Temporal, never the database, and
every decision is audited whichever client sent it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas import names
    from schemas.jobs import AuditReviewRefusalInput


@workflow.defn(name=names.AUDIT_REVIEW_REFUSAL_WORKFLOW)
class AuditReviewRefusal:
    """One audit row (action `client`); its key is this run's activity, so retries write it
    once."""

    @workflow.run
    async def run(self, inp: AuditReviewRefusalInput) -> None:
        await workflow.execute_activity(
            names.AUDIT_REVIEW_REFUSAL,
            inp,
            task_queue=names.CPU_TASK_QUEUE,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(hours=1),
        )

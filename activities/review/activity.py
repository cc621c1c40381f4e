"""Review activities (CPU queue): authorize a decision, escalate, record the outcome."""

from __future__ import annotations

from temporalio import activity

from activities.review import store as review_db
from activities.review.authz import proof_refusal, reviewer_refusal
from infra.db import Database
from schemas import names
from schemas.jobs import (
    TERMINAL_STAGES,
    AuditReviewRefusalInput,
    AuthorizeReviewInput,
    AuthorizeReviewOutput,
    EscalateReviewInput,
    RecordReviewInput,
)


def _event_key() -> str:
    """One key per scheduled activity (stable across its retries)."""
    info = activity.info()
    return f"{info.workflow_run_id}:{info.activity_id}"


class ReviewActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name=names.AUTHORIZE_REVIEW)
    async def authorize_review(self, inp: AuthorizeReviewInput) -> AuthorizeReviewOutput:
        """May this decision be applied now? Every answer is written to the audit log."""
        d = inp.decision
        job = await self.db.get_job(inp.job_id)
        reason: str | None
        if not inp.awaiting:
            reason = f"job {inp.job_id} is not awaiting review (stage: {inp.stage.value})"
        elif d.reviewer in inp.approvers:
            reason = f"{d.reviewer} already approved job {inp.job_id}"
        else:
            reason = await reviewer_refusal(
                self.db,
                reviewer=d.reviewer,
                tenant=job["tenant"] if job else None,
                min_role=inp.min_role,
            ) or await proof_refusal(self.db, inp.job_id, d)
        await review_db.audit(
            self.db, inp.job_id, reviewer=d.reviewer, action=inp.channel, decision=d.decision,
            accepted=reason is None, reason=reason or d.note, event_key=_event_key(),
        )  # fmt: skip
        return AuthorizeReviewOutput(allowed=reason is None, reason=reason or "")

    @activity.defn(name=names.AUDIT_REVIEW_REFUSAL)
    async def audit_review_refusal(self, inp: AuditReviewRefusalInput) -> None:
        """Audit a decision the client saw refused without `authorize_review` (action
        `client`); run by the AuditReviewRefusal workflow, once per refusal."""
        await review_db.audit(
            self.db, inp.job_id, reviewer=inp.reviewer, action="client", decision=inp.decision,
            accepted=False, reason=inp.reason, event_key=_event_key(),
        )  # fmt: skip

    @activity.defn(name=names.ESCALATE_REVIEW)
    async def escalate_review(self, inp: EscalateReviewInput) -> None:
        """Audit the escalation and queue a `review.escalated` event for the requester."""
        await review_db.audit(
            self.db, inp.job_id, reviewer=None, action="escalate", decision=inp.target,
            accepted=True, reason="no decision within the policy's escalation time",
            event_key=_event_key(),
        )  # fmt: skip
        await self.db.enqueue_webhook(
            inp.job_id,
            event="review.escalated",
            payload={"job_id": inp.job_id, "target": inp.target, "reasons": inp.reasons},
        )

    @activity.defn(name=names.RECORD_REVIEW)
    async def record_review(self, inp: RecordReviewInput) -> None:
        """Write the review row (first decision wins) and record the stage the workflow moves
        the job to (`inp.next_stage`); a job that ends here queues its `job.<stage>` event."""
        decision = inp.decision
        await self.db.record_review(
            inp.job_id,
            outcome=inp.outcome.value,
            reviewer=decision.reviewer if decision else None,
            note=decision.note if decision else None,
            reasons=inp.reasons,
        )
        await review_db.audit(
            self.db, inp.job_id, reviewer=decision.reviewer if decision else None,
            action="outcome", decision=inp.outcome.value, accepted=True,
            event_key=f"{inp.job_id}:outcome",
        )  # fmt: skip
        stage = inp.next_stage
        finished = stage in TERMINAL_STAGES
        await self.db.set_stage(
            inp.job_id, stage.value, review_state=inp.outcome.value, finished=finished
        )
        if finished:  # rejected or expired: tell the requester (delivered if it gave a URL)
            await self.db.enqueue_webhook(
                inp.job_id,
                event=f"job.{stage.value}",
                payload={"job_id": inp.job_id, "review": inp.outcome.value,
                         "reasons": inp.reasons,
                         "note": decision.note if decision else None},
            )  # fmt: skip

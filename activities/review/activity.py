"""The `record_review` activity (CPU queue): persist a human (or expired) review outcome."""

from __future__ import annotations

from temporalio import activity

from infra.db import Database
from schemas.jobs import RecordReviewInput, ReviewState

_STAGE_AFTER = {
    ReviewState.APPROVED: ("publishing", False),
    ReviewState.REJECTED: ("rejected", True),
    ReviewState.EXPIRED: ("expired", True),
}


class ReviewActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name="record_review")
    async def record_review(self, inp: RecordReviewInput) -> None:
        """Write the review row (first decision wins) and move the job to its next stage."""
        decision = inp.decision
        await self.db.record_review(
            inp.job_id,
            outcome=inp.outcome.value,
            reviewer=decision.reviewer if decision else None,
            note=decision.note if decision else None,
            reasons=inp.reasons,
        )
        stage, finished = _STAGE_AFTER[inp.outcome]
        await self.db.set_stage(
            inp.job_id, stage, review_state=inp.outcome.value, finished=finished
        )
        if finished:  # rejected or expired: tell the requester (delivered if it gave a URL)
            await self.db.enqueue_webhook(
                inp.job_id,
                event=f"job.{stage}",
                payload={"job_id": inp.job_id, "review": inp.outcome.value,
                         "reasons": inp.reasons,
                         "note": decision.note if decision else None},
            )  # fmt: skip

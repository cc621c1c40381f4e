"""The review gate of GenerateTrack: auto-approval, human decisions, escalation and expiry.

GenerateTrack keeps the `review` signal and the `submit_review` update (Temporal finds message
handlers on the workflow class) and hands every decision to its `ReviewGate`.

With `review-authz-v1` (every run since it exists) a decision counts only once the
`authorize_review` activity allowed (and audited) it, one decision at a time; the policy sets
how many approvals a job needs (1 or 2, one rejection rejects), how long the gate waits (capped
by the workflow input's timeout) and an escalation before that. Histories from before it took
the first decision that arrived while the job awaited review.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas import names
    from schemas.errors import REVIEW_NOT_ALLOWED, REVIEW_REFUSAL_UNAUDITED
    from schemas.jobs import (
        STAGE_AFTER_REVIEW,
        AuthorizeReviewInput,
        AuthorizeReviewOutput,
        EscalateReviewInput,
        JobStatus,
        RecordReviewInput,
        ReviewDecision,
        ReviewRecommendation,
        ReviewState,
        Stage,
    )

from workflows.job_steps import CPU_RETRY, deliver_job_events, record_stage, run_cpu

REVIEW_AUTHZ_PATCH: Final = "review-authz-v1"
# What `_authorize_and_apply` returns when `authorize_review` itself failed: nothing audited it.
_UNAUTHORIZED = "the decision could not be authorized (review service unavailable)"


def _unaudited(message: str) -> ApplicationError:
    """A refusal no activity audited: the detail tells the SDK to audit it."""
    return ApplicationError(message, REVIEW_REFUSAL_UNAUDITED, type=REVIEW_NOT_ALLOWED)


class ReviewGate:
    """The gate's state: the decision, approvals so far, who may still decide, and whether the
    gate still listens. It shares the workflow's `JobStatus` (stage, approvals, escalation)."""

    def __init__(self, status: JobStatus) -> None:
        self._status = status
        self.decision: ReviewDecision | None = None  # the one that closed the gate
        self._authz = False  # decided when the gate opens (REVIEW_AUTHZ_PATCH)
        self._required_approvals = 1
        self._approvals: list[ReviewDecision] = []
        self._min_role: str | None = None  # set by an escalation to a reviewer role
        self._authorizing = 0  # decisions being authorized right now
        self._closed = False  # the gate stopped waiting: later decisions are refused
        self._lock = asyncio.Lock()  # one decision is authorized and applied at a time

    # --- decisions (from the workflow's signal and update handlers) --------------------------
    async def on_signal(self, decision: ReviewDecision) -> None:
        """A signal cannot be refused: one from a reviewer who may not decide, or that arrives
        when no review is pending, is ignored (and audited)."""
        if self._authz:
            refusal = await self._authorize_and_apply(decision, "signal")
            if refusal is not None:
                workflow.logger.warning("review signal ignored: %s", refusal)
            return
        if self._status.stage is not Stage.AWAITING_REVIEW or self.decision is not None:
            workflow.logger.warning("review signal ignored: job is %s", self._status.stage.value)
            return
        self.decision = decision

    async def on_update(self, decision: ReviewDecision) -> JobStatus:
        """Authorize, then apply (a refusal changes nothing); returns the status once the job
        has moved on, or at once when more approvals are needed.

        Raises:
            ApplicationError: type `ReviewNotAllowed`, the decision was refused (and audited
                by `authorize_review`, unless it carries the `unaudited` detail).
        """
        if self._authz:
            refusal = await self._authorize_and_apply(decision, "update")
            if refusal == _UNAUTHORIZED:
                raise _unaudited(refusal)
            if refusal is not None:
                raise ApplicationError(refusal, type=REVIEW_NOT_ALLOWED)
            if self.decision is None:  # a first approval of two
                return self._status
        else:
            self.decision = decision
        await workflow.wait_condition(lambda: self._status.stage is not Stage.AWAITING_REVIEW)
        return self._status

    def validate(self, decision: ReviewDecision) -> None:
        """The update's validator: refuse before anything is written to the history (nor to
        the audit log: its refusals carry the `unaudited` detail, the SDK audits them)."""
        if self._status.stage is not Stage.AWAITING_REVIEW:
            raise _unaudited(
                f"job {self._status.job_id} is not awaiting review (stage: "
                f"{self._status.stage.value})"
            )
        if self.decision is not None:
            raise _unaudited("a review decision was already given")
        if decision.reviewer in self._status.approvals:
            raise _unaudited(f"{decision.reviewer} already approved job {self._status.job_id}")

    async def _authorize_and_apply(
        self, decision: ReviewDecision, channel: Literal["update", "signal"]
    ) -> str | None:
        """Run `authorize_review`, then apply an allowed decision; returns the refusal reason.

        The gate's state only changes once the decision is allowed.
        """
        self._authorizing += 1
        try:
            async with self._lock:
                awaiting = (
                    self._status.stage is Stage.AWAITING_REVIEW
                    and self.decision is None
                    and not self._closed
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
                    verdict = await run_cpu(
                        names.AUTHORIZE_REVIEW, authz, AuthorizeReviewOutput, 30, retry=CPU_RETRY
                    )
                except ActivityError:
                    return _UNAUTHORIZED
                if not verdict.allowed:
                    return verdict.reason
                if decision.decision == "reject":
                    self.decision = decision
                else:
                    self._approvals.append(decision)
                    self._status.approvals.append(decision.reviewer)
                    if len(self._status.approvals) >= self._required_approvals:
                        self.decision = decision
                return None
        finally:
            self._authorizing -= 1

    # --- the gate ------------------------------------------------------------------------------
    async def run(
        self, rec: ReviewRecommendation, timeout_s: float, callback_url: str | None
    ) -> ReviewState:
        """Auto-approve what the policy lets through; otherwise wait for human decisions or the
        timeout, record the outcome and move the job to its next stage."""
        self._status.review_reasons = rec.reasons
        if rec.decision == "auto_approve":
            record_stage(self._status, Stage.PUBLISHING, ReviewState.AUTO_APPROVED)
            return ReviewState.AUTO_APPROVED

        self._authz = workflow.patched(REVIEW_AUTHZ_PATCH)
        timeout = timeout_s
        if self._authz:
            self._required_approvals = max(1, rec.required_approvals)
            self._status.required_approvals = self._required_approvals
            timeout = min(timeout, rec.review_timeout_s or timeout)
        record_stage(self._status, Stage.AWAITING_REVIEW, ReviewState.AWAITING_REVIEW)
        target = rec.escalation_target
        if self._authz and target and rec.escalate_after_s and rec.escalate_after_s < timeout:
            if not await self._wait_for_decision(rec.escalate_after_s):
                await self._escalate(target, rec.reasons, callback_url)
            timeout -= rec.escalate_after_s
        decided = await self._wait_for_decision(timeout)
        if self._authz:
            # Decisions already being authorized when time ran out still count.
            await workflow.wait_condition(lambda: self._authorizing == 0)
            self._closed = True
            decided = self.decision is not None
        if not decided:
            outcome = ReviewState.EXPIRED
        else:
            approved = self.decision is not None and self.decision.decision == "approve"
            outcome = ReviewState.APPROVED if approved else ReviewState.REJECTED
        stage = STAGE_AFTER_REVIEW[outcome]
        record = RecordReviewInput(
            job_id=self._status.job_id,
            decision=self.decision,
            outcome=outcome,
            reasons=rec.reasons,
            next_stage=stage,
        )
        await run_cpu(names.RECORD_REVIEW, record, type(None), 30)
        record_stage(self._status, stage, outcome)
        return outcome

    async def _wait_for_decision(self, timeout_s: float) -> bool:
        """True once a decision is in; False when `timeout_s` passed without one."""
        try:
            await workflow.wait_condition(
                lambda: self.decision is not None, timeout=timedelta(seconds=timeout_s)
            )
        except TimeoutError:
            return False
        return True

    async def _escalate(self, target: str, reasons: list[str], callback_url: str | None) -> None:
        """No decision in time: audit, queue `review.escalated`, restrict to the target role."""
        job_id = self._status.job_id
        escalation = EscalateReviewInput(job_id=job_id, target=target, reasons=reasons)
        await run_cpu(names.ESCALATE_REVIEW, escalation, type(None), 30)
        self._status.escalated_to = target
        if target != "webhook":
            self._min_role = target
        await deliver_job_events(job_id, callback_url, "escalated")

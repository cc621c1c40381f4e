"""Takedown: claim → quarantine at once → notify → dispute window → reviewer decision → outcome.

One workflow per asset (id `takedown-<job_id>`). The outcome is applied only on a reviewer's
decision: without one the workflow waits (durably, for as long as it takes) and escalates once
after `escalate_after_s`, but never removes anything on its own.

Notifications go through the job's webhook outbox: the owner's events to the job's callback URL,
and (when the claim has its own callback URL) the claimant's to that URL, from separate delivery
children, the claimant's carrying only a `ClaimantNotice`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas import names
    from schemas.jobs import DeliverWebhooksInput
    from schemas.takedown import (
        DECIDE_SIGNAL,
        DECIDE_UPDATE,
        DISPUTE_SIGNAL,
        DISPUTE_UPDATE,
        FINAL_STATES,
        STATUS_QUERY,
        TAKEDOWN_NOT_ALLOWED,
        TAKEDOWN_REFUSED,
        ApplyOutcomeInput,
        ApplyOutcomeOutput,
        AuditInput,
        ClaimantNotice,
        DecisionRequest,
        DisputeRequest,
        OpenTakedownInput,
        OpenTakedownOutput,
        QuarantineInput,
        QuarantineOutput,
        RecordedDecision,
        RecordedDispute,
        TakedownInput,
        TakedownState,
        TakedownStatus,
    )

from workflows.deliver_webhooks import start_delivery

T = TypeVar("T")

# Claimant notifications (outbox rows for the claimant + their delivery children). Histories
# without the marker (and claims without a callback URL) run the earlier commands unchanged.
CLAIMANT_WEBHOOKS_PATCH: Final = "takedown-claimant-webhooks"

# The asset is already out of the published bucket once quarantine ran: every later step must
# eventually happen, so a DB or store outage delays it instead of failing the takedown.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
    non_retryable_error_types=[TAKEDOWN_NOT_ALLOWED],
)
OPEN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
    non_retryable_error_types=[TAKEDOWN_NOT_ALLOWED],
)


@workflow.defn(name=names.TAKEDOWN_WORKFLOW)
class Takedown:
    """One takedown claim against one published asset."""

    @workflow.init
    def __init__(self, inp: TakedownInput) -> None:
        self._inp = inp
        self._status = TakedownStatus(
            takedown_id=inp.takedown_id, job_id=inp.claim.job_id, claimant=inp.claim.claimant
        )
        self._ready = False  # quarantined and the takedown row exists: messages may apply
        self._window_open = True
        self._seq = 0  # audit event counter (deterministic: it follows the history)
        self._deliveries = 0
        self._claimant_deliveries = 0
        self._callback_url: str | None = None

    # --- query, signals, updates ----------------------------------------------------------
    @workflow.query(name=STATUS_QUERY)
    def status(self) -> TakedownStatus:
        return self._status

    def _dispute_problem(self, req: DisputeRequest) -> str | None:
        """Why a dispute cannot be accepted now, or None."""
        s = self._status
        if s.decision is not None or s.state in FINAL_STATES:
            return "the takedown was already decided"
        if s.dispute is not None:
            return f"already disputed by {s.dispute.by}"
        if not req.by.strip():
            return "who disputes is required"
        if not req.reason.strip():
            return "a reason is required"
        if s.owner is not None and req.by != s.owner:
            return f"only the owner of {s.job_id} ({s.owner}) may dispute"
        deadline = s.dispute_deadline
        if not self._window_open or (deadline is not None and workflow.now() > deadline):
            closed = deadline.isoformat() if deadline else "?"
            return f"the dispute window closed at {closed}"
        return None

    def _decision_problem(self, req: DecisionRequest) -> str | None:
        s = self._status
        if not req.reviewer.strip():
            return "a reviewer is required"
        if s.decision is not None:
            return f"already decided: {s.decision.decision} by {s.decision.reviewer}"
        if req.reviewer in (s.claimant, s.owner):
            return "a party to the claim cannot decide it"
        return None

    @workflow.signal(name=DISPUTE_SIGNAL)
    async def dispute(self, req: DisputeRequest) -> None:
        """Dispute from any client; a signal cannot be refused, so a late or invalid one is
        ignored and audited (the `submit_dispute` update refuses it instead)."""
        await workflow.wait_condition(lambda: self._ready)
        problem = self._dispute_problem(req)
        if problem is not None:
            workflow.logger.warning("dispute ignored: %s", problem)
            await self._audit(req.by or "unknown", "dispute_ignored",
                              {"problem": problem, "reason": req.reason})  # fmt: skip
            return
        await self._accept_dispute(req)

    @workflow.update(name=DISPUTE_UPDATE)
    async def submit_dispute(self, req: DisputeRequest) -> TakedownStatus:
        """Dispute with validation; returns the status once it is recorded."""
        await workflow.wait_condition(lambda: self._ready)
        problem = self._dispute_problem(req)  # the owner is only known once ready
        if problem is not None:
            raise ApplicationError(problem, type=TAKEDOWN_REFUSED, non_retryable=True)
        await self._accept_dispute(req)
        return self._status

    @submit_dispute.validator
    def _validate_dispute(self, req: DisputeRequest) -> None:
        problem = self._dispute_problem(req)
        if problem is not None:
            raise ApplicationError(problem, type=TAKEDOWN_REFUSED)

    @workflow.signal(name=DECIDE_SIGNAL)
    async def decide(self, req: DecisionRequest) -> None:
        """Reviewer decision from any client; an invalid one is ignored and audited."""
        await workflow.wait_condition(lambda: self._ready)
        problem = self._decision_problem(req)
        if problem is not None:
            workflow.logger.warning("decision ignored: %s", problem)
            await self._audit(req.reviewer or "unknown", "decision_ignored",
                              {"problem": problem, "decision": req.decision})  # fmt: skip
            return
        self._accept_decision(req)

    @workflow.update(name=DECIDE_UPDATE)
    async def submit_decision(self, req: DecisionRequest) -> TakedownStatus:
        """Decision with validation; returns the status once the outcome is applied."""
        await workflow.wait_condition(lambda: self._ready)
        problem = self._decision_problem(req)
        if problem is not None:
            raise ApplicationError(problem, type=TAKEDOWN_REFUSED, non_retryable=True)
        self._accept_decision(req)
        await workflow.wait_condition(lambda: self._status.state in FINAL_STATES)
        return self._status

    @submit_decision.validator
    def _validate_decision(self, req: DecisionRequest) -> None:
        problem = self._decision_problem(req)
        if problem is not None:
            raise ApplicationError(problem, type=TAKEDOWN_REFUSED)

    async def _accept_dispute(self, req: DisputeRequest) -> None:
        # Set before any await, so a concurrent second dispute sees this one.
        self._status.dispute = RecordedDispute(by=req.by, reason=req.reason, at=workflow.now())
        self._status.state = TakedownState.DISPUTED
        await self._audit(req.by, "disputed", {"reason": req.reason},
                          state=TakedownState.DISPUTED, webhook="takedown.disputed")  # fmt: skip
        await self._deliver()

    def _accept_decision(self, req: DecisionRequest) -> None:
        self._status.decision = RecordedDecision(
            decision=req.decision, reviewer=req.reviewer, note=req.note, at=workflow.now()
        )

    # --- the run ----------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: TakedownInput) -> TakedownStatus:
        claim, s = inp.claim, self._status
        s.filed_at = filed_at = workflow.now()
        s.dispute_deadline = deadline = filed_at + timedelta(seconds=inp.dispute_window_s)
        opened = await self._act(
            names.TAKEDOWN_OPEN,
            OpenTakedownInput(takedown_id=inp.takedown_id, workflow_id=workflow.info().workflow_id,
                              claim=claim, filed_at=s.filed_at,
                              dispute_deadline=s.dispute_deadline),
            OpenTakedownOutput, retry=OPEN_RETRY,
        )  # fmt: skip
        s.owner, self._callback_url = opened.owner, opened.callback_url
        await self._audit(claim.claimant, "filed", claim.model_dump(mode="json"))
        quarantined = await self._act(
            names.TAKEDOWN_QUARANTINE,
            QuarantineInput(takedown_id=inp.takedown_id, job_id=claim.job_id,
                            quarantine_bucket=inp.quarantine_bucket),
            QuarantineOutput,
        )  # fmt: skip
        s.objects, s.state = quarantined.objects, TakedownState.QUARANTINED
        # Both parties: the owner through the job's webhook, the claimant through the contact
        # address carried in the event (the outbox is the platform's one notification channel).
        await self._audit("system", "quarantined", {
            "objects": quarantined.objects, "claimant": claim.claimant,
            "contact_email": claim.contact_email, "owner": s.owner, "evidence": claim.evidence,
            "evidence_url": claim.evidence_url,
            "dispute_deadline": deadline.isoformat(),
            "notify": ["owner", "claimant"],
        }, webhook="takedown.filed", claimant=self._claimant_notice())  # fmt: skip
        await self._deliver()
        await self._deliver_claimant()
        self._ready = True

        await self._dispute_window(deadline)
        decision = await self._await_decision(filed_at)
        await self._apply(decision)
        # Let dispute/decision handlers still running (audits) finish before the run ends.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s

    async def _dispute_window(self, deadline: datetime) -> None:
        """Wait (durable timer) until the window closes, a dispute arrives or a decision."""
        s = self._status
        remaining = (deadline - workflow.now()).total_seconds()
        try:
            await workflow.wait_condition(
                lambda: s.dispute is not None or s.decision is not None,
                timeout=timedelta(seconds=max(remaining, 0.001)),
            )
        except TimeoutError:
            self._window_open = False
            await self._audit("system", "dispute_window_closed",
                              {"deadline": deadline.isoformat()})  # fmt: skip

    async def _await_decision(self, filed_at: datetime) -> RecordedDecision:
        """Wait for a reviewer; escalate once after `escalate_after_s`, then keep waiting."""
        s = self._status
        escalate_at = filed_at + timedelta(seconds=self._inp.escalate_after_s)
        remaining = (escalate_at - workflow.now()).total_seconds()
        try:
            await workflow.wait_condition(
                lambda: s.decision is not None, timeout=timedelta(seconds=max(remaining, 0.001))
            )
            return self._decision()
        except TimeoutError:
            pass
        s.escalated = True
        workflow.logger.warning("takedown %s: no decision yet, escalated", s.takedown_id)
        await self._audit("system", "escalated", {"waiting_s": self._inp.escalate_after_s},
                          webhook="takedown.escalated")  # fmt: skip
        await self._deliver()
        await workflow.wait_condition(lambda: s.decision is not None)
        return self._decision()

    def _decision(self) -> RecordedDecision:
        """The recorded decision, once the waits above saw one."""
        decision = self._status.decision
        if decision is None:  # cannot happen: a recorded decision is never taken back
            raise ApplicationError(
                f"takedown {self._status.takedown_id}: no decision recorded", non_retryable=True
            )
        return decision

    async def _apply(self, decision: RecordedDecision) -> None:
        s, inp = self._status, self._inp
        outcome_input = ApplyOutcomeInput(
            takedown_id=inp.takedown_id, job_id=s.job_id, claimant=s.claimant,
            quarantine_bucket=inp.quarantine_bucket, decision=decision,
        )  # fmt: skip
        await self._audit(decision.reviewer, "decided",
                          {"decision": decision.decision, "note": decision.note})  # fmt: skip
        detail: dict[str, Any]
        if decision.decision == "restore":
            out = await self._act(names.TAKEDOWN_RESTORE, outcome_input, ApplyOutcomeOutput)
            final, detail = TakedownState.RESTORED, {"objects": out.objects}
        else:
            out = await self._act(names.TAKEDOWN_REMOVE, outcome_input, ApplyOutcomeOutput, 600)
            s.recording_id = out.recording_id
            final = TakedownState.REMOVED
            detail = {"deleted": out.objects, "catalog_recording": out.recording_id,
                      "catalog_error": out.catalog_error}  # fmt: skip
        await self._audit(decision.reviewer, final.value, detail, state=final,
                          webhook=f"takedown.{final.value}",
                          claimant=self._claimant_notice(final))  # fmt: skip
        s.state = final  # after the audit: the decide update returns once this is recorded
        await self._deliver()
        await self._deliver_claimant()

    # --- helpers ----------------------------------------------------------------------------
    async def _act(
        self, name: str, arg: object, result_type: type[T], timeout_s: float = 120,
        retry: RetryPolicy = RETRY,
    ) -> T:  # fmt: skip
        return await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            task_queue=names.CPU_TASK_QUEUE,
            start_to_close_timeout=timedelta(seconds=timeout_s),
            retry_policy=retry,
        )

    async def _audit(
        self,
        actor: str,
        action: str,
        detail: dict[str, Any],
        *,
        state: TakedownState | None = None,
        webhook: str | None = None,
        claimant: ClaimantNotice | None = None,
    ) -> None:
        self._seq += 1
        await workflow.execute_activity(
            names.TAKEDOWN_AUDIT,
            AuditInput(takedown_id=self._inp.takedown_id, job_id=self._status.job_id,
                       seq=self._seq, actor=actor, action=action, at=workflow.now(),
                       detail=detail, state=state, webhook_event=webhook,
                       claimant_notice=claimant),
            task_queue=names.CPU_TASK_QUEUE,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )  # fmt: skip

    def _claimant_enabled(self) -> bool:
        """Whether the claimant is notified: the claim has a callback URL and this run records
        (or replays) the claimant-webhooks patch."""
        return bool(self._inp.claim.callback_url) and workflow.patched(CLAIMANT_WEBHOOKS_PATCH)

    def _claimant_notice(self, state: TakedownState | None = None) -> ClaimantNotice | None:
        """The claimant's view of the takedown now (`state` overrides the current one), or None
        when the claimant is not notified."""
        if not self._claimant_enabled():
            return None
        s = self._status
        if s.filed_at is None or s.dispute_deadline is None:
            raise ApplicationError("takedown not opened", non_retryable=True)
        return ClaimantNotice(
            takedown_id=s.takedown_id, job_id=s.job_id, state=state or s.state, at=workflow.now(),
            filed_at=s.filed_at, dispute_deadline=s.dispute_deadline,
            disputed=s.dispute is not None,
            decision=s.decision.decision if s.decision else None,
            decided_at=s.decision.at if s.decision else None,
        )  # fmt: skip

    async def _deliver(self) -> None:
        """Deliver the job's pending owner events to its callback URL (if any) in an abandoned
        child, so a slow receiver never holds up the takedown."""
        if not self._callback_url:
            return
        self._deliveries += 1
        await start_delivery(
            DeliverWebhooksInput(job_id=self._status.job_id, callback_url=self._callback_url),
            f"{self._inp.takedown_id}-webhooks-{self._deliveries}",
        )

    async def _deliver_claimant(self) -> None:
        """Deliver this takedown's pending claimant events to the claim's callback URL (if
        any); its own children, whose ids never meet the owner's."""
        url = self._inp.claim.callback_url
        if not url or not self._claimant_enabled():
            return
        self._claimant_deliveries += 1
        await start_delivery(
            DeliverWebhooksInput(job_id=self._status.job_id, callback_url=url,
                                 recipient="claimant", takedown_id=self._inp.takedown_id),
            f"{self._inp.takedown_id}-claimant-webhooks-{self._claimant_deliveries}",
        )  # fmt: skip

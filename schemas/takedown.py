"""Takedown contracts: settings, the workflow input, its signals/updates/query and activities.

A takedown is one `Takedown` workflow per asset (workflow id `takedown-<job_id>`); every filing
has its own `takedown_id`, which keys the `takedowns` row, its audit events and its outbox events.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import names
from schemas.errors import TunesmithError

TAKEDOWN_WORKFLOW: Final = names.TAKEDOWN_WORKFLOW  # the SDK imports it from here
STATUS_QUERY: Final = "takedown_status"
DISPUTE_SIGNAL: Final = "dispute"
DISPUTE_UPDATE: Final = "submit_dispute"
DECIDE_SIGNAL: Final = "decide"
DECIDE_UPDATE: Final = "submit_decision"
# ApplicationError types: the asset cannot be taken down (non-retryable), or a dispute/decision
# was refused by an update validator.
TAKEDOWN_NOT_ALLOWED: Final = "TakedownNotAllowed"
TAKEDOWN_REFUSED: Final = "TakedownRefused"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def takedown_workflow_id(job_id: str) -> str:
    """One takedown workflow per asset: a second filing finds the first."""
    return f"takedown-{job_id}"


class TakedownSettings(BaseSettings):
    """`TUNESMITH_TAKEDOWN_*` settings (kept apart from `infra.settings`)."""

    model_config = SettingsConfigDict(env_prefix="TUNESMITH_TAKEDOWN_", extra="ignore")

    quarantine_bucket: str = "tunesmith-quarantine"
    dispute_window_s: float = Field(default=14 * 24 * 3600.0, gt=0)
    # A claim without a reviewer decision this long is escalated (never decided automatically).
    escalate_after_s: float = Field(default=7 * 24 * 3600.0, gt=0)


class TakedownState(StrEnum):
    FILED = "filed"  # workflow started, asset not yet moved
    QUARANTINED = "quarantined"  # out of the published bucket, awaiting dispute/decision
    DISPUTED = "disputed"  # the owner disputed in time; awaiting a decision
    RESTORED = "restored"  # decision: restore — published again
    REMOVED = "removed"  # decision: remove — deleted for good, content in the catalog


FINAL_STATES = frozenset({TakedownState.RESTORED, TakedownState.REMOVED})


class TakedownClaim(BaseModel):
    """What a claimant files (validated in the SDK before anything starts)."""

    job_id: str = Field(min_length=1, max_length=200)
    claimant: str = Field(min_length=1, max_length=200)
    evidence: str = Field(min_length=1, max_length=10_000)
    contact_email: str = Field(max_length=320)
    evidence_url: str | None = Field(default=None, max_length=2000)
    # The claimant's webhook: signed takedown events meant for the claimant (never the owner's).
    callback_url: str | None = Field(default=None, max_length=2000)

    @field_validator("job_id", "claimant", "evidence")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value.strip()):
            raise ValueError(f"not an email address: {value!r}")
        return value.strip()

    @field_validator("evidence_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://\S+$", value.strip()):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.strip() if value else None

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        # The same rule as `GenerationRequest.callback_url`.
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"callback_url must be an http(s) URL, not {value!r}")
        return value


class TakedownInput(BaseModel):
    """Input of the Takedown workflow."""

    takedown_id: str
    claim: TakedownClaim
    quarantine_bucket: str = "tunesmith-quarantine"
    dispute_window_s: float = Field(gt=0)
    escalate_after_s: float = Field(gt=0)


class DisputeRequest(BaseModel):
    """Signal `dispute` / update `submit_dispute`: the owner contests the claim."""

    by: str
    reason: str


class DecisionRequest(BaseModel):
    """Signal `decide` / update `submit_decision`: a reviewer's outcome."""

    decision: Literal["restore", "remove"]
    reviewer: str
    note: str | None = None


class RecordedDispute(DisputeRequest):
    at: datetime


class RecordedDecision(DecisionRequest):
    at: datetime


class TakedownStatus(BaseModel):
    """Query `takedown_status`, and the result of the workflow and of its updates."""

    takedown_id: str
    job_id: str
    claimant: str
    state: TakedownState = TakedownState.FILED
    owner: str | None = None
    filed_at: datetime | None = None
    dispute_deadline: datetime | None = None
    dispute: RecordedDispute | None = None
    decision: RecordedDecision | None = None
    escalated: bool = False
    objects: list[str] = Field(default_factory=list)  # keys moved out of the published bucket
    recording_id: str | None = None  # the catalog recording added on removal


class TakedownFiled(BaseModel):
    """What `file_takedown` returns: the takedown, and whether this call created it."""

    workflow_id: str
    created: bool
    status: TakedownStatus


# --- activities --------------------------------------------------------------------------------
class OpenTakedownInput(BaseModel):
    takedown_id: str
    workflow_id: str
    claim: TakedownClaim
    filed_at: datetime
    dispute_deadline: datetime


class OpenTakedownOutput(BaseModel):
    owner: str  # the job's tenant
    callback_url: str | None


class QuarantineInput(BaseModel):
    takedown_id: str
    job_id: str
    quarantine_bucket: str


class QuarantineOutput(BaseModel):
    objects: list[str]


class ClaimantNotice(BaseModel):
    """The `data` of a webhook event sent to the claimant: only what the claimant may see (no
    owner request, prompt, contact details or object keys)."""

    takedown_id: str
    job_id: str  # the asset
    state: TakedownState
    at: datetime  # workflow time of the event
    filed_at: datetime
    dispute_deadline: datetime
    disputed: bool = False
    decision: Literal["restore", "remove"] | None = None
    decided_at: datetime | None = None


class AuditInput(BaseModel):
    """One `takedown_events` row (plus, optionally, a state change and an outbox event)."""

    takedown_id: str
    job_id: str
    seq: int  # per-workflow counter: a retried activity writes its event once
    actor: str
    action: str
    at: datetime
    detail: dict[str, object] = Field(default_factory=dict)
    state: TakedownState | None = None
    webhook_event: str | None = None  # e.g. "takedown.filed": written to the job's outbox
    # Also written to the outbox for the claimant (with this payload only); set by the workflow
    # when the claim has a callback URL.
    claimant_notice: ClaimantNotice | None = None


class ApplyOutcomeInput(BaseModel):
    takedown_id: str
    job_id: str
    claimant: str
    quarantine_bucket: str
    decision: RecordedDecision


class ApplyOutcomeOutput(BaseModel):
    objects: list[str]
    recording_id: str | None = None
    catalog_error: str | None = None  # why the content could not be added to the catalog


# --- SDK errors --------------------------------------------------------------------------------
class TakedownNotAllowedError(TunesmithError):
    """The asset cannot be taken down, or a dispute/decision was refused; nothing changed."""


class TakedownNotFoundError(TunesmithError, LookupError):
    """No takedown was filed for this asset."""

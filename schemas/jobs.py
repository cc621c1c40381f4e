"""Workflow, activity, signal, query and update contracts: one input and one output model each."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.controls import ControlTokens
from schemas.request import (
    DEFAULT_FORMATS,
    DEFAULT_PROFILE,
    DeliveryFormat,
    DeliveryProfileName,
    GenerationRequest,
    ReviewMode,
)


class Stage(StrEnum):
    """Where a job is. Terminal stages: published, rejected, expired, failed, cancelled."""

    QUEUED = "queued"
    NORMALIZING = "normalizing"
    GENERATING = "generating"
    POSTPROCESSING = "postprocessing"
    CHECKING = "checking"
    AWAITING_REVIEW = "awaiting_review"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STAGES = frozenset(
    {Stage.PUBLISHED, Stage.REJECTED, Stage.EXPIRED, Stage.FAILED, Stage.CANCELLED}
)


class ReviewState(StrEnum):
    """Review state of a job, as shown in the Web UI and `tunesmith review`."""

    PENDING = "pending"  # not decided yet (before the gate)
    AUTO_APPROVED = "auto_approved"
    AWAITING_REVIEW = "awaiting_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


# The stage a job moves to once the review gate has an outcome (the workflow decides it).
STAGE_AFTER_REVIEW: dict[ReviewState, Stage] = {
    ReviewState.APPROVED: Stage.PUBLISHING,
    ReviewState.REJECTED: Stage.REJECTED,
    ReviewState.EXPIRED: Stage.EXPIRED,
}


class GenerateTrackInput(BaseModel):
    """Input of the GenerateTrack workflow.

    `request` is kept as raw data on purpose: the workflow must not fail to decode its own input
    when someone starts it directly with a bad request; `normalize_controls` validates it and fails
    the workflow with a non-retryable `InvalidRequest` error instead.
    """

    job_id: str
    request: dict[str, Any]
    idempotency_key: str | None = None
    review_timeout_s: float = 7 * 24 * 3600.0
    heartbeat_timeout_s: float = 15.0
    gpu_queue_timeout_s: float = 600.0


class AudioRef(BaseModel):
    """A pointer to audio in the object store plus small metadata; never the bytes."""

    uri: str
    sha256: str
    sample_rate: int
    channels: int
    duration_s: float
    format: str
    size_bytes: int


class NormalizeInput(BaseModel):
    job_id: str
    request: dict[str, Any]
    idempotency_key: str | None = None
    next_stage: Stage = Stage.GENERATING  # the stage a new job row records


class NormalizeOutput(BaseModel):
    tokens: ControlTokens
    # The validated request (experiment overrides applied); histories hold it as JSON.
    request: GenerationRequest
    request_sha256: str
    experiments: list[dict[str, Any]] = Field(default_factory=list)  # A/B assignments


class ModelRef(BaseModel):
    """The exact model that rendered a job: its id and version."""

    model_config = ConfigDict(frozen=True)

    id: str
    version: str

    @property
    def label(self) -> str:
        """How audio tags and webhook events name the model, e.g. `draft draft-1`."""
        return f"{self.id} {self.version}"


class GenerateAudioInput(BaseModel):
    job_id: str
    tokens: ControlTokens
    # A quick draft preview rendered before the final (progressive refinement): stored under
    # its own keys as the `draft_preview` artifact; the job's stage is left alone.
    preview: bool = False
    # The stage the job row records once the render is stored (set by the workflow, which owns
    # the stage; the default is for payloads scheduled before the workflow named it).
    next_stage: Stage = Stage.POSTPROCESSING


class GenerateAudioOutput(BaseModel):
    raw: AudioRef  # the main audio: the track, the loop, the stems' mix or the top layer
    model_id: str
    model_version: str
    render_seconds: float
    parts: dict[str, AudioRef] = Field(default_factory=dict)  # stems or layers, by name
    main_part: str = "main"  # the name of `raw` among the parts ("mix", "combat", ...)
    weights_sha256: str | None = None  # the exact weights (None: weight-free draft model)

    @property
    def model_ref(self) -> ModelRef:
        return ModelRef(id=self.model_id, version=self.model_version)


class PostprocessInput(BaseModel):
    job_id: str
    raw: AudioRef
    requested_duration_s: float = 0.0
    profile: DeliveryProfileName = DEFAULT_PROFILE
    formats: list[DeliveryFormat] = Field(default_factory=lambda: list(DEFAULT_FORMATS))
    title: str = ""
    model: ModelRef | None = None  # what rendered the raw audio (tags, C2PA)
    instruments: list[str] = Field(default_factory=list)
    seed: int = 0
    tokens: ControlTokens | None = None  # product, bar grid and layers (None: older histories)
    parts: dict[str, AudioRef] = Field(default_factory=dict)  # raw stems or layers
    main_part: str = "main"
    next_stage: Stage = Stage.CHECKING  # recorded once mastered (see GenerateAudioInput)

    @field_validator("model", mode="before")
    @classmethod
    def _model_of_older_payloads(cls, value: object) -> object:
        # Payloads scheduled before ModelRef carried the model as one "<id> <version>" string.
        if isinstance(value, str):
            model_id, _, version = value.partition(" ")
            return ModelRef(id=model_id, version=version) if model_id else None
        return value


class AudioMeasurements(BaseModel):
    integrated_lufs: float
    true_peak_dbtp: float
    duration_s: float
    sample_rate: int
    loudness_range_lu: float | None = None
    target_lufs: float | None = None


class QualityReport(BaseModel):
    """Automatic quality checks on a master: a 0..1 score and one reason per finding."""

    score: float = 1.0
    findings: list[str] = Field(default_factory=list)


class AudioFeatures(BaseModel):
    """Small, queryable facts about a master (stored in PostgreSQL, not in the audio)."""

    loudness_range_lu: float
    tempo_bpm: float
    key: str
    key_confidence: float
    spectral: dict[str, float] = Field(default_factory=dict)
    instruments: list[str] = Field(default_factory=list)
    embedding: list[float] = Field(default_factory=list)
    embedding_model: str = "dsp-v1"


class PartOutput(BaseModel):
    """One mastered part of a stem pack or layer set."""

    name: str
    master: AudioRef
    deliverables: list[AudioRef] = Field(default_factory=list)
    integrated_lufs: float
    true_peak_dbtp: float


# The artifact kind of the overview PNG (waveform + spectrogram) post-processing writes: a row
# without the audio columns. Published, it is `published_overview` (not a row).
OVERVIEW_ARTIFACT: Final = "overview_png"


class PostprocessOutput(BaseModel):
    master: AudioRef  # internal 24-bit WAV master: what the checks analyse
    measurements: AudioMeasurements
    postprocess_version: str
    quality: QualityReport = Field(default_factory=QualityReport)
    profile: str = DEFAULT_PROFILE
    deliverables: list[AudioRef] = Field(default_factory=list)  # one per requested format
    preview: AudioRef | None = None
    overview_uri: str | None = None  # waveform + spectrogram PNG
    features: AudioFeatures | None = None
    compressed: AudioRef | None = None  # histories before postprocess-2 only
    parts: list[PartOutput] = Field(default_factory=list)  # stems / layers
    manifest: dict[str, Any] | None = None  # product manifest (grid, parts), see manifest.py
    watermark: dict[str, str] | None = None  # {"scheme", "payload"} when embedded
    c2pa_signed: list[str] = Field(default_factory=list)  # formats carrying a C2PA manifest


class CheckSimilarityInput(BaseModel):
    job_id: str
    master: AudioRef
    measurements: AudioMeasurements
    requested_duration_s: float
    review_mode: ReviewMode = ReviewMode.AUTO
    quality: QualityReport = Field(default_factory=QualityReport)
    # The stage the job row records by the policy's recommendation (set by the workflow).
    stage_if_review: Stage = Stage.AWAITING_REVIEW
    stage_if_auto_approved: Stage = Stage.PUBLISHING


class ReviewRecommendation(BaseModel):
    decision: Literal["auto_approve", "needs_review"]
    reasons: list[str] = Field(default_factory=list)
    policy_version: str
    required_approvals: int = 1  # 0 auto-approve, 1 one reviewer, 2 two different reviewers
    review_timeout_s: float | None = None  # the policy's wait (None: the workflow input's)
    escalate_after_s: float | None = None  # no decision after this long: escalate
    escalation_target: str | None = None  # a reviewer role ("senior", "admin") or "webhook"


RiskLevel = Literal["clear", "review", "block"]


class SimilarityMatch(BaseModel):
    """A catalog recording that the output resembles, and where."""

    recording_id: str
    title: str | None = None
    method: Literal["fingerprint", "melody"]
    score: float  # 0..1, higher = more similar
    query_offset_s: float  # where in the checked audio the match starts
    recording_offset_s: float  # where in the catalog recording
    duration_s: float  # length of the matched stretch
    risk: RiskLevel = "review"
    bit_error_rate: float | None = None  # fingerprint matches: 0 = identical, ~0.4 = unrelated
    semitones: int | None = None  # melody matches: transposition of the checked audio
    tempo_factor: float | None = None  # melody: query tempo ÷ recording tempo (0.92-1.08)


class CheckSimilarityOutput(BaseModel):
    fingerprint_sha256: str
    fingerprint_items: int
    matches: list[SimilarityMatch] = Field(default_factory=list)
    risk: RiskLevel = "clear"
    recommendation: ReviewRecommendation
    risk_reasons: list[str] = Field(default_factory=list)


class ReviewDecision(BaseModel):
    """Body of the `review` signal and the `submit_review` update."""

    decision: Literal["approve", "reject"]
    reviewer: str = Field(min_length=1, max_length=200)
    note: str | None = None
    # HMAC of (job, reviewer, decision) under the reviewer's token (activities.review.proof);
    # required once any reviewer is registered. Never the token itself: histories are readable.
    proof: str | None = Field(default=None, max_length=200)


class AuthorizeReviewInput(BaseModel):
    """Input of `authorize_review`: may this decision be applied to this job now?"""

    job_id: str
    decision: ReviewDecision
    channel: Literal["update", "signal"]
    awaiting: bool  # the workflow is awaiting review and undecided
    stage: Stage
    approvers: list[str] = Field(default_factory=list)  # who approved already
    min_role: str | None = None  # after an escalation to a role


class AuthorizeReviewOutput(BaseModel):
    allowed: bool
    reason: str = ""


class EscalateReviewInput(BaseModel):
    job_id: str
    target: str
    reasons: list[str] = Field(default_factory=list)


class AuditReviewRefusalInput(BaseModel):
    """A decision refused before `authorize_review` saw it (by the update's validator, or for
    a finished or unknown job), audited for the client that sent it (action `client`)."""

    job_id: str
    reviewer: str
    decision: Literal["approve", "reject"]
    reason: str


class RecordReviewInput(BaseModel):
    job_id: str
    decision: ReviewDecision | None
    outcome: ReviewState
    reasons: list[str] = Field(default_factory=list)
    next_stage: Stage  # the stage the job row records (the workflow's STAGE_AFTER_REVIEW)

    @model_validator(mode="before")
    @classmethod
    def _stage_of_older_payloads(cls, data: Any) -> Any:
        # Payloads scheduled before the workflow named the stage: the one its outcome implied.
        if isinstance(data, dict) and "next_stage" not in data and "outcome" in data:
            return {**data, "next_stage": STAGE_AFTER_REVIEW[ReviewState(data["outcome"])]}
        return data


class PublishInput(BaseModel):
    job_id: str
    tokens: ControlTokens
    request: GenerationRequest
    request_sha256: str
    generated: GenerateAudioOutput
    postprocessed: PostprocessOutput
    similarity: CheckSimilarityOutput
    review_state: ReviewState
    review: ReviewDecision | None = None
    review_reasons: list[str] = Field(default_factory=list)
    published_at: datetime
    experiments: list[dict[str, Any]] = Field(default_factory=list)
    next_stage: Stage = Stage.PUBLISHED  # recorded with the publish transaction


class PublishOutput(BaseModel):
    artifacts: dict[str, str]
    provenance_uri: str
    charge_cents: int


class DeliverWebhooksInput(BaseModel):
    job_id: str
    callback_url: str
    # Whose outbox rows to deliver: the job owner's (the default, as before) or one takedown
    # claimant's (`takedown_id` then names the takedown).
    recipient: Literal["owner", "claimant"] = "owner"
    takedown_id: str | None = None


class DeliverWebhooksOutput(BaseModel):
    delivered: int


class FinishJobInput(BaseModel):
    job_id: str
    stage: Stage
    error: str | None = None


class JobStatus(BaseModel):
    """Answer of the `status` query."""

    job_id: str
    stage: Stage
    progress: float = 0.0
    review_state: ReviewState = ReviewState.PENDING
    model_id: str | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    review_reasons: list[str] = Field(default_factory=list)
    error: str | None = None
    stages_seen: list[Stage] = Field(default_factory=list)  # every stage entered, in order
    required_approvals: int = 0  # approvals the review policy asks for (0: none)
    approvals: list[str] = Field(default_factory=list)  # reviewers who approved so far
    escalated_to: str | None = None  # escalation target once the review was escalated


class GenerationResult(BaseModel):
    """Result of a GenerateTrack run: URIs and metadata, never audio bytes."""

    job_id: str
    stage: Stage
    review_state: ReviewState
    model_id: str | None = None
    model_version: str | None = None
    seed: int | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    measurements: AudioMeasurements | None = None
    provenance_uri: str | None = None
    charge_cents: int = 0
    review: ReviewDecision | None = None

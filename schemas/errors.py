"""Error type names carried by Temporal `ApplicationError.type`, and the SDK's typed errors."""

from typing import Final

# Non-retryable: retrying cannot fix the input.
INVALID_REQUEST: Final = "InvalidRequest"
BACKEND_LIMIT: Final = "BackendLimitExceeded"
MISSING_DEPENDENCY: Final = "MissingSystemDependency"
UNMASTERABLE_AUDIO: Final = "UnmasterableAudio"
JOB_ALREADY_FINISHED: Final = "JobAlreadyFinished"
# From activities.inference.failures (same strings): the model cannot honour the controls, or
# the worker has no weights for it.
INVALID_CONDITIONING: Final = "InvalidConditioning"
MODEL_WEIGHTS_MISSING: Final = "ModelWeightsMissing"
# No GPU worker picked the job up within the queue timeout: no worker serves the model.
MODEL_NOT_SERVED: Final = "ModelNotServed"
NON_RETRYABLE_ERROR_TYPES: Final = [
    INVALID_REQUEST,
    BACKEND_LIMIT,
    MISSING_DEPENDENCY,
    UNMASTERABLE_AUDIO,
    JOB_ALREADY_FINISHED,
    INVALID_CONDITIONING,
    MODEL_WEIGHTS_MISSING,
]
# Retryable: another worker may serve the model.
UNKNOWN_MODEL: Final = "UnknownModel"
# The webhook receiver refused the event (4xx): the job is still published.
WEBHOOK_REJECTED: Final = "WebhookRejected"
# A refused review decision (the submit_review update's validator, or the gate once
# `authorize_review` refused it).
REVIEW_NOT_ALLOWED: Final = "ReviewNotAllowed"
# The detail a ReviewNotAllowed failure carries when no activity audited the refusal (the
# validator's refusals, a decision that could not be authorized): the SDK then audits it, by
# the AuditReviewRefusal workflow. Without it `authorize_review` wrote the audit row.
REVIEW_REFUSAL_UNAUDITED: Final = "unaudited"


class TunesmithError(Exception):
    """Base class of every error tunesmith raises to its users."""


class InvalidRequestError(TunesmithError, ValueError):
    """The request cannot be served as given; nothing was started or charged."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class IdempotencyConflictError(TunesmithError):
    """An idempotency key was reused with a different request."""


class JobNotFoundError(TunesmithError, LookupError):
    """No job with this id exists."""


class ReviewNotAllowedError(TunesmithError):
    """A review decision was sent to a job that is not awaiting review."""


class MissingSecretError(TunesmithError):
    """A secret this command needs (credentials, a key) is neither configured nor in the state
    dir; nothing was created in its place."""

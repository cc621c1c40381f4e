"""tunesmith: durable, reviewed, licence-safe AI music generation on Temporal.

from tunesmith import Client, GenerationRequest
"""

from schemas.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    JobNotFoundError,
    ReviewNotAllowedError,
    TunesmithError,
)
from schemas.jobs import GenerationResult, JobStatus, ReviewState, Stage
from schemas.request import GenerationRequest, Product, ReviewMode, Tier
from tunesmith.client import Client, JobFailedError, JobHandle

__all__ = [
    "Client",
    "GenerationRequest",
    "GenerationResult",
    "IdempotencyConflictError",
    "InvalidRequestError",
    "JobFailedError",
    "JobHandle",
    "JobNotFoundError",
    "JobStatus",
    "Product",
    "ReviewMode",
    "ReviewNotAllowedError",
    "ReviewState",
    "Stage",
    "Tier",
    "TunesmithError",
]

"""The generation request: what a client asks for. Validated here, before any work starts."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.errors import InvalidRequestError
from schemas.music import normalize_instrument, parse_key

MIN_TEMPO_BPM = 30.0
MAX_TEMPO_BPM = 300.0


class Tier(StrEnum):
    """Quality tier; picks the model backend. Later tiers add neural backends."""

    DRAFT = "draft"


class ReviewMode(StrEnum):
    """`auto` lets the review policy decide; `required` always routes to a human."""

    AUTO = "auto"
    REQUIRED = "required"


DeliveryProfileName = Literal["streaming", "apple", "podcast", "broadcast"]
DeliveryFormat = Literal["wav24", "wav16", "flac", "mp3", "opus"]


class Product(StrEnum):
    """Shape of the output."""

    TRACK = "track"


# The model backend serving each tier, and the longest output it renders in one job (its model
# card says the same). The SDK checks these before starting anything.
TIER_MODEL: dict[Tier, str] = {Tier.DRAFT: "draft"}
TIER_MAX_DURATION_S: dict[Tier, float] = {Tier.DRAFT: 600.0}


class GenerationRequest(BaseModel):
    """One request for music. New fields always get defaults so old clients keep working."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Annotated[str, Field(min_length=1, max_length=2000)]
    duration_s: Annotated[float, Field(gt=0, description="requested length in seconds")] = 30.0
    tempo_bpm: Annotated[float, Field(ge=MIN_TEMPO_BPM, le=MAX_TEMPO_BPM)] = 120.0
    key: str = "C major"
    instruments: Annotated[list[str], Field(min_length=1, max_length=16)] = [
        "piano",
        "bass",
        "drums",
    ]
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    tier: Tier = Tier.DRAFT
    product: Product = Product.TRACK
    review: ReviewMode = ReviewMode.AUTO
    profile: DeliveryProfileName = "streaming"
    formats: Annotated[list[DeliveryFormat], Field(min_length=1, max_length=5)] = ["wav24", "mp3"]
    tenant: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = (
        "default"
    )
    callback_url: Annotated[
        str | None, Field(max_length=2000, description="POSTed job events (webhook)")
    ] = None

    def sha256(self) -> str:
        """Stable hash of the validated request (canonical JSON): idempotency and provenance."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @model_validator(mode="after")
    def _within_backend_limit(self) -> GenerationRequest:
        limit = TIER_MAX_DURATION_S[self.tier]
        if self.duration_s > limit:
            raise ValueError(
                f"duration_s {self.duration_s:g} s is over the {self.tier.value} backend's "
                f"limit of {limit:g} s"
            )
        return self

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parsed = urlparse(v)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"callback_url must be an http(s) URL, not {v!r}")
        return v

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, v: list[DeliveryFormat]) -> list[DeliveryFormat]:
        return list(dict.fromkeys(v))

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt must not be empty")
        return v.strip()

    @field_validator("key")
    @classmethod
    def _known_key(cls, v: str) -> str:
        parse_key(v)
        return v

    @field_validator("instruments")
    @classmethod
    def _known_instruments(cls, v: list[str]) -> list[str]:
        canonical = [normalize_instrument(name) for name in v]
        # Order-preserving de-duplication: "piano, Piano" is one instrument.
        return list(dict.fromkeys(canonical))


def validate_request(data: object) -> GenerationRequest:
    """Validate raw request data into a `GenerationRequest`.

    Raises:
        InvalidRequestError: with one readable line per problem.
    """
    if isinstance(data, GenerationRequest):
        return data
    try:
        return GenerationRequest.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: "
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        ]
        raise InvalidRequestError(
            "invalid request: " + "; ".join(problems), problems=problems
        ) from None

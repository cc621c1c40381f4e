"""The generation request: what a client asks for. Validated here, before any work starts."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.errors import InvalidRequestError
from schemas.music import (
    MOODS,
    expand_instruments,
    normalize_structure,
    parse_key,
    parse_meter,
)

MIN_TEMPO_BPM = 30.0
MAX_TEMPO_BPM = 300.0


class Tier(StrEnum):
    """Quality tier; the deployment's configuration maps each tier to a model
    (`TUNESMITH_DRAFT_MODEL`, `TUNESMITH_FINAL_MODEL`)."""

    DRAFT = "draft"
    FINAL = "final"


class ReviewMode(StrEnum):
    """`auto` lets the review policy decide; `required` always routes to a human."""

    AUTO = "auto"
    REQUIRED = "required"


DeliveryProfileName = Literal["streaming", "apple", "podcast", "broadcast"]
DeliveryFormat = Literal["wav24", "wav16", "flac", "mp3", "opus"]
# What a request that names no profile, formats or tenant gets (these defaults live here only).
DEFAULT_PROFILE: DeliveryProfileName = "streaming"
DEFAULT_FORMATS: tuple[DeliveryFormat, ...] = ("wav24", "mp3")
DEFAULT_TENANT = "default"


class Product(StrEnum):
    """Shape of the output.

    track: one piece with intro/body/outro. loop: a whole number of bars that repeats without a
    seam. stems: one file per instrument group plus the mix they sum to. layers: loops at
    several intensities on one bar grid, for adaptive game music.
    """

    TRACK = "track"
    LOOP = "loop"
    STEMS = "stems"
    LAYERS = "layers"


# Named intensities of a `layers` product and their energy (0..1).
LAYER_ENERGY: dict[str, float] = {
    "ambient": 0.15,
    "calm": 0.25,
    "explore": 0.4,
    "tense": 0.55,
    "action": 0.75,
    "combat": 0.9,
    "boss": 1.0,
}
DEFAULT_LAYERS = ("calm", "tense", "combat")
INPUT_URI_PREFIX = "s3://"


# The model backend serving each tier, and the longest output it renders in one job (its model
# card says the same). The SDK checks these before starting anything.
# A coarse ceiling checked before anything else; the resolved model's card sets the real limit.
TIER_MAX_DURATION_S: dict[Tier, float] = {Tier.DRAFT: 600.0, Tier.FINAL: 600.0}


class GenerationRequest(BaseModel):
    """One request for music. New fields always get defaults so old clients keep working."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Controls left as None are "open": a template, the MIDI melody or the reference audio may
    # fill them, else a documented default applies (see activities/controls/normalize.py).
    prompt: Annotated[str | None, Field(min_length=1, max_length=2000)] = None
    template: Annotated[
        str | None, Field(max_length=100, description="prompt template id or id@version")
    ] = None
    variables: Annotated[dict[str, str], Field(max_length=20)] = {}
    duration_s: Annotated[float | None, Field(gt=0, description="length in seconds")] = None
    tempo_bpm: Annotated[
        float | None, Field(ge=MIN_TEMPO_BPM, le=MAX_TEMPO_BPM, description="quarter notes/min")
    ] = None
    key: str | None = None
    meter: str | None = None
    instruments: Annotated[list[str] | None, Field(min_length=1, max_length=16)] = None
    mood: str | None = None
    energy: Annotated[float | None, Field(ge=0.0, le=1.0)] = None
    structure: Annotated[list[str] | None, Field(max_length=16)] = None
    midi: Annotated[str | None, Field(max_length=1000, description="s3:// URI of a .mid")] = None
    transpose_melody: bool = False  # move the MIDI melody into `key` instead of refusing
    reference: Annotated[
        str | None, Field(max_length=1000, description="s3:// URI of reference audio")
    ] = None
    layers: Annotated[list[str] | None, Field(min_length=1, max_length=6)] = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    tier: Tier = Tier.DRAFT
    model: Annotated[
        str | None,
        Field(max_length=100, pattern=r"^[a-z0-9][a-z0-9.-]*$", description="a model id"),
    ] = None  # overrides the tier's model (see `tunesmith models list`)
    # Progressive refinement: render a quick draft preview (reported by the status query and a
    # `job.draft_ready` webhook) before the final model's render.
    draft_first: bool = False
    product: Product | None = None
    review: ReviewMode = ReviewMode.AUTO
    profile: DeliveryProfileName = DEFAULT_PROFILE
    formats: Annotated[list[DeliveryFormat], Field(min_length=1, max_length=5)] = list(
        DEFAULT_FORMATS
    )
    tenant: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = (
        DEFAULT_TENANT
    )
    callback_url: Annotated[
        str | None, Field(max_length=2000, description="POSTed job events (webhook)")
    ] = None
    revision_of: Annotated[
        str | None,
        Field(pattern=r"^job-[0-9a-f]{24}$", description="the job this one revises (a job id)"),
    ] = None

    def sha256(self) -> str:
        """Stable hash of the validated request (canonical JSON): idempotency and provenance."""
        # Fields added later are left out while unset, so older requests keep their hash.
        data = self.model_dump(
            mode="json", exclude={"revision_of"} if self.revision_of is None else None
        )
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @model_validator(mode="after")
    def _coherent(self) -> GenerationRequest:
        if self.prompt is None and self.template is None:
            raise ValueError("give a prompt or a template")
        limit = TIER_MAX_DURATION_S[self.tier]
        if self.duration_s is not None and self.duration_s > limit:
            raise ValueError(
                f"duration_s {self.duration_s:g} s is over the {self.tier.value} backend's "
                f"limit of {limit:g} s"
            )
        if self.layers is not None and self.product not in (Product.LAYERS, None):
            raise ValueError(f"layers are only for product 'layers', not {self.product}")
        if self.variables and self.template is None:
            raise ValueError("variables are only used with a template")
        return self

    @field_validator("midi", "reference")
    @classmethod
    def _input_uri(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith(INPUT_URI_PREFIX) or v.count("/") < 3):
            raise ValueError(
                f"must be an s3://bucket/key URI of an uploaded input (the SDK and CLI upload "
                f"local files for you), not {v!r}"
            )
        return v

    @field_validator("meter")
    @classmethod
    def _known_meter(cls, v: str | None) -> str | None:
        if v is None:
            return None
        num, den = parse_meter(v)
        return f"{num}/{den}"

    @field_validator("mood")
    @classmethod
    def _known_mood(cls, v: str | None) -> str | None:
        if v is None:
            return None
        mood = v.strip().lower()
        if mood not in MOODS:
            raise ValueError(f"unknown mood {v!r}; known moods: {', '.join(MOODS)}")
        return mood

    @field_validator("structure")
    @classmethod
    def _known_sections(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        return normalize_structure(v)

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        names = [name.strip().lower() for name in v]
        unknown = [n for n in names if n not in LAYER_ENERGY]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; known: {', '.join(LAYER_ENERGY)}")
        if len(set(names)) != len(names):
            raise ValueError("layers must not repeat")
        return sorted(names, key=LAYER_ENERGY.__getitem__)

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
    def _prompt_not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("prompt must not be empty")
        return v.strip() if v is not None else None

    @field_validator("key")
    @classmethod
    def _known_key(cls, v: str | None) -> str | None:
        if v is not None:
            parse_key(v)
        return v

    @field_validator("instruments")
    @classmethod
    def _known_instruments(cls, v: list[str] | None) -> list[str] | None:
        # Families expand; order-preserving de-duplication: "piano, Piano" is one instrument.
        return None if v is None else expand_instruments(v)


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

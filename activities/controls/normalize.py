"""Request → ControlTokens. Pure and deterministic: one request always gives the same tokens."""

from __future__ import annotations

import math
from typing import Any

from schemas.controls import ControlTokens, InstrumentToken
from schemas.music import GM_INSTRUMENTS, key_name, parse_key
from schemas.request import TIER_MODEL, GenerationRequest, validate_request


def normalize_request(
    data: dict[str, Any] | GenerationRequest,
) -> tuple[GenerationRequest, ControlTokens]:
    """Validate `data` and normalize it into ControlTokens.

    Raises:
        InvalidRequestError: the request is invalid (one line per problem).
    """
    request = validate_request(data)
    tonic_pc, mode = parse_key(request.key)
    beats_per_bar = 4
    bar_seconds = beats_per_bar * 60.0 / request.tempo_bpm
    instruments = [
        InstrumentToken(
            name=name,
            program=GM_INSTRUMENTS[name][0],
            is_drum=GM_INSTRUMENTS[name][1] == "drums",
            role=GM_INSTRUMENTS[name][1],
        )
        for name in request.instruments
    ]
    tokens = ControlTokens(
        prompt=request.prompt,
        duration_s=request.duration_s,
        tempo_bpm=request.tempo_bpm,
        tonic_pc=tonic_pc,
        mode=mode,
        key_name=key_name(tonic_pc, mode),
        beats_per_bar=beats_per_bar,
        # Bars that cover the duration; the backend renders exactly duration_s seconds.
        bars=max(1, math.ceil(request.duration_s / bar_seconds - 1e-9)),
        instruments=instruments,
        seed=request.seed,
        tier=request.tier.value,
        model_id=TIER_MODEL[request.tier],
        product=request.product.value,
    )
    return request, tokens

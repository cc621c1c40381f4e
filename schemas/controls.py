"""ControlTokens: a request normalized into what a model backend consumes. Versioned."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.music import InstrumentRole, Mode

# Bump when normalization changes meaning: the same request must always give the same tokens
# for a given version (the basis of cache keys and provenance).
CONTROLS_VERSION = "controls-1"


class InstrumentToken(BaseModel):
    """One instrument: canonical name, General MIDI program, drum flag and compositional role."""

    model_config = ConfigDict(frozen=True)

    name: str
    program: int
    is_drum: bool
    role: InstrumentRole


class ControlTokens(BaseModel):
    """Normalized, model-ready controls for one job."""

    model_config = ConfigDict(frozen=True)

    controls_version: str = CONTROLS_VERSION
    prompt: str
    duration_s: float
    tempo_bpm: float
    tonic_pc: int
    mode: Mode
    key_name: str
    beats_per_bar: int = 4
    bars: int
    instruments: list[InstrumentToken]
    seed: int
    tier: str
    model_id: str
    product: str

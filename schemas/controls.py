"""ControlTokens: a request normalized into what a model backend consumes. Versioned."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.music import InstrumentRole, Mode

# Bump when normalization changes meaning: the same request must always give the same tokens
# for a given version (the basis of cache keys and provenance).
# controls-2: meter, user melody, mood/energy, structure hints, loops/stems/layers, templates,
# reference-audio analysis.
CONTROLS_VERSION = "controls-2"


class InstrumentToken(BaseModel):
    """One instrument: canonical name, General MIDI program, drum flag and compositional role."""

    model_config = ConfigDict(frozen=True)

    name: str
    program: int
    is_drum: bool
    role: InstrumentRole


class MelodyNote(BaseModel):
    """One note of a user melody, on the output's own grid (already transposed and re-timed).

    Times are in quarter-note beats from the start of the piece at `ControlTokens.tempo_bpm`.
    """

    model_config = ConfigDict(frozen=True)

    start_beat: float
    duration_beats: float
    pitch: int  # MIDI note number
    velocity: int = 96


class ReferenceSummary(BaseModel):
    """What the analysis of a reference audio file found (recorded in provenance)."""

    model_config = ConfigDict(frozen=True)

    uri: str
    sha256: str
    duration_s: float
    tempo_bpm: float
    key: str  # e.g. "A minor"
    key_confidence: float
    chroma: list[float]  # 12 values, C..B, summing to 1
    integrated_lufs: float
    spectral: dict[str, float] = Field(default_factory=dict)
    filled: list[str] = Field(default_factory=list)  # controls this reference decided


class LayerToken(BaseModel):
    """One intensity layer of a `layers` product (adaptive game music)."""

    model_config = ConfigDict(frozen=True)

    name: str  # e.g. "calm"
    energy: float  # 0..1


class ControlTokens(BaseModel):
    """Normalized, model-ready controls for one job.

    Tempo is in quarter notes per minute (the DAW convention), whatever the meter: a bar lasts
    `beats_per_bar * 4 / beat_unit` quarter notes, so 6/8 at 120 is 1.5 s per bar.
    """

    model_config = ConfigDict(frozen=True)

    controls_version: str = CONTROLS_VERSION
    prompt: str
    duration_s: float
    tempo_bpm: float
    tonic_pc: int
    mode: Mode
    key_name: str
    beats_per_bar: int = 4  # time-signature numerator
    beat_unit: int = 4  # time-signature denominator
    bars: int
    instruments: list[InstrumentToken]
    seed: int
    tier: str
    model_id: str
    product: str
    mood: str | None = None
    energy: float = 0.6  # 0 = sparse and soft .. 1 = dense and loud
    structure: list[str] = Field(default_factory=list)  # section hints, e.g. intro, verse, outro
    # A user melody to play (empty: the backend writes its own), and its pitch class per
    # sixteenth note (-1 = rest) for melody-conditioned models.
    melody: list[MelodyNote] = Field(default_factory=list)
    melody_chroma: list[int] = Field(default_factory=list)
    melody_transpose: int = 0  # semitones applied to the uploaded melody
    # Loop products: render exactly `bars` bars as a cycle (no intro/outro; sound ringing past
    # the end belongs at the start), so the output repeats without a seam.
    loop: bool = False
    layers: list[LayerToken] = Field(default_factory=list)  # `layers` product only
    template_id: str | None = None
    template_version: int | None = None
    reference: ReferenceSummary | None = None

    @property
    def bar_quarters(self) -> float:
        """Quarter notes per bar."""
        return self.beats_per_bar * 4.0 / self.beat_unit

    @property
    def bar_seconds(self) -> float:
        return self.bar_quarters * 60.0 / self.tempo_bpm

    @property
    def meter(self) -> str:
        return f"{self.beats_per_bar}/{self.beat_unit}"

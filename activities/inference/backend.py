"""The contract every model backend implements: control tokens in, audio out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from schemas.controls import ControlTokens


class UnsupportedControlsError(ValueError):
    """The backend cannot render these controls (e.g. too many instruments, tempo out of range).

    Retrying cannot help; any other exception from a backend is a bug or an outage and retries.
    """


ProgressCallback = Callable[[float], None]
"""Called with the fraction of the job done, 0..1, so an activity can heartbeat from it."""


@dataclass(frozen=True)
class GeneratedAudio:
    """Rendered audio: float32 samples shaped (frames, channels), values in [-1, 1].

    `stems` (only when asked for a `stems` product and the backend can): one array per
    instrument group (e.g. drums, bass, harmony, melody), each shaped like `samples`, summing to
    `samples` (float32 rounding aside).
    """

    samples: np.ndarray
    sample_rate: int
    stems: dict[str, np.ndarray] | None = None

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class Capabilities:
    """What a backend can honour; the product layer plans around it and refuses the rest."""

    melody: bool = False  # plays / is conditioned on `ControlTokens.melody`
    stems: bool = False  # returns `GeneratedAudio.stems` for product "stems"
    # Renders `tokens.loop` natively: exactly `duration_s`, already seamless when repeated.
    # Otherwise the product layer renders longer and crossfades the seam itself.
    native_loops: bool = False
    reference_audio: bool = False  # audio-to-audio from the reference
    max_window_s: float = 30.0  # longest single render; longer tracks are made in sections


@runtime_checkable
class ModelBackend(Protocol):
    """A music model. Implementations are long-lived: built once per worker, reused per job."""

    model_id: str
    model_version: str
    sample_rate: int
    max_duration_s: float
    capabilities: Capabilities

    def generate(
        self, tokens: ControlTokens, progress: ProgressCallback | None = None
    ) -> GeneratedAudio:
        """Generate audio for `tokens`, reporting progress fractions to `progress`."""
        ...

"""`DraftBackend`: the weight-free model. Composes symbolically, renders with a GM SoundFont."""

from __future__ import annotations

import threading
from pathlib import Path

from activities.inference.backend import (
    Capabilities,
    GeneratedAudio,
    ProgressCallback,
    UnsupportedControlsError,
)
from activities.inference.draft.composer import compose
from activities.inference.draft.renderer import DEFAULT_SOUNDFONT, SoundFontRenderer
from schemas.controls import ControlTokens

# Bump whenever composition or rendering changes what a given set of tokens sounds like:
# it is part of cache keys and provenance.
DRAFT_MODEL_VERSION = "draft-2.0.0"
MIN_TEMPO_BPM = 30.0
MAX_TEMPO_BPM = 300.0


class DraftBackend:
    """Deterministic rule-based composer + SoundFont renderer; stereo 44.1 kHz, up to 600 s.

    Honours the whole control layer: any meter n/2, n/4, n/8, n/16 (n = 1..16), a user melody
    (played as given, harmonized), energy/mood/structure, native seamless loops
    (`tokens.loop`) and stems (`tokens.product == "stems"`). Renders that differ only in
    `energy` share progression, melody and bar grid (the `layers` product).

    Build once per worker: the SoundFont is loaded in `__init__` and reused by every job.
    Thread-safe: concurrent `generate` calls compose in parallel but render one at a time,
    since they share one synthesizer.
    """

    model_id = "draft"
    model_version = DRAFT_MODEL_VERSION
    sample_rate = 44100
    max_duration_s = 600.0
    channels = 2
    capabilities = Capabilities(melody=True, stems=True, native_loops=True, max_window_s=600.0)

    def __init__(self, soundfont_path: Path | None = None) -> None:
        """Load the SoundFont (default: the General MIDI one pretty_midi ships).

        Raises:
            FileNotFoundError: the SoundFont file does not exist.
        """
        self.soundfont_path = Path(soundfont_path) if soundfont_path else DEFAULT_SOUNDFONT
        self._renderer = SoundFontRenderer(self.soundfont_path, sample_rate=self.sample_rate)
        self._render_lock = threading.Lock()

    @property
    def soundfont_load_seconds(self) -> float:
        return self._renderer.load_seconds

    def generate(
        self, tokens: ControlTokens, progress: ProgressCallback | None = None
    ) -> GeneratedAudio:
        """Compose and render `tokens` to exactly round(duration_s * sample_rate) frames.

        Product "stems" also returns `stems` (drums, bass, harmony, melody: the groups that
        have instruments), summing to `samples`.

        Raises:
            UnsupportedControlsError: duration outside (0, max_duration_s], tempo outside
                30-300 BPM, or other controls the composer cannot honour (meter, energy,
                melody, a loop that is not a whole number of bars, too many instruments).
        """
        if not (0.0 < tokens.duration_s <= self.max_duration_s):
            raise UnsupportedControlsError(
                f"duration_s must be in (0, {self.max_duration_s:g}], got {tokens.duration_s}"
            )
        if not (MIN_TEMPO_BPM <= tokens.tempo_bpm <= MAX_TEMPO_BPM):  # also rejects NaN
            bounds = f"[{MIN_TEMPO_BPM:g}, {MAX_TEMPO_BPM:g}]"
            raise UnsupportedControlsError(f"tempo_bpm must be in {bounds}, got {tokens.tempo_bpm}")
        composition = compose(tokens)
        n_frames = round(tokens.duration_s * self.sample_rate)
        with self._render_lock:
            if tokens.product == "stems":
                mix, stems = self._renderer.render_stems(composition, n_frames, progress)
                return GeneratedAudio(samples=mix, sample_rate=self.sample_rate, stems=stems)
            samples = self._renderer.render(composition, n_frames, progress)
        return GeneratedAudio(samples=samples, sample_rate=self.sample_rate)

"""Products: turn one request's tokens into the audio of a track, loop, stem pack or layer set.

Backend-agnostic. It asks a backend for what it can render (see `Capabilities`) and does the
rest itself:
- track: one render, or sections of whole bars joined by equal-power crossfades that start on
  bar lines when the track is longer than the backend's window; a short fade-in and a fade-out
  over the last beats (no abrupt ending).
- loop: a native seamless loop, or a render one bar longer whose tail is crossfaded into the
  start (the classic loop-making crossfade), cut to exactly the loop's length.
- stems: the backend's stems and their mix; every gain applied here is applied to all of them,
  so they still sum to the mix.
- layers: one loop per intensity, the same tokens except `energy`, so they share tempo, key,
  meter, bar grid and (with a backend that draws its material independently of energy, like the
  draft backend) harmony and melody.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from activities.inference.backend import (
    GeneratedAudio,
    ModelBackend,
    ProgressCallback,
    UnsupportedControlsError,
)
from schemas.controls import ControlTokens

FADE_IN_S = 0.01  # removes a click if a render starts mid-waveform
MAX_CROSSFADE_S = 0.5


@dataclass(frozen=True)
class ProductRender:
    """The audio of one product. `parts` is empty for a plain track or loop."""

    main: np.ndarray  # what the checks analyse: the mix (stems), the top layer (layers)
    sample_rate: int
    parts: dict[str, np.ndarray]
    main_name: str = "main"


def _sub_progress(progress: ProgressCallback | None, start: float, span: float) -> ProgressCallback:
    def report(fraction: float) -> None:
        if progress is not None:
            progress(start + span * min(1.0, max(0.0, fraction)))

    return report


def _ramp(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power fade-in and fade-out curves of `n` samples (for uncorrelated material)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.sin(0.5 * np.pi * t)[:, None], np.cos(0.5 * np.pi * t)[:, None]


def _render(
    backend: ModelBackend, tokens: ControlTokens, progress: ProgressCallback | None
) -> GeneratedAudio:
    audio = backend.generate(tokens, progress)
    expected = round(tokens.duration_s * audio.sample_rate)
    if abs(audio.frames - expected) > 1:
        raise RuntimeError(
            f"{backend.model_id} rendered {audio.frames} frames for a plan of {expected}"
        )
    return audio


def _fit(samples: np.ndarray, frames: int) -> np.ndarray:
    """Exactly `frames` frames: cut, or pad with silence (a backend's ±1-frame rounding)."""
    if samples.shape[0] >= frames:
        return samples[:frames]
    return np.concatenate([samples, np.zeros((frames - samples.shape[0], samples.shape[1]),
                                             samples.dtype)])  # fmt: skip


def _fades(x: np.ndarray, rate: int, fade_out_s: float) -> np.ndarray:
    """A short fade-in, and a fade-out over the last `fade_out_s` seconds (linear gain)."""
    y = x.astype(np.float64, copy=True)
    n_in = min(len(y), max(1, round(FADE_IN_S * rate)))
    y[:n_in] *= np.linspace(0.0, 1.0, n_in)[:, None]
    n_out = min(len(y), max(1, round(fade_out_s * rate)))
    y[len(y) - n_out :] *= np.cos(0.5 * np.pi * np.linspace(0.0, 1.0, n_out))[:, None] ** 2
    return y.astype(np.float32)


def section_plan(tokens: ControlTokens, max_window_s: float) -> list[tuple[int, int, str]]:
    """(first bar, bar count, section kind) of the sections of a track too long for one render.

    Sections are whole bars, each at most the window minus the one bar of overlap a crossfade
    needs; kinds follow `tokens.structure` when given, else intro / body... / outro.
    """
    bar_s = tokens.bar_seconds
    total_bars = max(1, math.ceil(tokens.duration_s / bar_s - 1e-9))
    per_section = int((max_window_s - bar_s) // bar_s)
    if per_section < 1:
        raise UnsupportedControlsError(
            f"a bar of {bar_s:.2f} s does not fit the backend's {max_window_s:g} s window twice"
        )
    count = math.ceil(total_bars / per_section)
    kinds = list(tokens.structure) or ["intro", *(["body"] * max(0, count - 2)), "outro"]
    sections, first = [], 0
    for i in range(count):
        bars = min(per_section, total_bars - first)
        kind = kinds[min(len(kinds) - 1, round(i * (len(kinds) - 1) / max(1, count - 1)))]
        sections.append((first, bars, kind))
        first += bars
    return sections


def _render_sections(
    backend: ModelBackend, tokens: ControlTokens, progress: ProgressCallback | None
) -> np.ndarray:
    """Render a long track section by section; join them with crossfades on the bar lines."""
    plan = section_plan(tokens, backend.capabilities.max_window_s)
    rate = backend.sample_rate
    total = round(tokens.duration_s * rate)
    bar_s = tokens.bar_seconds
    xf = max(1, round(min(MAX_CROSSFADE_S, bar_s) * rate))
    out: np.ndarray | None = None
    for i, (first_bar, bars, kind) in enumerate(plan):
        last = i == len(plan) - 1
        seconds = bars * bar_s if not last else tokens.duration_s - first_bar * bar_s
        section_tokens = tokens.model_copy(
            update={
                "duration_s": seconds + (0.0 if last else bar_s),  # one bar to fade out over
                "bars": bars + (0 if last else 1),
                "structure": [kind],
                "seed": (tokens.seed * 1_000_003 + i) % 2**31,
            }
        )
        part = _render(backend, section_tokens,
                       _sub_progress(progress, i / len(plan), 1 / len(plan))).samples  # fmt: skip
        start = round(first_bar * bar_s * rate)
        if out is None:
            out = np.zeros((total, part.shape[1]), np.float64)
        end = min(total, start + part.shape[0])
        seg = part[: end - start].astype(np.float64)
        if i > 0:  # fade in from the bar line while the previous section's extra bar fades out
            n = min(xf, len(seg))
            fade_in, fade_out = _ramp(n)
            seg[:n] *= fade_in
            tail = out[start : start + n].copy()
            out[start : start + n] = tail * fade_out
            out[start + n : end] = 0.0
        out[start:end] += seg
    assert out is not None
    return out.astype(np.float32)


def _loop(
    backend: ModelBackend, tokens: ControlTokens, progress: ProgressCallback | None
) -> GeneratedAudio:
    """A seamless loop of exactly `tokens.duration_s` (a whole number of bars)."""
    loop_tokens = tokens.model_copy(update={"loop": True})
    if backend.capabilities.native_loops:
        return _render(backend, loop_tokens, progress)
    rate = backend.sample_rate
    frames = round(tokens.duration_s * rate)
    longer = loop_tokens.model_copy(
        update={"duration_s": tokens.duration_s + tokens.bar_seconds, "bars": tokens.bars + 1}
    )
    x = _render(backend, longer, progress).samples.astype(np.float64)
    n = max(1, round(min(MAX_CROSSFADE_S, tokens.bar_seconds) * rate))
    fade_in, fade_out = _ramp(n)
    y = x[:frames].copy()
    # What follows the loop's end is faded into its start, so the wrap continues the music.
    y[:n] = x[:n] * fade_in + x[frames : frames + n] * fade_out
    return GeneratedAudio(samples=y.astype(np.float32), sample_rate=rate)


def render_product(
    backend: ModelBackend, tokens: ControlTokens, progress: ProgressCallback | None = None
) -> ProductRender:
    """Render `tokens.product` with `backend`.

    Raises:
        UnsupportedControlsError: the backend cannot make this product or honour these controls.
    """
    caps = backend.capabilities
    if tokens.melody and not caps.melody:
        raise UnsupportedControlsError(f"{backend.model_id} cannot play a given melody")
    rate = backend.sample_rate
    beat_s = 60.0 / tokens.tempo_bpm
    if tokens.product == "loop":
        audio = _loop(backend, tokens, progress)
        return ProductRender(main=audio.samples, sample_rate=rate, parts={})
    if tokens.product == "layers":
        parts: dict[str, np.ndarray] = {}
        for i, layer in enumerate(tokens.layers):
            layer_tokens = tokens.model_copy(update={"energy": layer.energy, "product": "loop"})
            share = _sub_progress(progress, i / len(tokens.layers), 1 / len(tokens.layers))
            parts[layer.name] = _loop(backend, layer_tokens, share).samples
        top = max(tokens.layers, key=lambda layer: layer.energy).name
        return ProductRender(main=parts[top], sample_rate=rate, parts=parts, main_name=top)
    fade_out_s = min(2.0, 2 * beat_s, tokens.duration_s / 4)
    if tokens.product == "stems":
        if not caps.stems:
            raise UnsupportedControlsError(f"{backend.model_id} cannot render stems")
        if tokens.duration_s > caps.max_window_s:
            raise UnsupportedControlsError(
                f"stems are rendered in one window: at most {caps.max_window_s:g} s"
            )
        audio = _render(backend, tokens, progress)
        if not audio.stems:
            raise RuntimeError(f"{backend.model_id} returned no stems")
        frames = audio.frames
        stems = {name: _fades(_fit(s, frames), rate, fade_out_s) for name, s in audio.stems.items()}
        # The mix is re-summed after the (linear) fades: exactly the sum of what is delivered.
        mix = np.sum([s.astype(np.float64) for s in stems.values()], axis=0).astype(np.float32)
        return ProductRender(main=mix, sample_rate=rate, parts=stems, main_name="mix")
    if tokens.product != "track":
        raise UnsupportedControlsError(f"unknown product {tokens.product!r}")
    if tokens.duration_s <= caps.max_window_s:
        samples = _render(backend, tokens, progress).samples
    else:
        samples = _render_sections(backend, tokens, progress)
    return ProductRender(main=_fades(samples, rate, fade_out_s), sample_rate=rate, parts={})

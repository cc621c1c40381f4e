"""Reviewer aids: a preview clip from the loudest stretch, and a waveform + spectrogram PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activities.audio_io import mono_mix

PREVIEW_SECONDS = 15.0
_FADE_S = 0.5


def preview_clip(
    samples: np.ndarray, sample_rate: int, seconds: float = PREVIEW_SECONDS
) -> np.ndarray:
    """The `seconds` with the most energy (the "hook"), faded in and out; all of it if shorter."""
    n = samples.shape[0]
    length = min(n, int(seconds * sample_rate))
    if length < n:
        energy = np.cumsum(np.concatenate([[0.0], mono_mix(samples**2)]))
        hop = max(1, sample_rate // 10)  # candidate starts every 100 ms
        starts = np.arange(0, n - length + 1, hop)
        best = int(starts[np.argmax(energy[starts + length] - energy[starts])])
        clip = samples[best : best + length].copy()
    else:
        clip = samples.copy()
    fade = min(int(_FADE_S * sample_rate), clip.shape[0] // 4)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)[:, None]
        clip[:fade] *= ramp
        clip[-fade:] *= ramp[::-1]
    return clip


def _log_frequency_image(
    mono: np.ndarray, sample_rate: int, *, rows: int = 256, max_columns: int = 1200
) -> tuple[np.ndarray, float, float]:
    """Spectrogram in dB on a log-frequency grid (rows) with at most `max_columns` time bins.

    Returns (image, lowest Hz, highest Hz). Resampling to a small image keeps the PNG quick to
    draw for a 10-minute track (a full-resolution mesh takes seconds to rasterize).
    """
    from scipy.signal import spectrogram

    freqs, _, power = spectrogram(mono, fs=sample_rate, nperseg=2048, noverlap=1024)
    if power.shape[1] > max_columns:
        group = -(-power.shape[1] // max_columns)
        cut = power.shape[1] // group * group
        power = power[:, :cut].reshape(power.shape[0], -1, group).mean(axis=2)
    low, high = 30.0, sample_rate / 2
    grid = np.geomspace(low, high, rows)
    image = np.empty((rows, power.shape[1]))
    for col in range(power.shape[1]):
        image[:, col] = np.interp(grid, freqs, power[:, col])
    return 10 * np.log10(image + 1e-12), low, high


def render_overview_png(samples: np.ndarray, sample_rate: int, path: Path, title: str) -> None:
    """Waveform (top) and log-frequency spectrogram (bottom) in one PNG for reviewers."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    mono = mono_mix(samples)
    seconds = mono.shape[0] / sample_rate
    # Min/max envelope per pixel column: what a waveform view shows, at a fraction of the cost.
    columns = min(2000, mono.shape[0])
    chunks = np.array_split(mono, columns)
    t = np.linspace(0, seconds, columns)
    top, bottom = [c.max() for c in chunks], [c.min() for c in chunks]
    db, low, high = _log_frequency_image(mono, sample_rate)
    fig, (ax_wave, ax_spec) = plt.subplots(2, 1, figsize=(12, 6), sharex=True,
                                            gridspec_kw={"height_ratios": [1, 2]})  # fmt: skip
    ax_wave.fill_between(t, bottom, top, linewidth=0, color="#1f4e79")
    ax_wave.set_ylim(-1, 1)
    ax_wave.set_ylabel("amplitude")
    ax_wave.set_title(title, fontsize=10)
    ax_spec.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, 1),
                   vmin=db.max() - 90, vmax=db.max(), interpolation="nearest")  # fmt: skip
    ticks = [f for f in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if low <= f <= high]
    ax_spec.set_yticks([np.log(f / low) / np.log(high / low) for f in ticks])
    ax_spec.set_yticklabels([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax_spec.set_ylabel("Hz")
    ax_spec.set_xlabel("seconds")
    # Fixed margins rather than tight_layout (which measures every label: ~40 % of the time).
    fig.subplots_adjust(left=0.06, right=0.99, top=0.95, bottom=0.08, hspace=0.06)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, pil_kwargs={"compress_level": 1})
    plt.close(fig)

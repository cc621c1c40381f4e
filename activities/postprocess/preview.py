"""Reviewer aids: a preview clip from the loudest stretch, and a waveform + spectrogram PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREVIEW_SECONDS = 15.0
_FADE_S = 0.5


def preview_clip(
    samples: np.ndarray, sample_rate: int, seconds: float = PREVIEW_SECONDS
) -> np.ndarray:
    """The `seconds` with the most energy (the "hook"), faded in and out; all of it if shorter."""
    n = samples.shape[0]
    length = min(n, int(seconds * sample_rate))
    if length < n:
        energy = np.cumsum(np.concatenate([[0.0], np.mean(samples**2, axis=1)]))
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


def render_overview_png(samples: np.ndarray, sample_rate: int, path: Path, title: str) -> None:
    """Waveform (top) and log-frequency spectrogram (bottom) in one PNG for reviewers."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    mono = samples.mean(axis=1)
    t = np.arange(mono.shape[0]) / sample_rate
    freqs, times, power = spectrogram(mono, fs=sample_rate, nperseg=2048, noverlap=1024)
    fig, (ax_wave, ax_spec) = plt.subplots(2, 1, figsize=(12, 6), sharex=True,
                                            gridspec_kw={"height_ratios": [1, 2]})  # fmt: skip
    step = max(1, mono.shape[0] // 20000)  # plotting every sample is slow and invisible
    ax_wave.plot(t[::step], mono[::step], linewidth=0.4, color="#1f4e79")
    ax_wave.set_ylim(-1, 1)
    ax_wave.set_ylabel("amplitude")
    ax_wave.set_title(title, fontsize=10)
    db = 10 * np.log10(power + 1e-12)
    ax_spec.pcolormesh(times, freqs[1:], db[1:], shading="auto", cmap="magma",
                       vmin=db.max() - 90, vmax=db.max())  # fmt: skip
    ax_spec.set_yscale("log")
    ax_spec.set_ylim(30, sample_rate / 2)
    ax_spec.set_ylabel("Hz")
    ax_spec.set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)

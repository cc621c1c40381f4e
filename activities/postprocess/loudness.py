"""Loudness normalization (ITU-R BS.1770 via pyloudnorm) with a true-peak ceiling.

True peak is measured on a 4x oversampled signal (BS.1770-4 Annex 2), so inter-sample peaks
count. The limiter is a look-ahead gain computer on that oversampled peak envelope: it only
reduces gain around the few peaks above the ceiling, which leaves integrated loudness within a
fraction of a LU; a final pass re-measures and trims.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import firwin

POSTPROCESS_VERSION = "postprocess-2"  # profiles, formats, features, high-pass
_OVERSAMPLE = 4
_SILENCE_LUFS = -70.0  # BS.1770 absolute gate: below this there is nothing to normalize
# A 49-tap (12 per phase) interpolation filter, as in BS.1770-4 Annex 2: scipy's default filter
# is ~8x longer and makes the meter the slowest part of post-processing for no audible gain.
_TP_FILTER = firwin(12 * _OVERSAMPLE + 1, 1.0 / _OVERSAMPLE, window=("kaiser", 6.0))


def _polyphase_taps() -> list[tuple[int, np.ndarray]]:
    """The interpolator split into its 4 phases: (first tap offset, taps) per phase.

    Output sample 4n+p of the 4x interpolator is sum_k x[n-k] * h[4k + p + c] * 4, where c is
    the filter's centre, so each phase is a 12-tap convolution at the base rate.
    """
    centre = len(_TP_FILTER) // 2
    phases = []
    for p in range(_OVERSAMPLE):
        ks = [
            k
            for k in range(-centre, centre + 1)
            if 0 <= _OVERSAMPLE * k + p + centre < len(_TP_FILTER)
        ]
        taps = np.array([_TP_FILTER[_OVERSAMPLE * k + p + centre] for k in ks]) * _OVERSAMPLE
        phases.append((ks[0], taps.astype(np.float32)))
    return phases


_PHASES = _polyphase_taps()


@dataclass(frozen=True)
class LoudnessResult:
    samples: np.ndarray
    integrated_lufs: float
    true_peak_dbtp: float
    gain_db: float
    # The gain applied to every sample (static gain x limiter curve): applying it to parts of
    # the input (stems) gives parts of the output that still sum to it.
    gain: np.ndarray


def peak_envelope(samples: np.ndarray) -> np.ndarray:
    """Per-sample true-peak envelope: max over channels of |x| at the 4 interpolated phases.

    Four 12-tap convolutions per channel at the base rate; the same numbers as
    `resample_poly(x, 4, 1, window=_TP_FILTER)` without materialising the 4x signal.
    """
    n = samples.shape[0]
    x = samples.astype(np.float32, copy=False)
    env = np.zeros(n, dtype=np.float32)
    for first, taps in _PHASES:
        for ch in range(x.shape[1]):
            full = np.convolve(x[:, ch], taps)
            np.maximum(env, np.abs(full[-first : -first + n]), out=env)
    return env


def true_peak_dbtp(samples: np.ndarray) -> float:
    """Maximum true peak over all channels in dBTP (4x polyphase oversampling, BS.1770-4)."""
    if samples.size == 0:
        return -np.inf
    peak = float(peak_envelope(samples).max())
    return 20.0 * np.log10(peak) if peak > 0 else -np.inf


def integrated_lufs(samples: np.ndarray, sample_rate: int) -> float:
    meter = pyloudnorm.Meter(sample_rate)
    return float(meter.integrated_loudness(samples))


def limiter_gain(peak: np.ndarray, sample_rate: int, ceiling_db: float) -> np.ndarray:
    """Look-ahead limiter: the smooth gain curve that keeps the true peak under `ceiling_db`.

    `peak` is the signal's true-peak envelope (`peak_envelope`).
    """
    ceiling = 10.0 ** (ceiling_db / 20.0)
    needed = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if needed.min() >= 1.0:
        return np.ones_like(needed)
    window = max(1, int(0.005 * sample_rate))  # 5 ms look-ahead / attack
    # Hold the minimum gain over the window, then smooth it: the gain is already down when the
    # peak arrives, and it never jumps (no clicks).
    held = -maximum_filter1d(-needed, size=2 * window + 1)
    smooth = uniform_filter1d(held, size=2 * window + 1)
    return np.minimum(smooth, held)


def normalize_loudness(
    samples: np.ndarray,
    sample_rate: int,
    *,
    target_lufs: float,
    ceiling_dbtp: float,
    margin_db: float = 0.1,
) -> LoudnessResult:
    """Gain `samples` to `target_lufs` with true peak ≤ `ceiling_dbtp`.

    Raises:
        ValueError: the audio is silent or too short to measure.
    """
    x = samples.astype(np.float64)
    measured = integrated_lufs(x, sample_rate)
    if not np.isfinite(measured) or measured < _SILENCE_LUFS:
        raise ValueError("audio is silent: cannot normalize loudness")
    total_gain_db = 0.0
    gain = np.ones(x.shape[0])
    # A margin under the ceiling absorbs what the oversampled estimate misses.
    limit_db = ceiling_dbtp - margin_db
    for _ in range(4):
        step_db = target_lufs - measured
        total_gain_db += step_db
        x = x * 10.0 ** (step_db / 20.0)
        curve = limiter_gain(peak_envelope(x), sample_rate, limit_db)
        x = x * curve[:, None]
        gain *= 10.0 ** (step_db / 20.0) * curve
        measured = integrated_lufs(x, sample_rate)
        if abs(measured - target_lufs) <= 0.1:
            break
    peak = true_peak_dbtp(x)
    if peak > ceiling_dbtp:  # never ship over the ceiling, even at the cost of loudness
        x = x * 10.0 ** ((limit_db - peak) / 20.0)
        gain *= 10.0 ** ((limit_db - peak) / 20.0)
        peak = true_peak_dbtp(x)
        measured = integrated_lufs(x, sample_rate)
    return LoudnessResult(
        samples=x.astype(np.float32),
        integrated_lufs=measured,
        true_peak_dbtp=peak,
        gain_db=total_gain_db,
        gain=gain,
    )

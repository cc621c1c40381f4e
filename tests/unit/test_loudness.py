import numpy as np
import pytest
from scipy.signal import resample_poly

from activities.postprocess.loudness import integrated_lufs, normalize_loudness, true_peak_dbtp

SR = 44100


def _reference_true_peak(x: np.ndarray) -> float:
    """Independent check: 16x oversampling with scipy's default (long) filter."""
    return float(20 * np.log10(np.max(np.abs(resample_poly(x, 16, 1, axis=0)))))


def _music_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    chords = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * 0.05
    kicks = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.5):
        i = int(start * SR)
        n = min(len(t) - i, 4000)
        kicks[i : i + n] += 0.8 * np.sin(2 * np.pi * 60 * t[:n]) * np.exp(-t[:n] * 30)
    noise = rng.normal(0, 0.01, len(t))
    left = chords + kicks + noise
    return np.stack([left, 0.9 * left], axis=1)


@pytest.mark.parametrize("target", [-14.0, -16.0, -23.0])
def test_normalizes_within_half_a_lu_and_under_the_true_peak_ceiling(target: float) -> None:
    x = _music_like(20) * 0.3
    result = normalize_loudness(x, SR, target_lufs=target, ceiling_dbtp=-1.0)
    assert abs(integrated_lufs(result.samples.astype(np.float64), SR) - target) <= 0.5
    assert result.true_peak_dbtp <= -1.0
    assert _reference_true_peak(result.samples.astype(np.float64)) <= -1.0 + 0.05


def test_loud_peaky_input_is_limited_not_clipped() -> None:
    x = _music_like(20) * 3.0  # far over full scale
    result = normalize_loudness(x, SR, target_lufs=-14.0, ceiling_dbtp=-1.0)
    assert abs(result.integrated_lufs + 14.0) <= 0.5
    assert np.max(np.abs(result.samples)) < 1.0
    assert true_peak_dbtp(result.samples.astype(np.float64)) <= -1.0


def test_true_peak_sees_inter_sample_peaks() -> None:
    # A full-scale sine at fs/4 with a 45° phase: samples peak at -3 dBFS, the wave at 0 dBTP.
    n = np.arange(4096)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4)[:, None]
    assert np.max(np.abs(x)) == pytest.approx(10 ** (-3 / 20), abs=1e-3)
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.3)


def test_silence_is_rejected() -> None:
    with pytest.raises(ValueError, match="silent"):
        normalize_loudness(np.zeros((SR * 5, 2)), SR, target_lufs=-14.0, ceiling_dbtp=-1.0)

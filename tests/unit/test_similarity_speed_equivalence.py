"""The faster similarity code gives the numbers of the code it replaced (issue 19): the melody
profile's harmonic/percussive split without ndimage's rank filter, and candidates scored on
two threads."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from scipy.ndimage import median_filter

from activities.catalog import melody
from activities.similarity.checker import _score_batch, _score_parallel
from activities.similarity.risk import MELODY_REVIEW_SCORE
from tests.synthetic_melody import synthetic_profile


def _old_profile(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """melody.profile before issue 19: librosa.decompose.hpss on the whole spectrogram."""
    import librosa

    y = np.asarray(samples, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1)
    if sample_rate != melody.SAMPLE_RATE:
        y = librosa.resample(
            y, orig_sr=sample_rate, target_sr=melody.SAMPLE_RATE, res_type="polyphase"
        )
    magnitude = np.abs(librosa.stft(y, n_fft=melody.N_FFT, hop_length=melody.STFT_HOP))
    harmonic, _ = librosa.decompose.hpss(magnitude, kernel_size=(17, 17))
    steps = harmonic.shape[1] // melody.FRAMES_PER_STEP
    power = (harmonic[:, : steps * melody.FRAMES_PER_STEP] ** 2).reshape(
        -1, steps, melody.FRAMES_PER_STEP
    )
    bands = (melody._filters() @ power.mean(axis=2)).T
    energy = bands[:, melody.MAX_SHIFT : melody.MAX_SHIFT + melody.BANDS].sum(axis=1)
    tonal = energy >= melody.TONAL_FLOOR * np.percentile(energy, 75)
    bands = np.log1p(100 * bands / bands.mean())
    bands[~tonal] = 0.0
    return bands.astype(np.float32)


def _tune(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.4 * rate)) / rate
    notes = [
        np.sin(2 * np.pi * 440 * 2 ** (rng.integers(-9, 15) / 12) * t) * np.exp(-4 * t)
        for _ in range(int(seconds / 0.4))
    ]
    tune = np.concatenate(notes) * 0.3
    clicks = (rng.random(tune.size) < 2e-4) * 0.8  # something percussive to separate
    return np.stack([tune + clicks, tune], axis=1).astype(np.float32)


@pytest.mark.parametrize("size", [3, 5, 17])
@pytest.mark.parametrize("axis", [0, 1])
def test_sliding_median_is_ndimages_median_filter(size: int, axis: int) -> None:
    rng = np.random.default_rng(size)
    for x in (
        rng.random((40, 50)).astype(np.float32),
        rng.integers(0, 4, (23, 9)).astype(np.float32),  # ties, shorter than the kernel
    ):
        footprint = [1, 1]
        footprint[axis] = size
        expected = median_filter(x, size=footprint, mode="reflect")
        np.testing.assert_array_equal(melody._sliding_median(x, size, axis), expected)
        np.testing.assert_array_equal(melody._blocked_median(x, size, axis, block=4), expected)


@pytest.mark.parametrize(("seconds", "rate", "seed"), [(30.0, 44100, 0), (8.0, 22050, 1)])
def test_profile_is_bit_identical_to_librosa_hpss(seconds: float, rate: int, seed: int) -> None:
    x = _tune(seconds, rate, seed)
    new = melody.profile(x, rate)
    np.testing.assert_array_equal(new.bands, _old_profile(x, rate))


def test_scoring_on_threads_returns_what_one_thread_does() -> None:
    rng = np.random.default_rng(3)
    query = melody.MelodyProfile(synthetic_profile(rng, int(30 / melody.STEP_S)))
    batch = [
        (i, melody.MelodyProfile(synthetic_profile(rng, int(20 / melody.STEP_S))).to_bytes())
        for i in range(5)
    ]
    # Plant the query's own tune in two of them, so there is something to find.
    for i in (1, 4):
        batch[i] = (i, melody.MelodyProfile(query.bands[40:250].copy()).to_bytes())
    one = _score_batch(query, batch)
    assert set(one) == {1, 4} and all(a.score >= MELODY_REVIEW_SCORE for a in one.values())
    both = asyncio.run(_score_parallel(query, batch))
    assert list(both) == list(one) and both == one

"""Melody detector: key- and tempo-invariant matching of beat-synchronous chroma."""

import numpy as np
import pytest

from activities.similarity import melody

SR = 22050


def _tune(notes: list[int], bpm: float, transpose: int = 0) -> np.ndarray:
    """A plucked sine melody with a click on every beat, one note per beat."""
    beat = 60.0 / bpm
    n = int(len(notes) * beat * SR)
    t = np.arange(n) / SR
    y = np.zeros(n, dtype=np.float32)
    for i, note in enumerate(notes):
        start, end = int(i * beat * SR), int((i + 1) * beat * SR)
        f = 440 * 2 ** ((note + transpose) / 12)
        env = np.exp(-3 * (t[start:end] - t[start]))
        y[start:end] += 0.4 * env * np.sin(2 * np.pi * f * t[start:end])
        y[start : start + 200] += np.hanning(200) * 0.5  # the beat
    return y


@pytest.fixture(scope="module")
def reference() -> melody.MelodyProfile:
    rng = np.random.default_rng(4)
    notes = rng.integers(0, 24, size=64).tolist()
    return melody.profile(_tune(notes, 110), SR)


def test_profile_round_trips_through_bytes(reference: melody.MelodyProfile) -> None:
    again = melody.MelodyProfile.from_bytes(reference.to_bytes())
    assert np.allclose(again.chroma, reference.chroma)
    assert reference.chroma.shape[1] == 12 and reference.chroma.shape[0] > 80


def test_transposed_and_faster_copy_matches(reference: melody.MelodyProfile) -> None:
    rng = np.random.default_rng(4)
    notes = rng.integers(0, 24, size=64).tolist()
    copy = melody.profile(_tune(notes[16:40], 116, transpose=1), SR)  # +1 semitone, +5 % tempo
    other = melody.profile(_tune(np.random.default_rng(5).integers(0, 24, 24).tolist(), 110), SR)
    match = melody.best_alignment(copy, reference)
    unrelated = melody.best_alignment(other, reference)
    assert match is not None and unrelated is not None
    assert match.score > 0.9
    assert match.score > unrelated.score + 0.1
    assert match.semitones == 11  # rolling the query down one semitone lines it up


def test_silence_has_no_profile() -> None:
    with pytest.raises(melody.MelodyError):
        melody.profile(np.zeros(SR * 5, dtype=np.float32), SR)


def test_profile_has_half_beat_steps(reference: melody.MelodyProfile) -> None:
    # 64 notes at 110 BPM: about two steps per beat, evenly spaced at half the beat period.
    steps = np.diff(reference.beat_times)
    assert reference.chroma.shape[0] > 2 * 40
    assert np.median(steps) == pytest.approx(60.0 / 110 / 2, rel=0.1)


def test_subdivide_adds_midpoints() -> None:
    out = melody._subdivide(np.array([0, 10, 30]), 2)
    assert out.tolist() == [0, 5, 10, 20, 30]

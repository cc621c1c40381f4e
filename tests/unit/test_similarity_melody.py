"""Melody detector: transposition- and tempo-tolerant matching of tonal semitone spectra."""

import asyncio

import numpy as np
import pytest

from activities.catalog import melody
from activities.evaluation.similarity import InMemoryCatalog
from activities.similarity import risk
from activities.similarity.checker import SimilarityChecker

SR = 22050


def _tune(notes: list[int], bpm: float, transpose: int = 0) -> np.ndarray:
    """A plucked melody (three harmonics) with a click on every beat, one note per beat."""
    beat = 60.0 / bpm
    n = int(len(notes) * beat * SR)
    t = np.arange(n) / SR
    y = np.zeros(n, dtype=np.float32)
    for i, note in enumerate(notes):
        start, end = int(i * beat * SR), int((i + 1) * beat * SR)
        f = 440 * 2 ** ((note + transpose) / 12)
        env = np.exp(-3 * (t[start:end] - t[start]))
        for h, gain in ((1, 0.4), (2, 0.2), (3, 0.1)):
            y[start:end] += gain * env * np.sin(2 * np.pi * h * f * t[start:end])
        y[start : start + 200] += np.hanning(200) * 0.5  # the beat
    return y


def _notes(seed: int, n: int) -> list[int]:
    return np.random.default_rng(seed).integers(-5, 19, size=n).tolist()


@pytest.fixture(scope="module")
def reference() -> melody.MelodyProfile:
    return melody.profile(_tune(_notes(4, 64), 110), SR)


def test_profile_round_trips_through_bytes(reference: melody.MelodyProfile) -> None:
    again = melody.MelodyProfile.from_bytes(reference.to_bytes())
    assert np.allclose(again.bands, reference.bands, atol=reference.bands.max() / 255)
    assert reference.bands.shape[1] == melody.STORED_BANDS
    assert reference.duration_s == pytest.approx(64 * 60 / 110, abs=0.2)


def test_profiles_of_the_old_format_are_refused() -> None:
    old = np.zeros((30, 13), dtype="<f4").tobytes()  # beat-synchronous chroma rows
    with pytest.raises(melody.MelodyError):
        melody.MelodyProfile.from_bytes(old)


def test_transposed_and_faster_copy_matches(reference: melody.MelodyProfile) -> None:
    notes = _notes(4, 64)
    copy = melody.profile(_tune(notes[16:40], 116, transpose=1), SR)  # +1 semitone, +5 % tempo
    other = melody.profile(_tune(_notes(5, 24), 110), SR)
    match = melody.best_alignment(copy, reference)
    unrelated = melody.best_alignment(other, reference)
    assert match is not None and unrelated is not None
    assert match.score >= risk.MELODY_REVIEW_SCORE
    assert match.score > unrelated.score + 0.1
    assert match.semitones == 1
    assert match.tempo_factor in (1.04, 1.08)  # the tried ratios either side of 116/110
    # The copy starts at note 16 of the reference; any window inside it lines up with that.
    expected = 16 * 60 / 110 + match.query_offset_s * 116 / 110
    assert match.reference_offset_s == pytest.approx(expected, abs=0.5)


def test_short_excerpt_spliced_into_a_faster_track_is_found() -> None:
    # 6 s of a slow (80 BPM) tune inside a 130 BPM host: fewer beats than a 12-beat window,
    # and a host tempo for any beat tracker to lock onto. The old detector could not see it.
    slow = _tune(_notes(6, 40), 80)
    reference = melody.profile(slow, SR)
    excerpt = slow[int(9.0 * SR) : int(15.0 * SR)]
    host = _tune(_notes(7, 64), 130)
    at = int(11.0 * SR)
    host[at : at + excerpt.size] = excerpt
    match = melody.best_alignment(melody.profile(host, SR), reference)
    assert match is not None and match.score >= risk.MELODY_REVIEW_SCORE
    assert 10.5 <= match.query_offset_s <= 12.5
    assert match.reference_offset_s - match.query_offset_s == pytest.approx(-2.0, abs=0.3)


def test_shared_opening_is_not_a_match() -> None:
    # Two different tunes that open with the same 4 bars match nowhere else.
    opening = _notes(8, 8)
    a = melody.profile(_tune(opening + _notes(9, 40), 120), SR)
    b = melody.profile(_tune(opening + _notes(10, 40), 120), SR)
    found = melody.best_alignment(a, b)
    assert found is not None and found.score < risk.MELODY_REVIEW_SCORE


def test_drum_only_frames_are_blank() -> None:
    clicks = np.zeros(SR * 8, dtype=np.float32)
    for k in range(16):
        burst = np.random.default_rng(k).normal(0, 0.3, 800).astype(np.float32)
        clicks[k * SR // 2 : k * SR // 2 + 800] = burst * np.hanning(800)
    tune = _tune(_notes(11, 16), 120)
    prof = melody.profile(np.concatenate([clicks, tune]), SR)
    split = int(8.0 / melody.STEP_S)
    blank = ~prof.bands.any(axis=1)
    assert blank[: split - 2].mean() > 0.8
    assert blank[split + 2 :].mean() < 0.2


def test_silence_has_no_profile() -> None:
    with pytest.raises(melody.MelodyError):
        melody.profile(np.zeros(SR * 5, dtype=np.float32), SR)


def test_diagonal_means_match_a_direct_sum() -> None:
    rng = np.random.default_rng(0)
    sim = rng.random((2, 30, 40)).astype(np.float32)
    got = melody._diagonal_means(sim, 11)
    i, j = 7, 12
    assert got.shape == (2, 20, 30)
    want = np.mean([sim[1, i + t, j + t] for t in range(11)])
    assert got[1, i, j] == pytest.approx(want, rel=1e-5)


def test_checker_reports_a_melody_match_and_skips_old_profiles(
    reference: melody.MelodyProfile,
) -> None:
    catalog = InMemoryCatalog()
    catalog.add("old", "Old format", [], np.zeros((30, 13), dtype="<f4").tobytes())
    catalog.add("ref", "Reference", [], reference.to_bytes())
    copy = melody.profile(_tune(_notes(4, 64)[20:44], 104, transpose=-1), SR)
    matches = asyncio.run(SimilarityChecker(catalog).melody_matches(copy))
    assert [m.recording_id for m in matches] == ["ref"]
    (m,) = matches
    assert m.method == "melody" and m.risk == "review" and m.semitones == -1
    assert m.tempo_factor is not None and m.tempo_factor < 1.0
    assert m.duration_s == pytest.approx(melody.WINDOW_FRAMES * melody.STEP_S, abs=0.01)


def test_long_files_are_compared_in_blocks(reference: melody.MelodyProfile) -> None:
    # A block boundary inside the copy must not hide it, and blocks give the unblocked answer.
    copy = melody.profile(_tune(_notes(4, 64)[16:40], 110), SR)
    whole = melody.best_alignment(copy, reference)
    saved = melody.BLOCK_FRAMES
    try:
        melody.BLOCK_FRAMES = 37
        blocked = melody.best_alignment(copy, reference)
    finally:
        melody.BLOCK_FRAMES = saved
    assert whole is not None and blocked is not None
    assert blocked.score == pytest.approx(whole.score, abs=0.02)
    assert blocked.score >= risk.MELODY_REVIEW_SCORE

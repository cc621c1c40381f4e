"""Melody window index: candidates found among many distractors, transposed and tempo-shifted."""

import asyncio

import numpy as np
import pytest

from activities.catalog import melody, melody_index
from activities.evaluation.similarity import InMemoryCatalog
from activities.similarity.checker import SimilarityChecker
from tests.synthetic_melody import synthetic_profile

SR = 22050


def _copy(source: np.ndarray, semitones: int, tempo: float) -> np.ndarray:
    """`source` transposed and played `tempo` × as fast, on the profile grid."""
    out = np.roll(source, semitones, axis=1)
    if semitones > 0:
        out[:, :semitones] = 0.0
    elif semitones < 0:
        out[:, semitones:] = 0.0
    frames = np.round(np.arange(int(len(source) / tempo)) * tempo).astype(int)
    return out[np.minimum(frames, len(source) - 1)]


@pytest.fixture(scope="module")
def catalog() -> tuple[InMemoryCatalog, list[np.ndarray]]:
    """400 recordings of 45 s: the planted sources and their distractors alike."""
    rng = np.random.default_rng(3)
    cat = InMemoryCatalog()
    tunes = []
    for i in range(400):
        bands = synthetic_profile(rng, 484)
        tunes.append(bands)
        cat.add(f"rec-{i}", f"tune {i}", [], melody.MelodyProfile(bands).to_bytes())
    return cat, tunes


@pytest.mark.parametrize(("semitones", "tempo"), [(1, 1.05), (-1, 0.95), (2, 1.0), (0, 0.92)])
def test_planted_excerpt_is_a_candidate_among_distractors(
    catalog: tuple[InMemoryCatalog, list[np.ndarray]], semitones: int, tempo: float
) -> None:
    cat, tunes = catalog
    rng = np.random.default_rng([semitones + 6, int(tempo * 100)])
    found = 0
    for source in rng.choice(len(tunes), size=10, replace=False).tolist():
        start = int(rng.integers(0, 484 - 60))
        excerpt = _copy(tunes[source][start : start + 60], semitones, tempo)  # ≈ 5.6 s
        query = synthetic_profile(rng, 323)  # 30 s of another tune
        at = int(rng.integers(0, 323 - len(excerpt)))
        query[at : at + len(excerpt)] = excerpt
        checker = SimilarityChecker(cat)
        ranked = asyncio.run(checker.melody_candidates(melody.MelodyProfile(query)))
        found += source + 1 in [rec for rec, _ in ranked]
    assert found == 10


def test_planted_copy_is_reported_by_the_check(
    catalog: tuple[InMemoryCatalog, list[np.ndarray]],
) -> None:
    cat, tunes = catalog
    excerpt = _copy(tunes[123][200:300], 1, 1.04)
    query = synthetic_profile(np.random.default_rng(9), 323)
    query[100 : 100 + len(excerpt)] = excerpt
    matches = asyncio.run(SimilarityChecker(cat).melody_matches(melody.MelodyProfile(query)))
    assert [m.recording_id for m in matches] == ["rec-123"]
    assert matches[0].semitones == 1
    assert matches[0].tempo_factor in melody.TEMPO_RATIOS


def test_vectors_are_unit_length_and_key_invariant() -> None:
    bands = synthetic_profile(np.random.default_rng(5), 200)
    starts, vectors = melody_index.reference_vectors(melody.MelodyProfile(bands))
    assert vectors.shape == (len(starts), melody_index.DIMENSIONS)
    assert np.all(np.diff(starts) % melody_index.HOP_FRAMES == 0)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # A copy 3 semitones up lands on the same vectors (only bands entering or leaving the
    # folded octaves differ).
    moved_starts, moved = melody_index.reference_vectors(melody.MelodyProfile(_copy(bands, 3, 1)))
    assert np.array_equal(starts, moved_starts)
    assert np.all(np.sum(vectors * moved, axis=1) > 0.9)
    q_starts, q_vectors = melody_index.query_vectors(melody.MelodyProfile(bands))
    windows = len(range(0, 200 - melody_index.WINDOW_FRAMES + 1, melody_index.QUERY_HOP_FRAMES))
    assert len(q_vectors) == len(q_starts) == melody_index.QUERY_ROTATIONS * windows


def test_planted_audio_copy_is_found_transposed_and_faster() -> None:
    """Real profiles (HPSS on rendered audio): the index must see what exact scoring sees."""
    rng = np.random.default_rng(11)

    def tune(notes: list[int], bpm: float, transpose: int = 0) -> np.ndarray:
        beat = 60.0 / bpm
        t = np.arange(int(beat * SR)) / SR
        env = np.exp(-3 * t)
        return np.concatenate([
            sum(g * env * np.sin(2 * np.pi * h * 440 * 2 ** ((n + transpose) / 12) * t)
                for h, g in ((1, 0.4), (2, 0.2), (3, 0.1)))
            for n in notes
        ]).astype(np.float32)  # fmt: skip

    cat = InMemoryCatalog()
    songs = [rng.integers(-5, 19, size=40).tolist() for _ in range(30)]
    for i, notes in enumerate(songs):
        profile = melody.profile(tune(notes, 110), SR)
        cat.add(f"song-{i}", f"song {i}", [], profile.to_bytes())
    host = tune(rng.integers(-5, 19, size=50).tolist(), 125)
    excerpt = tune(songs[17][10:22], 115, transpose=-1)  # 6.3 s, −1 semitone, 4.5 % faster
    at = int(8.0 * SR)
    host[at : at + excerpt.size] = excerpt
    query = melody.profile(host, SR)
    checker = SimilarityChecker(cat)
    assert 18 in [rec for rec, _ in asyncio.run(checker.melody_candidates(query))]
    matches = asyncio.run(checker.melody_matches(query))
    assert "song-17" in [m.recording_id for m in matches]


@pytest.mark.parametrize("frames", [0, 1, melody_index.WINDOW_FRAMES - 1])
def test_too_short_profiles_give_no_vectors(frames: int) -> None:
    profile = melody.MelodyProfile(np.ones((frames, melody.STORED_BANDS), dtype=np.float32))
    for starts, vectors in (
        melody_index.reference_vectors(profile),
        melody_index.query_vectors(profile),
    ):
        assert starts.shape == (0,)
        assert vectors.shape == (0, melody_index.DIMENSIONS)


def test_blank_profile_gives_no_vectors_and_no_matches() -> None:
    blank = melody.MelodyProfile(np.zeros((300, melody.STORED_BANDS), dtype=np.float32))
    assert melody_index.reference_vectors(blank)[1].shape == (0, melody_index.DIMENSIONS)
    cat = InMemoryCatalog()
    cat.add("blank", "blank", [], blank.to_bytes())
    assert asyncio.run(SimilarityChecker(cat).melody_matches(blank)) == []
    assert melody_index.nearest(np.zeros((0, melody_index.DIMENSIONS)), np.ones((3, 48))) == []
    assert melody_index.candidates([]) == []


def test_recordings_missing_from_the_index_are_still_compared() -> None:
    """A catalog ingested before the index: scanned one by one until `catalog reindex`."""
    rng = np.random.default_rng(8)
    bands = synthetic_profile(rng, 484)
    cat = InMemoryCatalog()
    rid = cat.add("old", "old", [], melody.MelodyProfile(bands).to_bytes(), indexed=False)
    query = synthetic_profile(rng, 323)
    query[50:150] = bands[300:400]
    checker = SimilarityChecker(cat)
    profile = melody.MelodyProfile(query)
    assert asyncio.run(checker.melody_candidates(profile)) == []
    assert [m.recording_id for m in asyncio.run(checker.melody_matches(profile))] == ["old"]
    cat.index_melody(rid)
    assert [rec for rec, _ in asyncio.run(checker.melody_candidates(profile))] == [rid]
    assert [m.recording_id for m in asyncio.run(checker.melody_matches(profile))] == ["old"]

"""The draft backend: audio contract, determinism, and measured tempo and key of its output."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import pytest

from activities.evaluation.controls import measure_key, measure_tempo
from activities.inference.backend import GeneratedAudio, ModelBackend
from activities.inference.draft import DraftBackend, compose
from activities.inference.draft.parts import DRUM_CHANNEL
from schemas.controls import ControlTokens, InstrumentToken
from schemas.music import parse_key

PIANO = InstrumentToken(name="piano", program=0, is_drum=False, role="harmony")
BASS = InstrumentToken(name="bass", program=33, is_drum=False, role="bass")
DRUMS = InstrumentToken(name="drums", program=0, is_drum=True, role="drums")
STRINGS = InstrumentToken(name="strings", program=48, is_drum=False, role="pad")
FLUTE = InstrumentToken(name="flute", program=73, is_drum=False, role="melody")
BAND = (PIANO, BASS, DRUMS)

# Krumhansl-Kessler probe-tone profiles, tonic first.
ANALYSIS_SR = 22050


def make_tokens(
    *,
    duration_s: float = 10.0,
    tempo_bpm: float = 120.0,
    key: str = "A minor",
    instruments: tuple[InstrumentToken, ...] = BAND,
    seed: int = 7,
    beats_per_bar: int = 4,
) -> ControlTokens:
    tonic_pc, mode = parse_key(key)
    bars = max(1, round(duration_s * tempo_bpm / 60 / beats_per_bar))
    return ControlTokens(
        prompt="test",
        duration_s=duration_s,
        tempo_bpm=tempo_bpm,
        tonic_pc=tonic_pc,
        mode=mode,
        key_name=key,
        beats_per_bar=beats_per_bar,
        bars=bars,
        instruments=list(instruments),
        seed=seed,
        tier="draft",
        model_id="draft",
        product="song",
    )


@pytest.fixture(scope="module")
def backend() -> DraftBackend:
    return DraftBackend()


def mono(audio: GeneratedAudio) -> np.ndarray:
    y = audio.samples.mean(axis=1).astype(np.float64)
    return librosa.resample(y, orig_sr=audio.sample_rate, target_sr=ANALYSIS_SR)


def test_implements_protocol(backend: DraftBackend) -> None:
    assert isinstance(backend, ModelBackend)
    assert backend.model_id == "draft"
    assert backend.model_version.startswith("draft-")
    assert backend.sample_rate == 44100
    assert backend.max_duration_s == 600.0


@pytest.mark.parametrize("duration_s", [0.01, 1.23456, 9.99999, 20.0])
def test_output_contract(backend: DraftBackend, duration_s: float) -> None:
    audio = backend.generate(make_tokens(duration_s=duration_s))
    s = audio.samples
    assert audio.sample_rate == 44100
    assert s.dtype == np.float32
    assert s.shape == (round(duration_s * 44100), 2)
    assert np.isfinite(s).all()
    assert np.abs(s).max() <= 1.0
    assert np.abs(s).max() > 0.1  # not silence
    assert abs(float(s[-1, 0])) < 1e-3 and abs(float(s[-1, 1])) < 1e-3  # faded: no end click
    if duration_s >= 1:
        assert not np.array_equal(s[:, 0], s[:, 1])  # panned: really stereo


def test_deterministic_per_seed(backend: DraftBackend) -> None:
    tokens = make_tokens(seed=11, instruments=(*BAND, STRINGS, FLUTE))
    first = backend.generate(tokens).samples
    other_seed = backend.generate(make_tokens(seed=12, instruments=(*BAND, STRINGS, FLUTE)))
    # The warm backend rendered another job in between: its synth state must not leak.
    again = backend.generate(tokens).samples
    fresh = DraftBackend().generate(tokens).samples
    assert np.array_equal(first, again)
    assert np.array_equal(first, fresh)
    assert not np.array_equal(first, other_seed.samples)


@pytest.mark.parametrize(
    ("duration_s", "tempo_bpm", "beats_per_bar"),
    [(0.5, 300.0, 4), (3.3, 30.0, 3), (45.0, 97.3, 7), (20.0, 300.0, 1), (600.0, 30.0, 4)],
)
def test_handles_extreme_controls(
    backend: DraftBackend, duration_s: float, tempo_bpm: float, beats_per_bar: int
) -> None:
    tokens = make_tokens(duration_s=duration_s, tempo_bpm=tempo_bpm, beats_per_bar=beats_per_bar)
    s = backend.generate(tokens).samples
    assert s.shape == (round(duration_s * 44100), 2)
    assert np.isfinite(s).all() and 0.1 < np.abs(s).max() <= 1.0


def test_concurrent_jobs_match_sequential(backend: DraftBackend) -> None:
    jobs = [make_tokens(seed=s, duration_s=6.0) for s in (21, 22, 23)]
    sequential = [backend.generate(t).samples for t in jobs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        concurrent = list(pool.map(lambda t: backend.generate(t).samples, jobs))
    assert all(np.array_equal(a, b) for a, b in zip(sequential, concurrent, strict=True))


@pytest.mark.parametrize("tempo_bpm", [90.0, 120.0, 150.0])
def test_tempo_is_measurably_right(backend: DraftBackend, tempo_bpm: float) -> None:
    audio = backend.generate(make_tokens(duration_s=20.0, tempo_bpm=tempo_bpm, seed=3))
    measured = measure_tempo(mono(audio))
    assert measured == pytest.approx(tempo_bpm, rel=0.02)


@pytest.mark.parametrize("key", ["A minor", "D major", "F# minor", "Eb major"])
def test_key_is_measurably_right(backend: DraftBackend, key: str) -> None:
    audio = backend.generate(make_tokens(duration_s=20.0, tempo_bpm=110.0, key=key, seed=5))
    assert measure_key(mono(audio)) == parse_key(key)


def test_progress_increases_to_one(backend: DraftBackend) -> None:
    fractions: list[float] = []
    backend.generate(make_tokens(duration_s=12.5), progress=fractions.append)
    assert fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(a < b for a, b in itertools.pairwise(fractions))
    assert len(fractions) >= 12.5 / 2  # at least one report per ~2 s of audio


def test_missing_soundfont_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="SoundFont"):
        DraftBackend(soundfont_path=tmp_path / "missing.sf2")


@pytest.mark.parametrize(
    "tokens",
    [make_tokens(duration_s=600.5), make_tokens(duration_s=0.0), make_tokens(tempo_bpm=10.0)],
)
def test_rejects_out_of_range_controls(backend: DraftBackend, tokens: ControlTokens) -> None:
    with pytest.raises(ValueError):
        backend.generate(tokens)


def _scale_pcs(key: str) -> set[int]:
    tonic, mode = parse_key(key)
    steps = [0, 2, 4, 5, 7, 9, 11] if mode == "major" else [0, 2, 3, 5, 7, 8, 10, 11]
    return {(tonic + s) % 12 for s in steps}  # minor: natural plus the harmonic-minor 7th


@pytest.mark.parametrize("key", ["A minor", "Eb major", "F# minor"])
def test_composition_drums_and_scale(key: str) -> None:
    tokens = make_tokens(duration_s=30.0, key=key, instruments=(*BAND, STRINGS, FLUTE))
    comp = compose(tokens)
    drums = [p for p in comp.parts if p.instrument.is_drum]
    assert [p.channel for p in drums] == [DRUM_CHANNEL] == [9]
    assert all(p.channel != DRUM_CHANNEL for p in comp.parts if not p.instrument.is_drum)
    assert {p.channel for p in comp.parts if not p.instrument.is_drum}.__len__() == 4
    pm = comp.to_pretty_midi()
    assert [i.is_drum for i in pm.instruments] == [p.instrument.is_drum for p in comp.parts]
    drum_keys = {n.pitch for n in drums[0].notes}
    assert {36, 38, 42} <= drum_keys  # kick, snare, closed hat

    scale = _scale_pcs(key)
    flute = next(p for p in comp.parts if p.instrument.name == "flute")
    assert flute.carries_melody and len(comp.melody) >= 10
    assert all(n.pitch % 12 in scale for n in comp.melody)
    for part in comp.parts:
        if not part.instrument.is_drum:
            assert all(n.pitch % 12 in scale for n in part.notes), part.instrument.name
        assert all(0 <= n.start_s < n.end_s <= tokens.duration_s for n in part.notes)
    # The piece ends on the tonic: the lead's last note is the tonic.
    assert comp.melody[-1].pitch % 12 == parse_key(key)[0]
    assert len({n.pitch for n in comp.melody}) >= 5  # a tune, not a drone


def test_harmony_instrument_carries_melody_without_melody_instrument() -> None:
    comp = compose(make_tokens(duration_s=20.0, instruments=BAND))
    # The piano plays the tune on a channel of its own, so the melody has its own stem.
    voice = next(p for p in comp.parts if p.carries_melody)
    assert voice.instrument.program == PIANO.program and voice.stem == "melody"
    assert comp.melody and voice.notes == comp.melody
    piano = next(p for p in comp.parts if p.instrument == PIANO)
    assert piano.stem == "harmony" and not piano.carries_melody and piano.notes


def test_composition_is_deterministic_and_varies_with_seed() -> None:
    a, b, c = (compose(make_tokens(seed=s, duration_s=30.0)) for s in (1, 1, 2))
    assert a == b
    assert a.parts != c.parts

"""Delivery formats, tags, profiles, preview clips, overview images, features and embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from activities.audio_io import FORMATS
from activities.controls.normalize import normalize_request
from activities.inference.draft import DraftBackend
from activities.postprocess.features import extract_features, loudness_range_lu
from activities.postprocess.formats import AudioTags, encode, read_tags, write_tags
from activities.postprocess.preview import preview_clip, render_overview_png
from activities.postprocess.profiles import PROFILES
from schemas.errors import InvalidRequestError
from schemas.request import validate_request

SR = 44100


@pytest.fixture(scope="module")
def backend() -> DraftBackend:
    return DraftBackend()


def _render(backend: DraftBackend, **request: object) -> np.ndarray:
    base = {"prompt": "x", "duration_s": 20.0, "instruments": ["piano", "bass", "drums"]}
    _, tokens = normalize_request(base | request)
    return backend.generate(tokens).samples


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_encodes_and_carries_tags(fmt: str, tmp_path: Path) -> None:
    x = (np.random.default_rng(0).normal(0, 0.1, (SR * 3, 2))).astype(np.float32)
    path = tmp_path / f"out.{FORMATS[fmt].extension}"
    encode(x, SR, fmt, path, seed=3)  # type: ignore[arg-type]
    write_tags(path, fmt, AudioTags(title="Boss battle", job_id="job-1", model="draft 1"))  # type: ignore[arg-type]
    info = sf.info(path)
    assert info.duration == pytest.approx(3.0, abs=0.08)  # codecs pad a few ms
    expected_rate = 48000 if fmt == "opus" else SR
    assert info.samplerate == expected_rate and info.channels == 2
    tags = read_tags(path)
    assert tags["title"] == "Boss battle" and tags["tunesmith_job_id"] == "job-1"
    assert tags["tunesmith_model"] == "draft 1"


def test_16_bit_dither_is_deterministic_per_seed(tmp_path: Path) -> None:
    x = (np.sin(np.arange(SR) / 20) * 0.01).astype(np.float32)[:, None].repeat(2, axis=1)
    paths = [tmp_path / f"{i}.wav" for i in range(3)]
    for path, seed in zip(paths, (1, 1, 2), strict=True):
        encode(x, SR, "wav16", path, seed=seed)
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b and a != c
    assert sf.info(paths[0]).subtype == "PCM_16"


def test_profiles_match_their_delivery_standards() -> None:
    assert PROFILES["streaming"].target_lufs == -14.0
    assert PROFILES["apple"].target_lufs == -16.0 and PROFILES["podcast"].target_lufs == -16.0
    broadcast = PROFILES["broadcast"]
    assert broadcast.target_lufs == -23.0 and broadcast.sample_rate == 48000
    assert all(p.true_peak_dbtp <= -1.0 for p in PROFILES.values())


def test_bad_profile_or_format_is_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidRequestError, match="profile"):
        validate_request({"prompt": "x", "profile": "cinema"})
    with pytest.raises(InvalidRequestError, match="formats"):
        validate_request({"prompt": "x", "formats": ["wma"]})
    with pytest.raises(InvalidRequestError, match="formats"):
        validate_request({"prompt": "x", "formats": []})
    assert validate_request({"prompt": "x", "formats": ["mp3", "mp3"]}).formats == ["mp3"]


def test_preview_takes_the_loudest_stretch_with_fades() -> None:
    x = np.full((SR * 60, 2), 0.01)
    x[SR * 30 : SR * 45] = 0.5  # the "hook"
    clip = preview_clip(x, SR, seconds=15)
    assert clip.shape[0] == SR * 15
    assert np.median(np.abs(clip)) == pytest.approx(0.5)
    assert abs(clip[0, 0]) < 1e-6 and abs(clip[-1, 0]) < 1e-6
    short = preview_clip(x[: SR * 5], SR, seconds=15)
    assert short.shape[0] == SR * 5


def test_overview_png_is_written(tmp_path: Path, backend: DraftBackend) -> None:
    path = tmp_path / "overview.png"
    render_overview_png(_render(backend, duration_s=8.0), SR, path, title="job-1")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_loudness_range_of_a_piece_with_two_levels() -> None:
    rng = np.random.default_rng(0)
    loud = rng.normal(0, 0.2, (SR * 20, 2))
    quiet = loud * 10 ** (-12 / 20)  # 12 dB quieter
    lra = loudness_range_lu(np.concatenate([loud, quiet]), SR)
    assert lra == pytest.approx(12.0, abs=1.5)
    assert loudness_range_lu(loud, SR) < 1.0


@pytest.mark.parametrize(("key", "tempo"), [("A minor", 120.0), ("Eb major", 96.0)])
def test_features_measure_key_and_tempo(backend: DraftBackend, key: str, tempo: float) -> None:
    features = extract_features(_render(backend, key=key, tempo_bpm=tempo), SR,
                                instruments=["piano"])  # fmt: skip
    assert features.key == key
    assert features.tempo_bpm == pytest.approx(tempo, rel=0.04)
    assert features.instruments == ["piano"] and features.embedding_model == "dsp-v1"
    assert len(features.embedding) == 48
    assert float(np.linalg.norm(features.embedding)) == pytest.approx(1.0, abs=1e-4)


def test_embedding_places_similar_music_closer(backend: DraftBackend) -> None:
    def emb(**request: object) -> np.ndarray:
        return np.array(extract_features(_render(backend, **request), SR, instruments=[]).embedding)

    piano = emb(seed=1, instruments=["piano", "bass", "drums"])
    piano_again = emb(seed=2, instruments=["piano", "bass", "drums"])
    strings = emb(seed=1, instruments=["strings", "flute"], tempo_bpm=70.0)
    assert float(piano @ piano_again) > float(piano @ strings)

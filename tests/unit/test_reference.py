"""Reference-audio analysis on synthesized songs with a known tempo and key, and bad inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from activities.controls import reference
from activities.controls.reference import analyse_reference
from schemas.errors import InvalidRequestError

SR = 44100
A3 = 220.0


def song(
    bpm: float, tonic_hz: float, *, minor: bool, seconds: float = 20.0, sr: int = SR
) -> np.ndarray:
    """An unambiguous little song: a kick on every beat, a tonic-third-fifth-third arpeggio
    (one note per beat, decaying, three harmonics), a sustained tonic triad and a tonic bass.

    Every beat has the same kick and there are no off-beat onsets, so the pulse has one
    obvious metrical level; tonic, third and fifth dominate the chroma, so the mode is clear.
    """
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    beat = 60.0 / bpm
    k = np.arange(int(0.15 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-k * 40)) * k) * np.exp(-k * 25)
    third = 2 ** ((3 if minor else 4) / 12)
    arpeggio = [1.0, third, 1.5, third]
    for i, start in enumerate(np.arange(0, seconds, beat)):
        a = int(start * sr)
        m = min(n - a, len(kick))
        y[a : a + m] += 0.8 * kick[:m]
        m = min(n - a, int(beat * sr))
        tt = np.arange(m) / sr
        f = 2 * tonic_hz * arpeggio[i % 4]
        tone = sum(np.sin(2 * np.pi * f * h * tt) / h for h in (1, 2, 3))
        y[a : a + m] += 0.2 * np.exp(-tt * 3) * tone
    for f in (tonic_hz, tonic_hz * third, tonic_hz * 1.5):
        y += 0.05 * np.sin(2 * np.pi * f * t)
    y += 0.1 * np.sin(2 * np.pi * tonic_hz / 2 * t)
    return np.stack([y, 0.9 * y], axis=1) * 0.5


def write(path: Path, samples: np.ndarray, sr: int = SR, **kw: object) -> Path:
    sf.write(path, samples, sr, **kw)
    return path


@pytest.fixture(scope="module")
def a_minor_100(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("ref") / "a-minor-100.wav", song(100, A3, minor=True))


def test_tempo_key_and_summary_of_a_known_song(a_minor_100: Path) -> None:
    summary = analyse_reference(a_minor_100, "s3://refs/a.wav")
    assert summary.uri == "s3://refs/a.wav"
    assert summary.sha256 == hashlib.sha256(a_minor_100.read_bytes()).hexdigest()
    assert summary.duration_s == 20.0
    assert summary.tempo_bpm == pytest.approx(100, rel=0.02)
    assert summary.key == "A minor"
    assert 0.5 < summary.key_confidence <= 1.0
    assert len(summary.chroma) == 12
    assert sum(summary.chroma) == pytest.approx(1.0, abs=1e-3)
    assert summary.chroma.index(max(summary.chroma)) == 9  # A
    assert -30 < summary.integrated_lufs < -10
    assert set(summary.spectral) == {"centroid_hz", "rolloff_hz", "bandwidth_hz", "flatness"}
    assert 100 < summary.spectral["centroid_hz"] < summary.spectral["rolloff_hz"]
    assert summary.filled == []


def test_analysis_is_deterministic(a_minor_100: Path) -> None:
    assert analyse_reference(a_minor_100, "u") == analyse_reference(a_minor_100, "u")


@pytest.mark.parametrize(
    ("bpm", "tonic_hz", "minor", "key"),
    [
        (128, 196.0, False, "G major"),
        (87, 146.83, True, "D minor"),
        (140, 130.81, False, "C major"),
    ],
)
def test_other_tempos_and_keys(
    tmp_path: Path, bpm: float, tonic_hz: float, minor: bool, key: str
) -> None:
    path = write(
        tmp_path / "s.flac", song(bpm, tonic_hz, minor=minor, seconds=15), subtype="PCM_16"
    )
    summary = analyse_reference(path, "u")
    assert summary.tempo_bpm == pytest.approx(bpm, rel=0.02)
    assert summary.key == key
    assert summary.duration_s == 15.0


def test_only_the_analysis_window_is_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = song(100, A3, minor=True, seconds=4) * 0.1
    loud = song(100, A3, minor=True, seconds=6)
    both = write(tmp_path / "both.wav", np.concatenate([quiet, loud]), subtype="FLOAT")
    head = write(tmp_path / "head.wav", quiet, subtype="FLOAT")
    monkeypatch.setattr(reference, "ANALYSIS_WINDOW_S", 4.0)
    summary = analyse_reference(both, "u")
    assert summary.duration_s == 10.0  # the whole file...
    assert summary.integrated_lufs == analyse_reference(head, "u").integrated_lufs  # ...its head


# --- bad inputs -----------------------------------------------------------------------------


def test_silence_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="reference audio is silent"):
        analyse_reference(write(tmp_path / "zero.wav", np.zeros((SR * 5, 2))), "u")
    hiss = np.random.default_rng(0).normal(0, 10 ** (-85 / 20), (SR * 5, 2))  # ~-85 dBFS
    with pytest.raises(InvalidRequestError, match="reference audio is silent"):
        analyse_reference(write(tmp_path / "hiss.wav", hiss, subtype="FLOAT"), "u")


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not audio\n" * 20, b"RIFF\x10\x00\x00\x00WAVEjunkjunk", b"\xff" * 4096],
    ids=["text", "broken-wav", "garbage"],
)
def test_non_audio_is_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(InvalidRequestError, match="reference is not a readable audio file"):
        analyse_reference(path, "u")


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(InvalidRequestError, match="empty"):
        analyse_reference(path, "u")


def test_header_only_wav_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "none.wav", np.zeros((0, 2)))
    with pytest.raises(InvalidRequestError, match="no audio frames"):
        analyse_reference(path, "u")


def test_too_short_and_too_long(tmp_path: Path) -> None:
    short = write(tmp_path / "short.wav", song(100, A3, minor=True, seconds=1.5))
    with pytest.raises(InvalidRequestError, match=r"1\.50 s long; it must be at least 2 s"):
        analyse_reference(short, "u")
    # 15 min + 1 s at a tiny sample rate: cheap to write, rejected before any analysis.
    long_ = write(tmp_path / "long.wav", np.full((1000 * 901, 1), 0.1), sr=1000)
    with pytest.raises(InvalidRequestError, match=r"901 s long; the limit is 900 s \(15 min\)"):
        analyse_reference(long_, "u")


def test_low_sample_rate_is_rejected(tmp_path: Path) -> None:
    tone = 0.3 * np.sin(2 * np.pi * 100 * np.arange(4000 * 5) / 4000)
    with pytest.raises(InvalidRequestError, match="sampled at 4000 Hz; at least 8000 Hz"):
        analyse_reference(write(tmp_path / "low.wav", tone, sr=4000), "u")


def test_too_big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "s.wav", song(100, A3, minor=True, seconds=6))
    monkeypatch.setattr(reference, "MAX_REFERENCE_BYTES", 1 << 19)
    with pytest.raises(InvalidRequestError, match=r"is 1\.0 MiB; the limit is 0\.5 MiB"):
        analyse_reference(path, "u")

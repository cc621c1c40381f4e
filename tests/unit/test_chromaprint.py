from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from activities.catalog import chromaprint
from activities.catalog.chromaprint import FingerprintError, fingerprint_file

SR = 44100


def _tone_sequence(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    freqs = 220 * 2 ** (np.floor(t * 2) % 12 / 12)  # a new semitone every 0.5 s
    sf.write(path, 0.3 * np.sin(2 * np.pi * np.cumsum(freqs) / SR), SR)
    return path


def test_fingerprints_the_whole_file_past_120_seconds(tmp_path: Path) -> None:
    fp = fingerprint_file(_tone_sequence(tmp_path / "long.wav", 150))
    assert fp.duration_s == pytest.approx(150, abs=1)
    # ~7.8 items per second over the whole file, not just fpcalc's default first 120 s.
    assert len(fp.items) > 140 * 7
    assert all(-(2**31) <= i < 2**31 for i in fp.items)
    again = fingerprint_file(tmp_path / "long.wav")
    assert again.sha256 == fp.sha256


def test_too_short_audio_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FingerprintError):
        fingerprint_file(_tone_sequence(tmp_path / "short.wav", 1.0))


def test_missing_fpcalc_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(chromaprint.shutil, "which", lambda _name: None)
    with pytest.raises(chromaprint.ChromaprintUnavailableError, match="libchromaprint-tools"):
        fingerprint_file(tmp_path / "x.wav")

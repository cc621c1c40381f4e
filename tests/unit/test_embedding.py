"""Embedding extractor selection and the dsp-v1 extractor (light install: no torch needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from activities.postprocess.embedding import (
    DSP_V1,
    EMBEDDING_DIM,
    EmbeddingExtractor,
    EmbeddingExtractorError,
    embedding_extractor,
)
from activities.postprocess.features import ANALYSIS_RATE, extract_features
from infra.settings import Settings


def _tone(rate: int, seconds: float = 2.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)).astype(
        np.float32
    )


def test_unset_dir_selects_dsp_v1() -> None:
    extractor = embedding_extractor(Settings(clap_model_dir=None))
    assert extractor is DSP_V1
    assert (extractor.model_id, extractor.dimension) == ("dsp-v1", EMBEDDING_DIM)


def test_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNESMITH_CLAP_MODEL_DIR", str(tmp_path))
    assert Settings().clap_model_dir == tmp_path


def test_dir_set_without_models_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # None in sys.modules makes `import transformers` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(EmbeddingExtractorError, match=r"`models` extra") as info:
        embedding_extractor(Settings(clap_model_dir=tmp_path / "clap"))
    assert "TUNESMITH_CLAP_MODEL_DIR" in str(info.value)


def test_dsp_extractor_any_rate_unit_norm() -> None:
    vector = DSP_V1.embed(_tone(44100), 44100)
    assert len(vector) == EMBEDDING_DIM
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    # At the analysis rate the same signal gives the same vector (one resampler: soxr_hq).
    import librosa

    mono = librosa.resample(_tone(44100), orig_sr=44100, target_sr=ANALYSIS_RATE,
                            res_type="soxr_hq")  # fmt: skip
    chroma = librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_RATE)
    assert DSP_V1.embed(mono, ANALYSIS_RATE, chroma=chroma) == vector


class _FakeExtractor:
    model_id = "fake-v1"
    dimension = 3

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def embed(self, mono: np.ndarray, sample_rate: int) -> list[float]:
        self.calls.append((mono.shape[0], sample_rate))
        return [1.0, 0.0, 0.0]


def test_features_store_the_chosen_extractors_vector_and_id() -> None:
    rate = 48000
    stereo = np.stack([_tone(rate), _tone(rate)], axis=1)
    fake = _FakeExtractor()
    extractor: EmbeddingExtractor = fake  # the protocol is structural
    features = extract_features(stereo, rate, instruments=["piano"], extractor=extractor)
    assert features.embedding == [1.0, 0.0, 0.0] and features.embedding_model == "fake-v1"
    assert fake.calls == [(stereo.shape[0], rate)]  # the master's own rate, mono


def test_cpu_worker_refuses_to_start_with_an_unloadable_clap_dir(tmp_path: Path) -> None:
    """A misconfigured checkpoint stops the worker before it connects to anything."""
    env = {**os.environ, "TUNESMITH_CLAP_MODEL_DIR": str(tmp_path / "missing"),
           "TUNESMITH_HOME": str(tmp_path / "home")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith", "worker", "cpu"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "worker cpu cannot start" in proc.stderr and "missing" in proc.stderr

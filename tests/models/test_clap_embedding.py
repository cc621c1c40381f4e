"""The CLAP embedding extractor on tiny random-weight checkpoints: real transformers loading,
log-mel front end and audio tower, no mocks. Skipped unless the `models` extra is installed."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from activities.postprocess.clap_embedding import ClapEmbedding
from activities.postprocess.embedding import EmbeddingExtractorError, embedding_extractor
from activities.postprocess.features import extract_features
from infra.settings import Settings, get_settings

PROJECTION_DIM = 16


def build_tiny_clap(out_dir: Path, *, seed: int = 0, fusion: bool = False) -> Path:
    """A ~12k-parameter CLAP (real architecture, random weights) + its feature extractor.

    Unfused checkpoints (laion/clap-htsat-unfused) pair with `rand_trunc` truncation, fused
    ones with `fusion`, as on the Hub.
    """
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    torch.manual_seed(seed)
    audio = {"depths": [1, 1], "num_attention_heads": [1, 2], "patch_embeds_hidden_size": 8,
             "hidden_size": 16, "window_size": 8, "spec_size": 256, "num_mel_bins": 64,
             "projection_dim": PROJECTION_DIM, "enable_fusion": fusion,
             "fusion_type": "aff_2d" if fusion else None}  # fmt: skip
    text = {"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64,
            "projection_dim": PROJECTION_DIM}  # fmt: skip
    config = ClapConfig(text_config=text, audio_config=audio, projection_dim=PROJECTION_DIM)
    ClapModel(config).eval().save_pretrained(out_dir)
    ClapFeatureExtractor(truncation="fusion" if fusion else "rand_trunc").save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clap(tmp_path_factory.mktemp("weights") / "clap-tiny")


@pytest.fixture(scope="module")
def clap(clap_dir: Path) -> ClapEmbedding:
    extractor = embedding_extractor(Settings(clap_model_dir=clap_dir))
    assert isinstance(extractor, ClapEmbedding)
    return extractor


def _tone(rate: int, seconds: float = 3.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(rate: int, seconds: float = 3.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(1).standard_normal(int(seconds * rate))).astype(np.float32)


def test_loads_once_and_records_the_checkpoint(clap_dir: Path, clap: ClapEmbedding) -> None:
    assert embedding_extractor(Settings(clap_model_dir=clap_dir)) is clap  # cached per process
    assert re.fullmatch(r"clap:clap-tiny@[0-9a-f]{12}", clap.model_id)
    assert clap.dimension == PROJECTION_DIM and clap.sample_rate == 48000


def test_vector_dimension_norm_and_determinism(clap_dir: Path, clap: ClapEmbedding) -> None:
    vector = clap.embed(_tone(48000), 48000)
    assert len(vector) == PROJECTION_DIM
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert clap.embed(_tone(48000), 48000) == vector
    assert ClapEmbedding.load(clap_dir).embed(_tone(48000), 48000) == vector  # a fresh process


def test_different_audio_gives_different_vectors(clap: ClapEmbedding) -> None:
    tone, noise = (
        np.array(clap.embed(_tone(48000), 48000)),
        np.array(clap.embed(_noise(48000), 48000)),
    )
    assert float(np.linalg.norm(tone - noise)) > 1e-3


def test_resamples_to_the_extractors_rate(clap: ClapEmbedding) -> None:
    at_48k = np.array(clap.embed(_tone(48000), 48000))
    at_44k = np.array(clap.embed(_tone(44100), 44100))
    assert float(at_48k @ at_44k) > 0.99  # same sound, other rate: (nearly) the same vector


def test_long_audio_is_embedded_in_windows(clap: ClapEmbedding) -> None:
    audio = np.concatenate([_tone(48000, 10.0), _noise(48000, 10.0), _tone(48000, 0.5)])
    assert [w.size for w in clap.windows(audio)] == [480000, 480000]  # the 0.5 s tail dropped
    vector = np.array(clap.embed(audio, 48000))
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    tone, noise = np.array(clap.embed(_tone(48000, 10.0), 48000)), np.array(
        clap.embed(_noise(48000, 10.0), 48000))  # fmt: skip
    expected = (tone + noise) / np.linalg.norm(tone + noise)  # equal-length windows
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_fused_checkpoint_is_deterministic(tmp_path: Path) -> None:
    fused = ClapEmbedding.load(build_tiny_clap(tmp_path / "clap-fused", fusion=True))
    vector = fused.embed(_tone(48000, 12.0), 48000)
    assert len(vector) == PROJECTION_DIM and fused.embed(_tone(48000, 12.0), 48000) == vector


def test_checkpoints_in_same_named_dirs_get_different_ids(tmp_path: Path) -> None:
    a = ClapEmbedding.load(build_tiny_clap(tmp_path / "a" / "clap", seed=1))
    b = ClapEmbedding.load(build_tiny_clap(tmp_path / "b" / "clap", seed=2))
    assert a.model_id.startswith("clap:clap@") and a.model_id != b.model_id


def test_features_store_clap_vector_and_id(
    clap_dir: Path, clap: ClapEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The postprocess path: extract_features picks the extractor from the settings itself.
    monkeypatch.setenv("TUNESMITH_CLAP_MODEL_DIR", str(clap_dir))
    get_settings.cache_clear()
    try:
        stereo = np.stack([_tone(44100), _tone(44100)], axis=1)
        features = extract_features(stereo, 44100, instruments=[])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert features.embedding_model == clap.model_id
    assert features.embedding == clap.embed(stereo.mean(axis=1), 44100)


# -- misconfiguration: a typed error, never a silent dsp-v1 fallback ------------------------------


def _copy_without(src: Path, dst: Path, *names: str) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*names))
    return dst


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingExtractorError, match="no such directory"):
        embedding_extractor(Settings(clap_model_dir=tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("model.safetensors", "no file named model.safetensors"),
        ("config.json", "config.json"),
        ("preprocessor_config.json", "preprocessor_config.json"),
    ],
)
def test_incomplete_checkpoint(clap_dir: Path, tmp_path: Path, missing: str, message: str) -> None:
    broken = _copy_without(clap_dir, tmp_path / "broken", missing)
    with pytest.raises(EmbeddingExtractorError, match=message):
        embedding_extractor(Settings(clap_model_dir=broken))


def test_corrupt_or_partial_weights(clap_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    broken = _copy_without(clap_dir, tmp_path / "corrupt")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(EmbeddingExtractorError, match="SafetensorError"):
        ClapEmbedding.load(broken)
    state = load_file(clap_dir / "model.safetensors")
    del state[next(k for k in sorted(state) if k.startswith("audio_model."))]
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EmbeddingExtractorError, match="weights missing"):
        ClapEmbedding.load(broken)


def test_not_a_clap_checkpoint(clap_dir: Path, tmp_path: Path) -> None:
    other = _copy_without(clap_dir, tmp_path / "musicgen")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "musicgen"}))
    with pytest.raises(EmbeddingExtractorError, match="not 'clap'"):
        ClapEmbedding.load(other)


def test_transformers_missing(clap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(EmbeddingExtractorError, match=r"`models` extra"):
        ClapEmbedding.load(clap_dir)

"""Tiny random-weight checkpoints, built once per session into a temp models dir."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from activities.inference.registry import ModelRegistry

# No importorskip here (a conftest cannot skip): these imports are torch-free, torch loads
# inside the fixtures, which only the torch-gated test modules use.
from activities.models.settings import ModelSettings
from infra.settings import Settings
from schemas.controls import ControlTokens, MelodyNote, ReferenceSummary

SERVED = "draft,musicgen-debug,musicgen-melody-debug,stable-audio-debug"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from activities.inference.musicgen.debug import build_debug_musicgen
    from activities.inference.stable_audio.debug import build_debug_stable_audio

    root = tmp_path_factory.mktemp("models")
    build_debug_musicgen(root / "musicgen-debug")
    build_debug_musicgen(root / "musicgen-melody-debug", melody=True)
    build_debug_stable_audio(root / "stable-audio-debug")
    return root


@pytest.fixture(scope="session")
def registry(models_dir: Path) -> ModelRegistry:
    # CPU by default (CI); TUNESMITH_TEST_TORCH_DEVICE=cuda runs the same tests on a GPU.
    device = os.environ.get("TUNESMITH_TEST_TORCH_DEVICE", "cpu")
    ms = ModelSettings(models_dir=models_dir, served_models=SERVED, torch_device=device)
    return ModelRegistry(Settings(), ms)


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of an A-minor arpeggio at 48 kHz (another rate than every model's)."""
    rate = 48000
    t = np.arange(3 * rate) / rate
    freqs = np.repeat([220.0, 261.63, 329.63], rate)
    audio = 0.3 * np.sin(2 * np.pi * np.cumsum(freqs) / rate) * np.ones_like(t)
    path = tmp_path_factory.mktemp("ref") / "ref.wav"
    sf.write(path, np.stack([audio, audio], axis=1).astype(np.float32), rate)
    return path


def make_tokens(**overrides: object) -> ControlTokens:
    base: dict[str, object] = {
        "prompt": "warm lo-fi piano groove",
        "duration_s": 1.0,
        "tempo_bpm": 120.0,
        "tonic_pc": 9,
        "mode": "minor",
        "key_name": "A minor",
        "bars": 1,
        "instruments": [],
        "seed": 7,
        "tier": "final",
        "model_id": "musicgen-debug",
        "product": "track",
    }
    base.update(overrides)
    return ControlTokens.model_validate(base)


def melody_tokens(model_id: str, **overrides: object) -> ControlTokens:
    notes = [MelodyNote(start_beat=i * 0.5, duration_beats=0.5, pitch=p) for i, p in
             enumerate([69, 72, 76, 72, 69, 67, 69, 72])]  # fmt: skip
    chroma = [n.pitch % 12 for n in notes for _ in range(2)]  # two sixteenths per eighth note
    return make_tokens(model_id=model_id, melody=notes, melody_chroma=chroma, **overrides)


def reference(path: Path) -> ReferenceSummary:
    return ReferenceSummary(uri=path.as_uri(), sha256="0" * 64, duration_s=3.0, tempo_bpm=120.0,
                            key="A minor", key_confidence=0.9, chroma=[1 / 12] * 12,
                            integrated_lufs=-18.0)  # fmt: skip

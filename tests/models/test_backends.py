"""MusicGen and Stable Audio backends on tiny random-weight checkpoints: real loading and
generation code, no mocks. Skipped unless the `models` extra is installed (`make test-models`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from activities.inference.backend import ModelBackend, UnsupportedControlsError
from activities.inference.failures import ModelWeightsMissingError, classify
from activities.inference.musicgen.backend import melody_chroma_frames, plan_windows
from activities.inference.prompt import build_prompt
from activities.inference.registry import ModelRegistry
from activities.models.settings import ModelSettings
from infra.settings import Settings
from tests.models.conftest import make_tokens, melody_tokens, reference


def test_registry_builds_each_backend_once(registry: ModelRegistry) -> None:
    for model_id in ("musicgen-debug", "musicgen-melody-debug", "stable-audio-debug"):
        backend = registry.get(model_id)
        assert isinstance(backend, ModelBackend)
        assert registry.get(model_id) is backend
        assert backend.model_version == registry.card(model_id).version
        assert len(registry.weights_hash(model_id) or "") == 64


def test_missing_weights_is_a_typed_error(tmp_path: Path) -> None:
    ms = ModelSettings(models_dir=tmp_path, served_models="musicgen-debug,stable-audio-debug")
    registry = ModelRegistry(Settings(), ms)
    for model_id in ("musicgen-debug", "stable-audio-debug"):
        with pytest.raises(ModelWeightsMissingError) as info:
            registry.get(model_id)
        assert classify(info.value).non_retryable


def test_musicgen_text_shape_rate_and_seed(registry: ModelRegistry) -> None:
    backend = registry.get("musicgen-debug")
    assert backend.sample_rate == 32000 and not backend.capabilities.melody
    fractions: list[float] = []
    audio = backend.generate(make_tokens(duration_s=1.0), fractions.append)
    assert audio.sample_rate == 32000
    assert audio.samples.shape == (32000, 1) and audio.samples.dtype == np.float32
    assert np.abs(audio.samples).max() <= 1.0 and np.abs(audio.samples).max() > 0
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 5
    again = backend.generate(make_tokens(duration_s=1.0))
    np.testing.assert_array_equal(audio.samples, again.samples)
    other = backend.generate(make_tokens(duration_s=1.0, seed=8))
    assert not np.array_equal(audio.samples, other.samples)


def test_musicgen_windowed_continuation(registry: ModelRegistry) -> None:
    backend = registry.get("musicgen-debug")
    # Card: 2 s windows, 0.5 s overlap → 4.3 s takes three windows.
    assert [(w.prompt_frames, w.new_frames) for w in plan_windows(215, 100, 25)] == [
        (0, 100), (25, 75), (25, 40)]  # fmt: skip
    audio = backend.generate(make_tokens(duration_s=4.3))
    assert audio.samples.shape == (round(4.3 * 32000), 1)
    again = backend.generate(make_tokens(duration_s=4.3))
    np.testing.assert_array_equal(audio.samples, again.samples)
    # The first window is the same computation as a short render with the same seed.
    short = backend.generate(make_tokens(duration_s=2.0))
    head = 2 * 32000 - int(0.5 * 32000)  # before the crossfade into window 2
    np.testing.assert_allclose(audio.samples[:head], short.samples[:head], atol=1e-5)


def test_musicgen_rejects_melody_and_bad_duration(registry: ModelRegistry) -> None:
    backend = registry.get("musicgen-debug")
    with pytest.raises(UnsupportedControlsError, match="text-only"):
        backend.generate(melody_tokens("musicgen-debug"))
    with pytest.raises(UnsupportedControlsError, match="duration"):
        backend.generate(make_tokens(duration_s=backend.max_duration_s + 1))
    err = classify(UnsupportedControlsError("x"))
    assert err.type == "InvalidConditioning" and err.non_retryable


def test_musicgen_melody_conditioning_paths(registry: ModelRegistry, reference_wav: Path) -> None:
    backend = registry.get("musicgen-melody-debug")
    assert backend.capabilities.melody and backend.capabilities.reference_audio
    text_only = backend.generate(make_tokens(model_id="musicgen-melody-debug"))
    melody = backend.generate(melody_tokens("musicgen-melody-debug"))
    from_ref = backend.generate(
        make_tokens(model_id="musicgen-melody-debug", reference=reference(reference_wav))
    )
    for audio in (text_only, melody, from_ref):
        assert audio.samples.shape == (32000, 1)
    # Same seed and text: only the conditioning differs, and it changes the audio.
    assert not np.array_equal(text_only.samples, melody.samples)
    assert not np.array_equal(melody.samples, from_ref.samples)
    # Windowed continuation carries the melody across windows.
    long = backend.generate(melody_tokens("musicgen-melody-debug", duration_s=3.0))
    assert long.samples.shape == (96000, 1)


def test_melody_chroma_frames() -> None:
    tokens = melody_tokens("musicgen-melody-debug")
    chroma = melody_chroma_frames(tokens, 32000 / 4096, 20)
    assert chroma.shape == (20, 12)
    assert chroma[0].argmax() == 9 and chroma[0].sum() == 1.0  # A at the start
    assert chroma[-1].sum() == 0.0  # past the 2 s melody: rest
    assert "120 bpm" in build_prompt(tokens) and "A minor" in build_prompt(tokens)


def test_musicgen_batch_matches_single_renders(registry: ModelRegistry) -> None:
    backend = registry.get("musicgen-debug")
    batch = [make_tokens(seed=s, prompt=p) for s, p in ((1, "jazz piano"), (2, "dark techno"))]
    together = backend.generate_batch(batch)  # type: ignore[attr-defined]
    for tokens, audio in zip(batch, together, strict=True):
        alone = backend.generate(tokens)
        np.testing.assert_allclose(audio.samples, alone.samples, atol=1e-4)
    with pytest.raises(ValueError, match="one duration"):
        backend.generate_batch([make_tokens(), make_tokens(duration_s=2.0)])  # type: ignore[attr-defined]


def test_stable_audio_text_timing_seed(registry: ModelRegistry) -> None:
    backend = registry.get("stable-audio-debug")
    assert backend.sample_rate == 44100 and backend.capabilities.reference_audio
    fractions: list[float] = []
    tokens = make_tokens(model_id="stable-audio-debug", duration_s=1.5)
    audio = backend.generate(tokens, fractions.append)
    assert audio.samples.shape == (round(1.5 * 44100), 2) and audio.samples.dtype == np.float32
    assert fractions[-1] == 1.0 and len(fractions) >= 8
    np.testing.assert_array_equal(audio.samples, backend.generate(tokens).samples)
    other = backend.generate(tokens.model_copy(update={"seed": 8}))
    assert not np.array_equal(audio.samples, other.samples)


def test_stable_audio_audio_to_audio(registry: ModelRegistry, reference_wav: Path) -> None:
    backend = registry.get("stable-audio-debug")
    tokens = make_tokens(model_id="stable-audio-debug", duration_s=1.0)
    plain = backend.generate(tokens)
    a2a = backend.generate(tokens.model_copy(update={"reference": reference(reference_wav)}))
    assert a2a.samples.shape == plain.samples.shape == (44100, 2)
    assert not np.array_equal(plain.samples, a2a.samples)


def test_stable_audio_rejects_melody_and_long_durations(registry: ModelRegistry) -> None:
    backend = registry.get("stable-audio-debug")
    with pytest.raises(UnsupportedControlsError, match="melody"):
        backend.generate(melody_tokens("stable-audio-debug"))
    with pytest.raises(UnsupportedControlsError, match="no continuation"):
        backend.generate(make_tokens(model_id="stable-audio-debug", duration_s=7.0))

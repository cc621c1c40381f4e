"""Model cards, weights hashing, tier resolution, registry serving and failure classification.

No torch needed: these run in the default (light) install.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.inference.backend import UnsupportedControlsError
from activities.inference.failures import (
    FAILURE_TYPES,
    INVALID_CONDITIONING,
    MODEL_CRASHED,
    MODEL_OUT_OF_MEMORY,
    MODEL_TIMEOUT,
    MODEL_WEIGHTS_MISSING,
    UNKNOWN_MODEL,
    GenerationTimeoutError,
    ModelWeightsMissingError,
    UnknownModelError,
    classify,
)
from activities.inference.registry import ModelRegistry
from activities.models.cards import (
    CardError,
    get_card,
    list_cards,
    load_card,
    weights_sha256,
)
from activities.models.settings import ModelSettings, UnknownTierError, resolve_model_id
from infra.settings import Settings
from schemas.errors import UNKNOWN_MODEL as SCHEMA_UNKNOWN_MODEL

EXPECTED = {
    "draft",
    "musicgen-small",
    "musicgen-melody",
    "stable-audio-open-1.0",
    "musicgen-debug",
    "musicgen-melody-debug",
    "stable-audio-debug",
}


def test_every_card_loads_and_is_consistent() -> None:
    cards = {c.id: c for c in list_cards()}
    assert set(cards) == EXPECTED
    for card in cards.values():
        assert card.licence and card.training_data and card.version
        assert card.max_window_s <= card.max_duration_s
    assert cards["musicgen-small"].sample_rate == 32000
    assert not cards["musicgen-small"].supports("melody")
    assert cards["musicgen-melody"].supports("melody")
    assert cards["stable-audio-open-1.0"].channels == 2
    assert [c.id for c in list_cards(include_debug=False)] == sorted(
        i for i in EXPECTED if not i.endswith("-debug")
    )


def test_card_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        get_card("nope")
    bad = tmp_path / "x.toml"
    bad.write_text('id = "y"\n')
    with pytest.raises(CardError, match=r"x\.toml"):
        load_card(bad)
    good = (Path(__file__).parents[2] / "activities/models/cards/draft.toml").read_text()
    misnamed = tmp_path / "other.toml"
    misnamed.write_text(good)
    with pytest.raises(CardError, match="does not match"):
        load_card(misnamed)


def test_weights_hash_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 100)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "lock").write_text("ignored")
    first = weights_sha256(tmp_path)
    assert len(first) == 64 and weights_sha256(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"\x01" * 100)
    assert weights_sha256(tmp_path) != first
    with pytest.raises(FileNotFoundError):
        weights_sha256(tmp_path / "missing")


def test_tier_resolution() -> None:
    ms = ModelSettings(final_model="musicgen-small")
    assert resolve_model_id(ms, tier="draft") == "draft"
    assert resolve_model_id(ms, tier="final") == "musicgen-small"
    assert resolve_model_id(ms, tier="final", model_id="musicgen-melody") == "musicgen-melody"
    with pytest.raises(UnknownTierError):
        resolve_model_id(ms, tier="premium")


def test_registry_serves_configured_models(tmp_path: Path) -> None:
    ms = ModelSettings(served_models="draft, musicgen-debug,draft", models_dir=tmp_path)
    registry = ModelRegistry(Settings(), ms)
    assert registry.served_models == ["draft", "musicgen-debug"]
    assert registry.get("draft") is registry.get("draft")  # warm: built once
    assert registry.weights_hash("draft") is None
    with pytest.raises(UnknownModelError, match="not served"):
        registry.get("musicgen-small")
    # Served but no weights on disk: a clear, typed error (before torch is even imported).
    with pytest.raises(ModelWeightsMissingError):
        registry.weights_hash("musicgen-debug")
    with pytest.raises(UnknownModelError):
        ModelRegistry(Settings(), ModelSettings(served_models="draft,bogus"))


def test_default_registry_serves_draft() -> None:
    assert ModelRegistry(Settings(), ModelSettings()).served_models == ["draft"]


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError: classify matches the class name."""


@pytest.mark.parametrize(
    ("exc", "type_", "retryable"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried 2 GiB"), MODEL_OUT_OF_MEMORY, True),
        (MemoryError(), MODEL_OUT_OF_MEMORY, True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), MODEL_OUT_OF_MEMORY, True),
        (GenerationTimeoutError("over 600 s"), MODEL_TIMEOUT, True),
        (concurrent.futures.TimeoutError(), MODEL_TIMEOUT, True),
        (RuntimeError("shape mismatch"), MODEL_CRASHED, True),
        (ValueError("nan in logits"), MODEL_CRASHED, True),
        (UnsupportedControlsError("melody on a text-only model"), INVALID_CONDITIONING, False),
        (ModelWeightsMissingError("no config.json"), MODEL_WEIGHTS_MISSING, False),
        (UnknownModelError("not served"), UNKNOWN_MODEL, True),
    ],
)
def test_classify(exc: BaseException, type_: str, retryable: bool) -> None:
    err = classify(exc, model_id="m")
    assert isinstance(err, ApplicationError)
    assert err.type == type_ and err.type in FAILURE_TYPES
    assert err.non_retryable is (not retryable)
    assert err.details[0]["model_id"] == "m"
    if type_ == MODEL_OUT_OF_MEMORY:
        assert "smaller" in err.details[0]["hint"]


def test_classify_passes_application_errors_through() -> None:
    original = ApplicationError("x", type="Other", non_retryable=True)
    assert classify(original) is original
    assert UNKNOWN_MODEL == SCHEMA_UNKNOWN_MODEL

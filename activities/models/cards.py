"""Model cards: what each model is, where it came from, what it can do and cost. Stored as data.

One TOML file per model in `activities/models/cards/`. Cards drive request validation
(limits, supported controls), the registry (which backend builds a model, where its weights
live) and `tunesmith models list/show`. Unknown facts are written as "unknown", never guessed.
"""

from __future__ import annotations

import hashlib
import threading
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CARDS_DIR = Path(__file__).parent / "cards"
# Files hashed for provenance: everything in the weights dir but hidden files and caches.
_SKIP_PARTS = frozenset({"__pycache__", ".cache", ".git"})

Backend = Literal["draft", "musicgen", "stable-audio"]
Control = Literal[
    "text", "tempo", "key", "instruments", "melody", "reference_audio", "stems", "loops", "seed"
]


class CardError(ValueError):
    """A card file is missing, unreadable or invalid."""


class Hardware(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str  # e.g. "cpu", "cuda"
    min_memory_gb: float | None = None  # GPU memory for GPU models, host RAM for CPU ones
    notes: str = ""


class ModelCard(BaseModel):
    """One model's card."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: str
    family: str  # e.g. "musicgen", "stable-audio-open"
    backend: Backend  # which backend class builds it
    variant: str = ""  # backend-specific (e.g. "melody")
    description: str
    debug: bool = False  # tiny random-weight model for tests and benchmarks
    licence: str
    licence_url: str = ""
    source: str  # where the weights come from (repo / URL), "built-in" or "generated"
    training_data: str  # provenance of the training data
    parameters: str = "unknown"
    sample_rate: int = Field(gt=0)
    channels: int = Field(ge=1, le=2)
    max_duration_s: float = Field(gt=0)  # longest track the backend renders (in windows)
    max_window_s: float = Field(gt=0)  # longest single window the model was trained for
    window_overlap_s: float = Field(default=0.0, ge=0)  # context kept between windows
    controls: list[Control]
    # Per-backend defaults (guidance_scale, top_k, temperature / steps, cfg_scale, sampler).
    sampling: dict[str, Any] = Field(default_factory=dict)
    cost_cents_per_second: float = Field(ge=0)
    cost_basis: str = "estimate"
    hardware: Hardware
    weights_dir: str | None = None  # folder under the models dir; default: the id
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        if self.window_overlap_s >= self.max_window_s:
            raise ValueError("window_overlap_s must be shorter than max_window_s")
        if self.max_window_s > self.max_duration_s:
            raise ValueError("max_window_s must not exceed max_duration_s")
        return self

    @property
    def weights_dirname(self) -> str:
        return self.weights_dir or self.id

    def supports(self, control: str) -> bool:
        return control in self.controls


def load_card(path: Path) -> ModelCard:
    """Parse and validate one card file (its name must be `<id>.toml`)."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
        card = ModelCard.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise CardError(f"{path.name}: {exc}") from exc
    if card.id != path.stem:
        raise CardError(f"{path.name}: id {card.id!r} does not match the file name")
    return card


@lru_cache(maxsize=4)
def _load_all(cards_dir: Path) -> dict[str, ModelCard]:
    cards = [load_card(p) for p in sorted(cards_dir.glob("*.toml"))]
    return {c.id: c for c in cards}


def list_cards(*, include_debug: bool = True, cards_dir: Path = CARDS_DIR) -> list[ModelCard]:
    """Every card, sorted by id (debug models last unless excluded)."""
    cards = _load_all(cards_dir).values()
    return sorted((c for c in cards if include_debug or not c.debug), key=lambda c: (c.debug, c.id))


def get_card(model_id: str, *, cards_dir: Path = CARDS_DIR) -> ModelCard:
    """The card of `model_id`. Raises KeyError (with the known ids) when there is none."""
    cards = _load_all(cards_dir)
    try:
        return cards[model_id]
    except KeyError:
        raise KeyError(f"no model card for {model_id!r} (known: {sorted(cards)})") from None


_hash_cache: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_hash_lock = threading.Lock()


def _weight_files(root: Path) -> list[Path]:
    def skipped(path: Path) -> bool:
        parts = path.relative_to(root).parts
        return any(part.startswith(".") or part in _SKIP_PARTS for part in parts)

    return sorted(p for p in root.rglob("*") if p.is_file() and not skipped(p))


def weights_sha256(weights_dir: Path) -> str:
    """sha256 over every file of a local model dir (relative path + contents, sorted by path).

    For provenance: two workers report the same hash only for byte-identical weights, configs
    and tokenizers. Cached per process, keyed by each file's size and mtime, so a warm worker
    hashes a multi-GB model once.

    Raises:
        FileNotFoundError: the dir does not exist or holds no files.
    """
    root = Path(weights_dir).resolve()
    files = _weight_files(root) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no weight files in {root}")
    key_files = tuple(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    key = (str(root), key_files)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    value = digest.hexdigest()
    with _hash_lock:
        _hash_cache[key] = value
    return value

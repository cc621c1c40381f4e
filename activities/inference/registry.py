"""Model registry: which backend serves a model id, built once per worker process and kept warm.

A worker serves the ids in `TUNESMITH_SERVED_MODELS` (default "draft"); each must have a model
card. Requests name a model or a tier; `resolve` maps a tier to its configured model
(`TUNESMITH_DRAFT_MODEL`, `TUNESMITH_FINAL_MODEL`). Neural backends import torch only when
first built, so a draft-only worker never loads it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from activities.inference.backend import ModelBackend
from activities.inference.failures import ModelWeightsMissingError, UnknownModelError
from activities.inference.reference_audio import ReferenceLoader
from activities.models.cards import ModelCard, get_card, weights_sha256
from activities.models.settings import ModelSettings, get_model_settings, resolve_model_id
from infra.settings import Settings


class ModelRegistry:
    """Lazily builds each backend on first use and reuses it for every later job."""

    def __init__(
        self,
        settings: Settings,
        model_settings: ModelSettings | None = None,
        *,
        reference_loader: ReferenceLoader | None = None,
    ) -> None:
        """Raises UnknownModelError when a served id has no model card (fail at start-up).

        `reference_loader` fetches reference audio by URI for audio-conditioned models
        (default: local paths and file:// only; the GPU worker passes a store downloader).
        """
        self.settings = settings
        self.model_settings = model_settings or get_model_settings()
        self.reference_loader = reference_loader
        self._backends: dict[str, ModelBackend] = {}
        self._hashes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._served = self.model_settings.served_model_ids
        for model_id in self._served:
            self.card(model_id)

    @property
    def served_models(self) -> list[str]:
        """Model ids this worker can serve (advertised in its startup log and status)."""
        return list(self._served)

    def card(self, model_id: str) -> ModelCard:
        """The model card of any known model, served here or not."""
        try:
            return get_card(model_id)
        except KeyError as exc:
            raise UnknownModelError(str(exc.args[0])) from None

    def resolve(self, *, tier: str | None = None, model_id: str | None = None) -> str:
        """The model id a request gets: its explicit model, else its tier's configured model."""
        return resolve_model_id(self.model_settings, tier=tier, model_id=model_id)

    def weights_dir(self, model_id: str) -> Path:
        return self.model_settings.weights_path(self.card(model_id).weights_dirname)

    def weights_hash(self, model_id: str) -> str | None:
        """sha256 of the model's weight files for provenance; None for weight-free models."""
        if self.card(model_id).backend == "draft":
            return None
        with self._lock:
            cached = self._hashes.get(model_id)
        if cached is None:
            try:
                cached = weights_sha256(self.weights_dir(model_id))
            except FileNotFoundError as exc:
                raise ModelWeightsMissingError(str(exc)) from exc
            with self._lock:
                self._hashes[model_id] = cached
        return cached

    def get(self, model_id: str) -> ModelBackend:
        """The warm backend for `model_id`, built on first use.

        Raises:
            UnknownModelError: not served by this worker.
            ModelWeightsMissingError: its weights are not in the models dir.
        """
        with self._lock:
            backend = self._backends.get(model_id)
            if backend is None:
                backend = self._build(model_id)
                self._backends[model_id] = backend
            return backend

    def _build(self, model_id: str) -> ModelBackend:
        if model_id not in self._served:
            raise UnknownModelError(
                f"model {model_id!r} is not served by this worker (serves: {self.served_models})"
            )
        card = self.card(model_id)
        # Imports per branch: heavy backends (torch) load only in workers that serve them.
        if card.backend == "draft":
            from activities.inference.draft import DraftBackend

            return DraftBackend(self.settings.soundfont_path)
        options = {
            "device": self.model_settings.torch_device,
            "half": self.model_settings.half_precision,
            "reference_loader": self.reference_loader,
        }
        if card.backend == "musicgen":
            from activities.inference.musicgen import MusicGenBackend

            return MusicGenBackend(card, self.weights_dir(model_id), **options)  # type: ignore[arg-type]
        if card.backend == "stable-audio":
            from activities.inference.stable_audio import StableAudioBackend

            return StableAudioBackend(card, self.weights_dir(model_id), **options)  # type: ignore[arg-type]
        raise UnknownModelError(f"model {model_id!r}: no backend {card.backend!r}")

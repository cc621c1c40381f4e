"""Model registry: which backend serves a model id, built once per worker process and kept warm."""

from __future__ import annotations

import threading

from activities.inference.backend import ModelBackend
from infra.settings import Settings


class UnknownModelError(LookupError):
    """No backend is registered under this model id."""


class ModelRegistry:
    """Lazily builds each backend on first use and reuses it for every later job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._backends: dict[str, ModelBackend] = {}
        self._lock = threading.Lock()

    @property
    def served_models(self) -> list[str]:
        """Model ids this worker can serve (advertised in its startup log and status)."""
        return ["draft"]

    def get(self, model_id: str) -> ModelBackend:
        with self._lock:
            backend = self._backends.get(model_id)
            if backend is None:
                backend = self._build(model_id)
                self._backends[model_id] = backend
            return backend

    def _build(self, model_id: str) -> ModelBackend:
        # Imports per branch: heavy backends (torch) load only in workers that serve them.
        if model_id == "draft":
            from activities.inference.draft import DraftBackend

            return DraftBackend(self.settings.soundfont_path)
        raise UnknownModelError(
            f"model {model_id!r} is not served by this worker (serves: {self.served_models})"
        )

"""Model-serving settings of a worker (`TUNESMITH_*` variables): weights dir, served models, tiers.

Kept apart from `infra.settings.Settings` so that the model half can evolve without touching the
shared settings; the registry reads both.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TIERS = ("draft", "final")


def split_ids(value: str) -> list[str]:
    """`"draft, musicgen-small"` → `["draft", "musicgen-small"]`, order kept, no duplicates."""
    ids = [part.strip() for part in value.split(",")]
    return list(dict.fromkeys(i for i in ids if i))


class ModelSettings(BaseSettings):
    """What a GPU worker serves and where its weights live. Every field is `TUNESMITH_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="TUNESMITH_", extra="ignore")

    # Weights of model <id> live in <models_dir>/<id> (the card's `weights_dir` overrides the
    # folder name). Loaded with local_files_only: a worker never downloads at run time.
    models_dir: Path = Field(default=Path(".tunesmith/models"))
    # Comma-separated model ids this worker serves and advertises, e.g. "draft,musicgen-small".
    served_models: str = "draft"
    # Which model a request naming only a tier gets.
    draft_model: str = "draft"
    final_model: str = "draft"
    # "auto": CUDA when available, else CPU. Or an explicit torch device ("cuda:1", "cpu").
    torch_device: str = "auto"
    # Neural backends run in float16 on CUDA when true (halves memory); always float32 on CPU.
    half_precision: bool = True

    @property
    def served_model_ids(self) -> list[str]:
        return split_ids(self.served_models)

    @property
    def tier_models(self) -> dict[str, str]:
        return {"draft": self.draft_model, "final": self.final_model}

    def weights_path(self, dirname: str) -> Path:
        return (self.models_dir.expanduser() / dirname).resolve()


class UnknownTierError(LookupError):
    """A request named a tier other than draft/final."""


def resolve_model_id(
    settings: ModelSettings, *, tier: str | None = None, model_id: str | None = None
) -> str:
    """The model a request gets: an explicit model id wins, else the tier's configured model.

    Raises:
        UnknownTierError: neither given, or the tier is not one of `TIERS`.
    """
    if model_id:
        return model_id
    if tier is None or tier not in TIERS:
        raise UnknownTierError(f"tier must be one of {list(TIERS)}, got {tier!r}")
    return settings.tier_models[tier]


@lru_cache(maxsize=1)
def get_model_settings() -> ModelSettings:
    """Process-wide model settings, read once from the environment."""
    return ModelSettings()

"""A/B experiments over model, template and postprocess versions (a shared domain: the controls
step applies them; the promotion guard lives in `activities.evaluation.guard`).

- `model`: `Experiment`, `Variant`, `assign_variant` (deterministic per job) and
  `apply_experiments` (what the SDK calls before normalization).
- `stats`: Wilson and t intervals; `report`: per-variant metrics with a verdict.
- `store`: experiments, assignments and model promotions in PostgreSQL.
"""

from activities.experiments.model import (
    OVERRIDE_KEYS,
    Assignment,
    Experiment,
    ExperimentError,
    Variant,
    applies_to,
    apply_experiments,
    assign_variant,
    parse_variant,
)

__all__ = [
    "OVERRIDE_KEYS",
    "Assignment",
    "Experiment",
    "ExperimentError",
    "Variant",
    "applies_to",
    "apply_experiments",
    "assign_variant",
    "parse_variant",
]

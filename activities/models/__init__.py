"""The model catalog, shared by the steps: model cards (`cards`, one TOML file per model) and a
worker's model settings (`settings`: weights dir, served models, tier -> model)."""

# tunesmith — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
# A pinned uv in a private tool venv: the same resolver everywhere, no reliance on user PATHs.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV_BIN := .venv/bin
PY := $(VENV_BIN)/python

.PHONY: install system-deps browser-deps run test test-unit test-integration test-models bench bench-models lint format up down status clean

## Install system packages (Chromaprint's fpcalc) and the locked Python environment.
install: system-deps .venv/.installed

system-deps:
	@command -v fpcalc >/dev/null || { \
	  echo "installing Chromaprint (libchromaprint-tools)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libchromaprint-tools; }

## The review page's test drives a real headless Chromium (Debian's chromium + chromedriver).
browser-deps:
	@command -v chromedriver >/dev/null || { \
	  echo "installing Chromium and chromedriver (for the review page test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

$(UV):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools uv==$(UV_VERSION)

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev
	@touch $@

## Start the embedded stack and generate one 30 s draft track end to end.
run: install
	$(VENV_BIN)/tunesmith up
	$(VENV_BIN)/tunesmith generate "warm lo-fi piano groove for a podcast intro" \
	  --duration 30 --tempo 120 --key "A minor" --instruments piano,bass,drums --seed 7 \
	  --wait --out out/

## The full test suite; starts (and stops) the real services it needs.
test: install browser-deps
	$(VENV_BIN)/pytest -ra

test-unit: install
	$(VENV_BIN)/pytest -ra tests/unit

test-integration: install browser-deps
	$(VENV_BIN)/pytest -ra tests/integration

## Model backends (MusicGen, Stable Audio) on tiny random checkpoints, CPU. Needs the `models`
## extra (torch ~1 GB), installed into its own venv so the default .venv stays light.
MODELS_VENV := .tools/models-venv
$(MODELS_VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(MODELS_VENV) $(UV) sync --frozen --extra dev --extra models
	@touch $@

test-models: $(MODELS_VENV)/.installed
	$(MODELS_VENV)/bin/python -m pytest -ra tests/models tests/unit/test_model_cards.py

bench-models: $(MODELS_VENV)/.installed
	$(MODELS_VENV)/bin/python -m tests.bench.models

## Benchmarks (not part of `make test`): draft realtime factor, orchestration overhead.
bench: install
	$(PY) -m tests.bench.run

lint: install
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy

format: install
	$(VENV_BIN)/ruff format .
	$(VENV_BIN)/ruff check --fix .

up: install
	$(VENV_BIN)/tunesmith up
down:
	$(VENV_BIN)/tunesmith down
status:
	$(VENV_BIN)/tunesmith status

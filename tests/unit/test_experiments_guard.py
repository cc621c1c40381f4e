"""The promotion regression guard on real renders: the draft model against itself passes, a
draft that renders at the wrong tempo or with a DC offset and noise is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from activities.evaluation.guard import (
    DEFAULT_TOLERANCES,
    ModelEvaluation,
    RequestOutcome,
    compare,
    evaluate_model,
    guard_requests,
    parse_tolerances,
)
from activities.inference.backend import GeneratedAudio, ProgressCallback
from activities.inference.draft import DraftBackend
from schemas.controls import ControlTokens

N_REQUESTS = 4  # one of each product: track, loop, stems, layers


class WrongTempoDraft(DraftBackend):
    """Plays tracks and stems 12 % fast (loops stay in time: they must fill whole bars)."""

    model_id = "draft-wrong-tempo"

    def generate(
        self, tokens: ControlTokens, progress: ProgressCallback | None = None
    ) -> GeneratedAudio:
        if not tokens.loop:
            tokens = tokens.model_copy(update={"tempo_bpm": tokens.tempo_bpm * 1.12})
        return super().generate(tokens, progress)


class NoisyDraft(DraftBackend):
    """Adds a DC offset and hiss to the raw render."""

    model_id = "draft-noisy"

    def generate(
        self, tokens: ControlTokens, progress: ProgressCallback | None = None
    ) -> GeneratedAudio:
        audio = super().generate(tokens, progress)
        noise = 0.01 * np.random.default_rng(tokens.seed).standard_normal(audio.samples.shape)
        samples = (audio.samples + 0.05 + noise).astype(np.float32)
        return GeneratedAudio(samples, audio.sample_rate, audio.stems)


@pytest.fixture(scope="module")
def baseline() -> ModelEvaluation:
    return evaluate_model(DraftBackend(), guard_requests(N_REQUESTS))


def test_request_set_is_fixed() -> None:
    assert guard_requests(8) == guard_requests(8)
    assert [r["product"] for r in guard_requests(N_REQUESTS)] == [
        "track", "loop", "stems", "layers"
    ]  # fmt: skip


def test_draft_against_itself_passes(baseline: ModelEvaluation) -> None:
    metrics = baseline.metrics()
    assert metrics["render_ok"] == 1.0 and metrics["duration"] == 1.0
    assert metrics["quality"] is not None and metrics["similarity_fp"] is None
    again = evaluate_model(DraftBackend(), guard_requests(N_REQUESTS))
    result = compare(baseline, again)
    assert result.ok, result.comparison_rows()
    assert again.metrics() == metrics  # deterministic renders, identical figures
    assert {r["metric"] for r in result.comparison_rows()} == set(DEFAULT_TOLERANCES)


def test_wrong_tempo_is_refused(baseline: ModelEvaluation) -> None:
    degraded = evaluate_model(WrongTempoDraft(), guard_requests(N_REQUESTS))
    result = compare(baseline, degraded)
    assert not result.ok
    tempo = next(c for c in result.comparisons if c.metric == "tempo")
    assert not tempo.ok and tempo.regression is not None and tempo.regression >= 0.5
    # A tolerance as wide as the regression lets it through.
    assert compare(baseline, degraded, {"tempo": 1.0}).ok


def test_dc_and_noise_are_refused_on_quality(baseline: ModelEvaluation) -> None:
    degraded = evaluate_model(NoisyDraft(), guard_requests(N_REQUESTS))
    result = compare(baseline, degraded)
    assert "quality" in [c.metric for c in result.failed]
    assert all(any("DC offset" in f for f in o.findings) for o in degraded.outcomes)


def test_failed_renders_count(baseline: ModelEvaluation) -> None:
    broken = ModelEvaluation("x", "1", [RequestOutcome(i, "track", error="boom") for i in range(4)])
    result = compare(baseline, broken)
    failed = {c.metric for c in result.failed}
    assert {"render_ok", "tempo", "key", "quality"} <= failed


def test_parse_tolerances() -> None:
    tols = parse_tolerances(["tempo=0.1", "quality=0"])
    assert tols["tempo"] == 0.1 and tols["quality"] == 0.0 and tols["key"] == 0.05
    for bad in ("speed=0.1", "tempo", "tempo=-1", "tempo=x", "tempo=nan"):
        with pytest.raises(ValueError):
            parse_tolerances([bad])


def test_figures_are_json(baseline: ModelEvaluation) -> None:
    json.dumps(baseline.as_dict())
    json.dumps(compare(baseline, baseline).comparison_rows())

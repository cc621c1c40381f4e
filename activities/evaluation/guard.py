"""The regression guard: a candidate model may replace a tier's model only if it is not worse.

Both models render the same fixed request set (`guard_requests`: the controls-eval grid with a
fixed seed, every product) through the real normalization, product layer and mastering
(`activities.evaluation.controls.evaluate_request`). Measured per model:
- controls adherence: tempo, key, exact duration, loop seams, stems summing to the mix;
- quality: `assess_quality` on the delivered master (the score the review policy uses);
- similarity false positives (optional): masters flagged by the catalog check;
- renders that failed outright (`render_ok`).
`compare` then checks each metric against its tolerance: how far the candidate may fall below
the current model (in rate points or score units) before promotion is refused.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from activities.controls.normalize import normalize_request
from activities.evaluation.controls import ControlResult, evaluate_request, grid
from activities.inference.backend import GeneratedAudio, ModelBackend, ProgressCallback
from activities.postprocess.loudness import integrated_lufs
from activities.postprocess.profiles import PROFILES
from activities.postprocess.quality import assess_quality
from schemas.controls import ControlTokens
from schemas.request import DEFAULT_PROFILE

GUARD_SEED = 1000
DEFAULT_REQUESTS = 8

# metric → (label, +1 higher is better / -1 lower is better, default tolerance)
GUARD_METRICS: dict[str, tuple[str, int, float]] = {
    "render_ok": ("requests rendered", +1, 0.0),
    "tempo": ("tempo within 2 %", +1, 0.05),
    "key": ("key match", +1, 0.05),
    "duration": ("duration exact", +1, 0.0),
    "loop_seam": ("loop seam ok", +1, 0.05),
    "stems": ("stems sum to mix", +1, 0.0),
    "quality": ("mean quality score", +1, 0.05),
    "similarity_fp": ("similarity false positives", -1, 0.0),
}
DEFAULT_TOLERANCES = {k: tol for k, (_, _, tol) in GUARD_METRICS.items()}
_EPS = 1e-9


def guard_requests(n: int = DEFAULT_REQUESTS) -> list[dict[str, object]]:
    """The fixed request set: always the same `n` requests (products cycle every 4)."""
    return grid(n, seed=GUARD_SEED)


def parse_tolerances(specs: list[str]) -> dict[str, float]:
    """`["tempo=0.1", "quality=0.02"]` over the defaults.

    Raises:
        ValueError: unknown metric or a value that is not a number >= 0.
    """
    out = dict(DEFAULT_TOLERANCES)
    for spec in specs:
        key, sep, value = spec.partition("=")
        key = key.strip()
        if not sep or key not in GUARD_METRICS:
            raise ValueError(f"tolerance {spec!r}: expected METRIC=VALUE, METRIC one of "
                             f"{list(GUARD_METRICS)}")  # fmt: skip
        try:
            tol = float(value)
        except ValueError:
            raise ValueError(f"tolerance {spec!r}: {value!r} is not a number") from None
        if not math.isfinite(tol) or tol < 0:
            raise ValueError(f"tolerance {spec!r}: must be >= 0")
        out[key] = tol
    return out


class _Capturing:
    """Wraps a backend, keeping every raw render (what the quality check calls `raw`)."""

    def __init__(self, backend: ModelBackend) -> None:
        self.inner = backend
        self.model_id = backend.model_id
        self.model_version = backend.model_version
        self.sample_rate = backend.sample_rate
        self.max_duration_s = backend.max_duration_s
        self.capabilities = backend.capabilities
        self.renders: list[np.ndarray] = []

    def generate(
        self, tokens: ControlTokens, progress: ProgressCallback | None = None
    ) -> GeneratedAudio:
        audio = self.inner.generate(tokens, progress)
        self.renders.append(np.asarray(audio.samples))
        return audio

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class RequestOutcome:
    """One request of the set: its controls result and quality, or why it failed."""

    index: int
    product: str
    controls: ControlResult | None = None
    quality: float | None = None
    findings: list[str] = field(default_factory=list)
    error: str | None = None
    similarity_flagged: bool | None = None


@dataclass
class ModelEvaluation:
    """Everything the guard measured for one model on the request set."""

    model_id: str
    model_version: str
    outcomes: list[RequestOutcome]
    similarity_note: str | None = None

    def metrics(self) -> dict[str, float | None]:
        """Rates in 0..1 (None: nothing of that kind measured) and the mean quality score."""
        done = [o.controls for o in self.outcomes if o.controls is not None]

        def rate(values: list[bool | None]) -> float | None:
            vals = [v for v in values if v is not None]
            return sum(vals) / len(vals) if vals else None

        qualities = [o.quality for o in self.outcomes if o.quality is not None]
        flags = [o.similarity_flagged for o in self.outcomes]
        return {
            "render_ok": rate([o.error is None for o in self.outcomes]),
            "tempo": rate([c.tempo_ok for c in done]),
            "key": rate([c.key_ok for c in done]),
            "duration": rate([c.duration_ok for c in done]),
            "loop_seam": rate([c.seam_ok for c in done]),
            "stems": rate([c.stems_ok for c in done]),
            "quality": sum(qualities) / len(qualities) if qualities else None,
            "similarity_fp": rate(list(flags)),
        }

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures (numpy scalars converted)."""
        return _plain({"model_id": self.model_id, "model_version": self.model_version,
                       "metrics": self.metrics(), "similarity_note": self.similarity_note,
                       "outcomes": [asdict(o) for o in self.outcomes]})  # fmt: skip


def _plain(value: Any) -> Any:
    """`value` with numpy scalars as Python ones, recursively (for JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _quality(
    workdir: Path, request: dict[str, object], renders: list[np.ndarray]
) -> tuple[float, list[str]]:
    """`assess_quality` on the master evaluate_request delivered (read back from workdir)."""
    _, tokens = normalize_request(request)
    master, rate = sf.read(workdir / "master.wav", dtype="float64", always_2d=True)
    repeats = math.ceil(3.0 * rate / len(master)) if tokens.loop else 1
    shipped = integrated_lufs(np.tile(master, (repeats, 1)), rate)
    raw = np.concatenate(renders, axis=0) if renders else master
    report = assess_quality(
        raw, master, rate,
        requested_duration_s=tokens.duration_s, integrated_lufs=shipped,
        target_lufs=PROFILES[DEFAULT_PROFILE].target_lufs, loop=tokens.loop,
    )  # fmt: skip
    return report.score, report.findings


def evaluate_model(
    backend: ModelBackend,
    requests: list[dict[str, object]],
    *,
    keep_masters: Path | None = None,
    on_outcome: Callable[[RequestOutcome], None] | None = None,
) -> ModelEvaluation:
    """Render and measure every request; a request the model fails is recorded, not raised.

    `keep_masters`: copy each delivered master there as `NN.wav` (for the similarity check).
    """
    outcomes = []
    for i, request in enumerate(requests):
        outcome = RequestOutcome(index=i, product=str(request.get("product", "track")))
        capturing = _Capturing(backend)
        with tempfile.TemporaryDirectory(prefix="tunesmith-guard-") as tmp:
            try:
                outcome.controls = evaluate_request(capturing, request, Path(tmp))
                outcome.quality, outcome.findings = _quality(Path(tmp), request, capturing.renders)
                if keep_masters is not None:
                    keep_masters.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(Path(tmp) / "master.wav", keep_masters / f"{i:02d}.wav")
            except Exception as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return ModelEvaluation(backend.model_id, backend.model_version, outcomes)


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    label: str
    baseline: float | None
    candidate: float | None
    tolerance: float
    ok: bool
    note: str = ""

    @property
    def regression(self) -> float | None:
        """How much worse the candidate is (positive: worse), in the metric's units."""
        if self.baseline is None or self.candidate is None:
            return None
        better = GUARD_METRICS[self.metric][1]
        return (self.baseline - self.candidate) * better


@dataclass(frozen=True)
class GuardResult:
    baseline: ModelEvaluation
    candidate: ModelEvaluation
    comparisons: list[MetricComparison]
    tolerances: dict[str, float]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    @property
    def failed(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if not c.ok]

    def comparison_rows(self) -> list[dict[str, Any]]:
        return [_plain(asdict(c) | {"regression": c.regression}) for c in self.comparisons]


def compare(
    baseline: ModelEvaluation,
    candidate: ModelEvaluation,
    tolerances: dict[str, float] | None = None,
) -> GuardResult:
    """Metric by metric: refuse when the candidate is worse by more than the tolerance.

    A metric the baseline measured but the candidate did not (every such request failed) is
    refused; one neither measured passes with a note.
    """
    tols = dict(DEFAULT_TOLERANCES) | (tolerances or {})
    base, cand = baseline.metrics(), candidate.metrics()
    rows = []
    for key, (label, better, _) in GUARD_METRICS.items():
        b, c, tol = base[key], cand[key], tols[key]
        if b is None and c is None:
            rows.append(MetricComparison(key, label, b, c, tol, True, "not measured"))
        elif c is None:
            rows.append(MetricComparison(key, label, b, c, tol, False, "candidate not measured"))
        elif b is None:
            rows.append(MetricComparison(key, label, b, c, tol, True, "no baseline"))
        else:
            worse = (b - c) * better
            ok = worse <= tol + _EPS
            note = "" if ok else f"worse by {worse:.3g} > {tol:g}"
            rows.append(MetricComparison(key, label, b, c, tol, ok, note))
    return GuardResult(baseline, candidate, rows, tols)


def run_guard(
    baseline: ModelBackend,
    candidate: ModelBackend,
    requests: list[dict[str, object]],
    tolerances: dict[str, float] | None = None,
    *,
    on_outcome: Callable[[str, RequestOutcome], None] | None = None,
) -> GuardResult:
    """Evaluate both models on `requests` and compare them (no similarity check)."""

    def hook(which: str) -> Callable[[RequestOutcome], None] | None:
        return (lambda o: on_outcome(which, o)) if on_outcome is not None else None

    base = evaluate_model(baseline, requests, on_outcome=hook("current"))
    cand = evaluate_model(candidate, requests, on_outcome=hook("candidate"))
    return compare(base, cand, tolerances)

"""`tunesmith eval controls`: does the output follow the controls? Measured with librosa.

Renders a grid of requests (tempos 60-180, several keys and meters, every product) through the
real normalization, product layer and mastering, then measures the delivered masters:
- tempo: onset-autocorrelation tempo (librosa's fixed 120 BPM prior, refined by parabolic
  interpolation), compared with the requested quarter-note tempo. `tempo_ok` allows the other
  metrical levels a listener may tap (x2, /2, and x3/2, x2/3 in compound meters) — the usual
  "Accuracy 2" of tempo estimation; `tempo_exact_level` does not.
- key: Krumhansl-Schmuckler on the mean CQT chroma, compared with the requested key.
- duration: frames of the master vs the plan (round(duration x rate)), exact.
- loop seam (loops, layers): the jump at the wrap point (last sample → first) and the level
  change across it, against the same statistics at every other position in the loop.
- stems: the delivered stems summed vs the delivered mix (24-bit WAV files read back), in dB.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from activities.controls.normalize import normalize_request
from activities.inference.backend import ModelBackend
from activities.inference.products import render_product
from activities.postprocess.formats import AudioTags
from activities.postprocess.pipeline import MasteringJob, master_files
from activities.postprocess.profiles import PROFILES
from schemas.music import key_name, parse_key
from schemas.request import DEFAULT_PROFILE

ANALYSIS_SR = 22050
TEMPO_TOLERANCE = 0.02
STEMS_TARGET_DB = -60.0
SEAM_LEVEL_DB = 1.5  # how far the loop's end may sit outside the range of its other bar ends
_KS_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KS_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

TEMPOS = (60.0, 75.0, 90.0, 105.0, 120.0, 135.0, 150.0, 165.0, 180.0)
KEYS = ("C major", "A minor", "G major", "E minor", "F major", "D minor", "Bb major", "F# minor")
METERS = ("4/4", "3/4", "6/8", "4/4", "2/4", "5/4")
PRODUCTS = ("track", "loop", "stems", "layers")
DURATIONS_S = {"track": 24.0, "stems": 16.0, "loop": 16.0, "layers": 16.0}


@dataclass
class ControlResult:
    """What was asked and what was measured for one request of the grid."""

    product: str
    tempo_bpm: float
    key: str
    meter: str
    seed: int
    detected_tempo: float
    tempo_ok: bool
    tempo_exact_level: bool
    detected_key: str
    key_ok: bool
    planned_frames: int
    frames: int
    duration_ok: bool
    seam_jump_ratio: float | None = None  # wrap-point jump / 99.9th pct of inner jumps
    seam_level_db: float | None = None  # level change across the wrap
    seam_ok: bool | None = None
    stems_error_db: float | None = None
    stems_ok: bool | None = None
    parts: list[str] = field(default_factory=list)


def grid(n: int, seed: int = 0) -> list[dict[str, object]]:
    """`n` requests cycling through products, tempos, keys and meters. Keys and meters advance
    one extra step after each round of products, so every product meets every key and meter
    (plain cycles of 8 keys and 4 products would pair each product with only two keys)."""
    requests = []
    for i in range(n):
        product = PRODUCTS[i % len(PRODUCTS)]
        shift = i // len(PRODUCTS)
        request: dict[str, object] = {
            "prompt": f"controls eval {i}",
            "tempo_bpm": TEMPOS[i % len(TEMPOS)],
            "key": KEYS[(i + shift) % len(KEYS)],
            "meter": METERS[(i + shift) % len(METERS)],
            "product": product,
            "seed": seed + i,
            "instruments": ["piano", "bass", "drums", "flute"],
            "formats": ["wav24"],
        }
        request["duration_s"] = DURATIONS_S[product]
        requests.append(request)
    return requests


def measure_tempo(y: np.ndarray, sr: int = ANALYSIS_SR, hop: int = 128) -> float:
    """Tempo from the onset envelope's autocorrelation peak, refined to a fraction of a lag."""
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    coarse = float(librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=hop)[0])
    e = env - env.mean()
    ac = np.correlate(e, e, "full")[len(e) - 1 :]
    lag0 = 60.0 * sr / (hop * coarse)
    lo, hi = int(lag0 * 0.94), min(len(ac) - 2, int(np.ceil(lag0 * 1.06)) + 1)
    k = lo + int(np.argmax(ac[lo:hi]))
    left, mid, right = ac[k - 1], ac[k], ac[k + 1]
    denom = left - 2 * mid + right
    shift = 0.5 * (left - right) / denom if denom != 0 else 0.0
    return 60.0 * sr / (hop * (k + shift))


def measure_key(y: np.ndarray, sr: int = ANALYSIS_SR) -> tuple[int, str]:
    """(tonic pitch class, mode) of the best-correlated Krumhansl-Schmuckler profile."""
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr).mean(axis=1)
    scores = [
        (float(np.corrcoef(chroma, np.roll(profile, pc))[0, 1]), pc, mode)
        for pc in range(12)
        for mode, profile in (("major", _KS_MAJOR), ("minor", _KS_MINOR))
    ]
    _, pc, mode = max(scores)
    return pc, mode


def tempo_matches(detected: float, requested: float, meter: str) -> tuple[bool, bool]:
    """(within tolerance at some tappable metrical level, within tolerance at the same level)."""
    num, den = (int(x) for x in meter.split("/"))
    factors = [1.0, 2.0, 0.5]
    if den == 8 and num % 3 == 0:
        factors += [2.0 / 3.0, 1.0 / 3.0, 4.0 / 3.0]  # dotted-quarter pulse and its octaves
    hits = [abs(detected / (requested * f) - 1.0) <= TEMPO_TOLERANCE for f in factors]
    return bool(any(hits)), bool(hits[0])


def seam_stats(loop: np.ndarray, rate: int, beat_samples: float) -> tuple[float, float]:
    """(jump ratio, level step dB) at the wrap point of a loop, each against the same statistic
    inside the loop, so a seam that stands out scores > 1 or > 0 dB:
    - jump ratio: |first sample - last sample| / 99.9th percentile of |sample-to-sample step|;
    - level step: the change of level across the wrap (200 ms after vs 200 ms before) minus the
      range of the changes across every other beat line, 0 when inside that range: the wrap
      must sound like any other beat line, neither a dip (a missing tail) nor a bump.
    """
    x = loop.mean(axis=1).astype(np.float64)
    inner = np.abs(np.diff(x))
    jump_ratio = abs(x[0] - x[-1]) / max(float(np.percentile(inner, 99.9)), 1e-12)
    win = max(1, int(0.2 * rate))
    step = beat_samples
    twice = np.concatenate([x, x])

    def change(b: int) -> float:
        return _rms_db(twice[b : b + win]) - _rms_db(twice[b - win : b])

    lines = [round(k * step) for k in range(1, round(len(x) / step))]
    inner_changes = [change(b) for b in lines if b >= win] or [0.0]
    seam = change(len(x))
    outside = max(min(inner_changes) - seam, seam - max(inner_changes), 0.0)
    return float(jump_ratio), float(outside)


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-9))


def evaluate_request(
    backend: ModelBackend, request: dict[str, object], workdir: Path
) -> ControlResult:
    """Render one request as the platform would and measure the delivered master."""
    _, tokens = normalize_request(request)
    product = render_product(backend, tokens)
    profile = PROFILES[DEFAULT_PROFILE]
    loop_frames = round(tokens.duration_s * profile.sample_rate) if tokens.loop else None
    job = MasteringJob(
        profile=profile, formats=["wav24"],
        tags=AudioTags(title="eval", job_id="eval", model=backend.model_id),
        requested_duration_s=tokens.duration_s, instruments=[i.name for i in tokens.instruments],
        seed=tokens.seed, loop_frames=loop_frames, parts=product.parts,
        link="static" if tokens.product == "layers" else "curve",
        watermark=(b"eval-key", 0x5EED),  # what ships is watermarked: measure that
    )  # fmt: skip
    files = master_files(product.main, product.sample_rate, job, workdir)
    master, rate = sf.read(files.master, dtype="float64", always_2d=True)
    y = librosa.resample(master.mean(axis=1), orig_sr=rate, target_sr=ANALYSIS_SR)
    if tokens.loop:  # a loop is meant to repeat: measure it repeated
        y = np.tile(y, max(1, int(np.ceil(20.0 * ANALYSIS_SR / len(y)))))
    detected = measure_tempo(y)
    tempo_ok, exact = tempo_matches(detected, tokens.tempo_bpm, tokens.meter)
    pc, mode = measure_key(y)
    want_pc, want_mode = parse_key(tokens.key_name)
    planned = round(tokens.duration_s * rate)
    result = ControlResult(
        product=tokens.product, tempo_bpm=tokens.tempo_bpm, key=tokens.key_name,
        meter=tokens.meter, seed=tokens.seed, detected_tempo=round(detected, 2),
        tempo_ok=tempo_ok, tempo_exact_level=exact,
        detected_key=key_name(pc, mode),  # type: ignore[arg-type]
        key_ok=(pc, mode) == (want_pc, want_mode), planned_frames=planned,
        frames=master.shape[0], duration_ok=master.shape[0] == planned,
        parts=[p.name for p in files.parts],
    )  # fmt: skip
    if tokens.loop:
        loops = [master] + [sf.read(p.master, always_2d=True)[0] for p in files.parts]
        beat = 60.0 / tokens.tempo_bpm * rate * (4.0 / tokens.beat_unit)
        stats = [seam_stats(loop, rate, beat) for loop in loops]
        result.seam_jump_ratio = round(max(j for j, _ in stats), 3)
        result.seam_level_db = round(max(lv for _, lv in stats), 2)
        result.seam_ok = bool(
            result.seam_jump_ratio <= 1.0 and result.seam_level_db <= SEAM_LEVEL_DB
        )
    if tokens.product == "stems":
        total = sum(sf.read(p.master, dtype="float64", always_2d=True)[0] for p in files.parts)
        err = np.sqrt(np.mean((total - master) ** 2)) / np.sqrt(np.mean(master**2))
        result.stems_error_db = round(float(20 * np.log10(err + 1e-12)), 1)
        result.stems_ok = bool(result.stems_error_db <= STEMS_TARGET_DB)
    return result


def run_grid(
    backend: ModelBackend,
    n: int,
    seed: int = 0,
    on_result: Callable[[ControlResult], None] | None = None,
) -> list[ControlResult]:
    """Evaluate `n` grid requests; `on_result` is called after each one (progress)."""
    results = []
    for request in grid(n, seed):
        with tempfile.TemporaryDirectory(prefix="tunesmith-eval-") as tmp:
            result = evaluate_request(backend, request, Path(tmp))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def summarize(results: list[ControlResult]) -> dict[str, object]:
    """Pass rates against the targets (tempo ≥ 95 %, key ≥ 90 %, durations and stems 100 %)."""

    def rate(values: list[bool | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return round(sum(vals) / len(vals), 3) if vals else None

    return {
        "requests": len(results),
        "tempo_within_2pct": rate([r.tempo_ok for r in results]),
        "tempo_same_level": rate([r.tempo_exact_level for r in results]),
        "key_match": rate([r.key_ok for r in results]),
        "duration_exact": rate([r.duration_ok for r in results]),
        "loop_seam_ok": rate([r.seam_ok for r in results]),
        "stems_sum_ok": rate([r.stems_ok for r in results]),
        "worst_stems_error_db": max(
            (r.stems_error_db for r in results if r.stems_error_db is not None), default=None
        ),
        "by_product": {
            p: {
                "tempo": rate([r.tempo_ok for r in results if r.product == p]),
                "key": rate([r.key_ok for r in results if r.product == p]),
            }
            for p in PRODUCTS
        },
        "targets": {
            "tempo_within_2pct": 0.95,
            "key_match": 0.90,
            "duration_exact": 1.0,
            "stems_sum_db": STEMS_TARGET_DB,
        },
    }


def as_rows(results: list[ControlResult]) -> list[dict[str, object]]:
    return [asdict(r) for r in results]

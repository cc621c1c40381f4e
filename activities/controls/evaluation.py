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
from schemas.music import parse_key

ANALYSIS_SR = 22050
TEMPO_TOLERANCE = 0.02
STEMS_TARGET_DB = -60.0
_KS_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KS_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

TEMPOS = (60.0, 75.0, 90.0, 105.0, 120.0, 135.0, 150.0, 165.0, 180.0)
KEYS = ("C major", "A minor", "G major", "E minor", "F major", "D minor", "Bb major", "F# minor")
METERS = ("4/4", "3/4", "6/8", "4/4", "2/4", "5/4")
PRODUCTS = ("track", "loop", "stems", "layers")


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
    """`n` requests cycling through tempos, keys, meters and products (co-prime cycles, so
    every product meets many tempos, keys and meters)."""
    requests = []
    for i in range(n):
        product = PRODUCTS[i % len(PRODUCTS)]
        request: dict[str, object] = {
            "prompt": f"controls eval {i}",
            "tempo_bpm": TEMPOS[i % len(TEMPOS)],
            "key": KEYS[i % len(KEYS)],
            "meter": METERS[i % len(METERS)],
            "product": product,
            "seed": seed + i,
            "instruments": ["piano", "bass", "drums", "flute"],
            "formats": ["wav24"],
        }
        request["duration_s"] = {"track": 20.0, "stems": 16.0, "loop": 12.0, "layers": 8.0}[product]
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
    return any(hits), hits[0]


def seam_stats(loop: np.ndarray, rate: int) -> tuple[float, float]:
    """(jump ratio, level change dB) at the wrap point of a loop, each relative to the loop's
    own inner statistics: a seam that stands out has a jump ratio > 1 or a large level step."""
    x = loop.mean(axis=1).astype(np.float64)
    inner = np.abs(np.diff(x))
    wrap = abs(x[0] - x[-1])
    jump_ratio = wrap / max(float(np.percentile(inner, 99.9)), 1e-12)
    win = max(1, int(0.02 * rate))
    level = 20 * np.log10((np.sqrt(np.mean(x[:win] ** 2)) + 1e-9)
                          / (np.sqrt(np.mean(x[-win:] ** 2)) + 1e-9))  # fmt: skip
    return float(jump_ratio), float(level)


def _level_steps_db(x: np.ndarray, win: int) -> np.ndarray:
    blocks = x[: len(x) // win * win].reshape(-1, win)
    rms_db = 20 * np.log10(np.sqrt(np.mean(blocks**2, axis=1)) + 1e-9)
    return np.abs(np.diff(rms_db))


def evaluate_request(
    backend: ModelBackend, request: dict[str, object], workdir: Path
) -> ControlResult:
    """Render one request as the platform would and measure the delivered master."""
    _, tokens = normalize_request(request)
    product = render_product(backend, tokens)
    profile = PROFILES["streaming"]
    loop_frames = round(tokens.duration_s * profile.sample_rate) if tokens.loop else None
    job = MasteringJob(
        profile=profile, formats=["wav24"],
        tags=AudioTags(title="eval", job_id="eval", model=backend.model_id),
        requested_duration_s=tokens.duration_s, instruments=[i.name for i in tokens.instruments],
        seed=tokens.seed, loop_frames=loop_frames, parts=product.parts,
        link="static" if tokens.product == "layers" else "curve",
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
        detected_key=f"{librosa.midi_to_note(pc, octave=False)} {mode}",
        key_ok=(pc, mode) == (want_pc, want_mode), planned_frames=planned,
        frames=master.shape[0], duration_ok=master.shape[0] == planned,
        parts=[p.name for p in files.parts],
    )  # fmt: skip
    if tokens.loop:
        loops = [master] + [sf.read(p.master, always_2d=True)[0] for p in files.parts]
        stats = [seam_stats(loop, rate) for loop in loops]
        worst_jump = max(j for j, _ in stats)
        worst_level = max(abs(lv) for _, lv in stats)
        inner_steps = _level_steps_db(master.mean(axis=1), max(1, int(0.02 * rate)))
        result.seam_jump_ratio = round(worst_jump, 3)
        result.seam_level_db = round(worst_level, 2)
        result.seam_ok = worst_jump <= 1.0 and worst_level <= float(np.percentile(inner_steps, 99))
    if tokens.product == "stems":
        total = sum(sf.read(p.master, dtype="float64", always_2d=True)[0] for p in files.parts)
        err = np.sqrt(np.mean((total - master) ** 2)) / np.sqrt(np.mean(master**2))
        result.stems_error_db = round(float(20 * np.log10(err + 1e-12)), 1)
        result.stems_ok = result.stems_error_db <= STEMS_TARGET_DB
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

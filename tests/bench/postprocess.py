"""Post-processing speed on one core, in a warm worker (`python -m tests.bench.postprocess`).

What the `postprocess` activity does with 60 s of draft audio, minus the store round trips:
master (high-pass, resample, loudness, true-peak limiter), watermark, wav24 + mp3 with tags,
C2PA signing of both, preview clip, overview PNG, features and quality checks.

Run in a fresh interpreter: the process first does what a CPU worker does when it starts
(`activities.postprocess.warmup.warm_cpu_steps`, when it exists), then times the first job
(what a job pays for anything left cold) and the median of the following ones (warm), as
wall and CPU time (the CPU figure is what a shared machine's noise changes least).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REQUEST = {"prompt": "bench groove", "duration_s": 60.0, "tempo_bpm": 120.0, "key": "A minor",
           "instruments": ["piano", "bass", "drums"], "seed": 5}  # fmt: skip


def _render(seconds: float) -> tuple[np.ndarray, int]:
    from activities.controls.normalize import normalize_request
    from activities.inference.draft import DraftBackend

    _, tokens = normalize_request({**REQUEST, "duration_s": seconds})
    raw = DraftBackend().generate(tokens)
    return raw.samples, raw.sample_rate


def _warm_worker() -> str:
    """What the CPU worker does at start-up before it polls (see workers/runtime.py)."""
    try:
        from activities.postprocess.warmup import warm_cpu_steps
    except ImportError:  # before the warm-up existed: the worker only loaded the embedding
        from activities.postprocess.embedding import embedding_extractor

        embedding_extractor()
        return "embedding extractor only"
    warm_cpu_steps()
    return "warm_cpu_steps()"


def postprocess_once(raw: np.ndarray, rate: int, seconds: float, formats: list[str],
                     identity: object, workdir: Path) -> tuple[float, float]:  # fmt: skip
    """One job's post-processing (no uploads); returns (wall, CPU) seconds."""
    from activities.disclosure.c2pa_signing import sign_file
    from activities.postprocess.formats import AudioTags
    from activities.postprocess.pipeline import MasteringJob, master_files
    from activities.postprocess.profiles import PROFILES

    job = MasteringJob(profile=PROFILES["streaming"], formats=formats,  # type: ignore[arg-type]
                       tags=AudioTags("bench", "bench", "draft"), requested_duration_s=seconds,
                       instruments=["piano"], seed=1,
                       watermark=(b"bench-watermark-key", 0x1234ABCD))  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    files = master_files(raw, rate, job, workdir)
    for fmt, path in dict.fromkeys(files.deliverables):
        if fmt in ("wav24", "wav16", "flac", "mp3"):
            sign_file(path, path, identity=identity, title="bench", job_id="bench",  # type: ignore[arg-type]
                      model_id="draft", model_version="1",
                      assertions={"watermark": files.watermark})  # fmt: skip
    return time.perf_counter() - started, time.process_time() - cpu


def bench_postprocess(seconds: float = 60.0, repeats: int = 3) -> None:
    from activities.disclosure.c2pa_signing import ensure_signing_identity

    raw, rate = _render(seconds)
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(original)})
    try:
        started, cpu = time.perf_counter(), time.process_time()
        how = _warm_worker()
        warm_s, warm_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        print(f"post-processing {seconds:g} s of draft audio, one core, watermark + C2PA "
              f"(worker start-up warm-up: {how}, {warm_s:.2f} s, "
              f"CPU {warm_cpu_s:.2f} s):")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            identity = ensure_signing_identity(Path(tmp) / "c2pa")
            for formats in (["wav24", "mp3"], ["wav24", "wav16", "flac", "mp3", "opus"]):
                times = []
                for i in range(repeats + 1):
                    work = Path(tmp) / f"{'-'.join(formats)}-{i}"
                    work.mkdir()
                    times.append(postprocess_once(raw, rate, seconds, formats, identity, work))
                (first, first_cpu), warm = times[0], statistics.median(t[0] for t in times[1:])
                warm_cpu = statistics.median(t[1] for t in times[1:])
                print(f"  formats {','.join(formats):<28} first job {first:6.2f} s "
                      f"(CPU {first_cpu:5.2f} s)   warm median {warm:6.2f} s "
                      f"(CPU {warm_cpu:5.2f} s)  → realtime factor {seconds / warm:.0f}x, "
                      f"on CPU time {seconds / warm_cpu:.0f}x")  # fmt: skip
        print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    finally:
        os.sched_setaffinity(0, original)


def profile_postprocess(seconds: float = 60.0) -> None:
    """A pyinstrument profile of one warm job (`--profile`; needs pyinstrument)."""
    from pyinstrument import Profiler

    from activities.disclosure.c2pa_signing import ensure_signing_identity

    raw, rate = _render(seconds)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    _warm_worker()
    with tempfile.TemporaryDirectory() as tmp:
        identity = ensure_signing_identity(Path(tmp) / "c2pa")
        (Path(tmp) / "w").mkdir()
        postprocess_once(raw, rate, seconds, ["wav24", "mp3"], identity, Path(tmp) / "w")
        (Path(tmp) / "p").mkdir()
        profiler = Profiler(interval=0.001)
        with profiler:
            postprocess_once(raw, rate, seconds, ["wav24", "mp3"], identity, Path(tmp) / "p")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    import sys

    if "--profile" in sys.argv:
        profile_postprocess()
    else:
        bench_postprocess()

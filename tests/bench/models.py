"""Model backends on the tiny debug checkpoints, CPU: realtime factor, peak memory, batching.

    .venv/bin/python -m tests.bench.models    (needs the `models` extra: `make bench-models`)

Per backend: realtime factor (render seconds / audio seconds, lower is faster) of a single
render, the peak RSS growth during it (sampled every 5 ms: torch allocations are invisible
to tracemalloc), and throughput (audio seconds per wall second) of 4 requests rendered one by
one vs as one `generate_batch` of 4. Tiny random models measure the pipeline's overheads
(Python, sampling loop, codec, diffusion sampler), not a real model's compute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil


class PeakRss:
    """Highest RSS of this process while the block runs, minus RSS at entry (bytes)."""

    def __enter__(self) -> PeakRss:
        self._proc = psutil.Process()
        self.base = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_backend(registry: Any, model_id: str, duration_s: float, repeats: int) -> dict[str, Any]:
    from tests.models.conftest import make_tokens

    backend = registry.get(model_id)
    tokens = [make_tokens(model_id=model_id, duration_s=duration_s, seed=s) for s in range(4)]
    backend.generate(tokens[0])  # warm-up: first-call allocations, lazy imports
    rtfs = []
    with PeakRss() as mem:
        for i in range(repeats):
            rtfs.append(timed(lambda i=i: backend.generate(tokens[i % 4])) / duration_s)
    single = timed(lambda: [backend.generate(t) for t in tokens])
    batched = timed(lambda: backend.generate_batch(tokens))
    return {
        "model": model_id,
        "duration_s": duration_s,
        "rtf_median": statistics.median(rtfs),
        "peak_rss_growth_mb": mem.growth_mb,
        "peak_rss_mb": mem.peak / 2**20,
        "throughput_batch1": 4 * duration_s / single,
        "throughput_batch4": 4 * duration_s / batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, auto")
    args = parser.parse_args()

    import torch

    from activities.inference.musicgen.debug import build_debug_musicgen
    from activities.inference.registry import ModelRegistry
    from activities.inference.stable_audio.debug import build_debug_stable_audio
    from activities.models.settings import ModelSettings
    from infra.settings import Settings

    if args.threads:
        torch.set_num_threads(args.threads)
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, device {args.device} ({card})")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tunesmith-bench-models-") as tmp:
        root = Path(tmp)
        build_debug_musicgen(root / "musicgen-debug")
        build_debug_musicgen(root / "musicgen-melody-debug", melody=True)
        build_debug_stable_audio(root / "stable-audio-debug")
        served = "musicgen-debug,musicgen-melody-debug,stable-audio-debug"
        ms = ModelSettings(models_dir=root, served_models=served, torch_device=args.device)
        registry = ModelRegistry(Settings(), ms)
        # MusicGen: 4 s = two 2 s windows (continuation included); Stable Audio: 2 s, 8 steps.
        plan = [
            ("musicgen-debug", 4.0),
            ("musicgen-melody-debug", 4.0),
            ("stable-audio-debug", 2.0),
        ]
        rows = [bench_backend(registry, m, d, args.repeats) for m, d in plan]
    print(f"\n{'model':<24}{'audio s':>8}{'RTF':>8}{'peak RSS +MB':>14}{'RSS MB':>8}"
          f"{'batch1 s/s':>12}{'batch4 s/s':>12}{'speed-up':>10}")  # fmt: skip
    for r in rows:
        speedup = r["throughput_batch4"] / r["throughput_batch1"]
        print(f"{r['model']:<24}{r['duration_s']:>8.1f}{r['rtf_median']:>8.3f}"
              f"{r['peak_rss_growth_mb']:>14.1f}{r['peak_rss_mb']:>8.0f}{r['throughput_batch1']:>12.2f}"
              f"{r['throughput_batch4']:>12.2f}{speedup:>9.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

"""`make bench`: draft backend speed and orchestration overhead, measured side by side in one run.

Prints:
1. Draft backend realtime factor on one core (30 s piano/bass/drums, several seeds).
   Then post-processing of 60 s in a warm worker (`python -m tests.bench.postprocess`).
2. Per-job wall time of the same pipeline steps called directly in-process vs run as a
   GenerateTrack workflow on the embedded stack, with the dev server stock and tuned, and the
   ratios between them; plus where the workflow's time goes (task wait in the history).
3. Similarity query time with 1k and 10k catalog recordings, median and p95: fingerprint
   (inverted index) and melody (window index + exact scoring), side by side
   (`python -m tests.bench.similarity` runs only this part), and the whole `check_similarity`
   of a 30 s master at 1k recordings (`python -m tests.bench.similarity --1k`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.controls.activity import ControlActivities
from activities.controls.normalize import normalize_request
from activities.inference.activity import InferenceActivities
from activities.inference.draft import DraftBackend
from activities.inference.registry import ModelRegistry
from activities.postprocess.activity import PostprocessActivities
from activities.publish.activity import PublishActivities
from activities.similarity.activity import SimilarityActivities
from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import (
    CheckSimilarityInput,
    GenerateAudioInput,
    NormalizeInput,
    PostprocessInput,
    PublishInput,
    ReviewState,
)
from tests.bench.noop_pipeline import measure_noop_pipeline
from tests.bench.similarity import bench_similarity
from tests.conftest import make_settings
from tunesmith import Client, GenerationRequest

REQUEST = {"prompt": "bench groove", "duration_s": 10.0, "tempo_bpm": 120.0, "key": "A minor",
           "instruments": ["piano", "bass", "drums"], "seed": 5}  # fmt: skip


def bench_draft(seeds: int) -> None:
    """Realtime factor of the draft backend pinned to one core."""
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(original)})
    try:
        backend = DraftBackend()
        times = []
        for seed in range(seeds):
            _, tokens = normalize_request({**REQUEST, "duration_s": 30.0, "seed": seed})
            started = time.perf_counter()
            backend.generate(tokens)
            times.append(time.perf_counter() - started)
    finally:
        os.sched_setaffinity(0, original)
    med = statistics.median(times)
    print(f"draft backend, 30 s piano/bass/drums, one core, {seeds} seeds:")
    print(f"  render median {med * 1000:.0f} ms  → realtime factor {30.0 / med:.0f}x")


def bench_postprocess() -> None:
    """Post-processing of 60 s on one core in a warm worker (`tests/bench/postprocess.py`), in
    a fresh interpreter so the worker's start-up warm-up and the first job are measured too."""
    import subprocess
    import sys

    print()
    subprocess.run([sys.executable, "-m", "tests.bench.postprocess"], check=True)


async def direct_pipeline(stack: LocalStack, registry: ModelRegistry, db: Database) -> float:
    """The same activity code as the workflow, called in-process one after another."""
    store = ObjectStore(stack.settings)
    env = ActivityEnvironment()
    job_id = f"bench-direct-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    norm = await env.run(ControlActivities(db, store).normalize_controls,
                         NormalizeInput(job_id=job_id, request=REQUEST))  # fmt: skip
    gen = await env.run(InferenceActivities(registry, store, db).generate_audio,
                        GenerateAudioInput(job_id=job_id, tokens=norm.tokens))  # fmt: skip
    post = await env.run(
        PostprocessActivities(store, db).postprocess,
        PostprocessInput(job_id=job_id, raw=gen.raw, requested_duration_s=norm.tokens.duration_s,
                         title=norm.tokens.prompt, model=gen.model_ref, seed=norm.tokens.seed,
                         instruments=[i.name for i in norm.tokens.instruments]),
    )  # fmt: skip
    sim = await env.run(
        SimilarityActivities(store, db).check_similarity,
        CheckSimilarityInput(job_id=job_id, master=post.master, measurements=post.measurements,
                             requested_duration_s=norm.tokens.duration_s, quality=post.quality),
    )  # fmt: skip
    from datetime import UTC, datetime

    await env.run(
        PublishActivities(store, db, 10).publish,
        PublishInput(job_id=job_id, tokens=norm.tokens, request=norm.request,
                     request_sha256=norm.request_sha256, generated=gen, postprocessed=post,
                     similarity=sim, review_state=ReviewState.AUTO_APPROVED,
                     published_at=datetime.now(UTC)),
    )  # fmt: skip
    return time.perf_counter() - started


async def workflow_pipeline(client: Client) -> tuple[float, float]:
    """One GenerateTrack run; returns (wall seconds, seconds tasks waited scheduled→started)."""
    started = time.perf_counter()
    handle = await client.submit(GenerationRequest.model_validate(REQUEST))
    await handle.result()
    wall = time.perf_counter() - started
    history = await client.temporal.get_workflow_handle(handle.job_id).fetch_history()
    scheduled: dict[int, float] = {}
    waited = 0.0
    for event in history.events:
        t = event.event_time.ToDatetime().timestamp()
        for kind in ("workflow_task", "activity_task"):
            if event.HasField(f"{kind}_scheduled_event_attributes"):
                scheduled[event.event_id] = t
            if event.HasField(f"{kind}_started_event_attributes"):
                attrs = getattr(event, f"{kind}_started_event_attributes")
                waited += t - scheduled.get(attrs.scheduled_event_id, t)
    return wall, waited


async def bench_orchestration(stack: LocalStack, jobs: int, direct: bool) -> dict[str, float]:
    client = await Client.connect(stack.settings)
    db = await Database.open(stack.settings)
    try:
        # Pure orchestration first, while only the in-process no-op workers poll the queues.
        noop = await measure_noop_pipeline(client, jobs * 3)
        for kind in ("cpu", "gpu"):
            stack.start_worker(kind)
        await workflow_pipeline(client)  # warm up workers and connections
        walls, waits = [], []
        for _ in range(jobs):
            wall, waited = await workflow_pipeline(client)
            walls.append(wall)
            waits.append(waited)
        out = {"workflow": statistics.median(walls), "waited": statistics.median(waits),
               "noop": noop}  # fmt: skip
        if direct:
            registry = ModelRegistry(stack.settings)
            await direct_pipeline(stack, registry, db)  # warm the synth
            out["direct"] = statistics.median(
                [await direct_pipeline(stack, registry, db) for _ in range(jobs)]
            )
        return out
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=8, help="jobs per configuration")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    bench_draft(args.seeds)
    bench_postprocess()
    results: dict[str, dict[str, float]] = {}
    for name, tuned in (("stock dev server", False), ("tuned dev server", True)):
        home = Path(tempfile.mkdtemp(prefix="tunesmith-bench-"))
        stack = LocalStack(make_settings(home, heartbeat_timeout_s=15.0), tune_temporal=tuned)
        try:
            stack.up(workers=False, log=lambda _m: None)
            results[name] = asyncio.run(bench_orchestration(stack, args.jobs, direct=tuned))
        finally:
            stack.destroy(log=lambda _m: None)

    direct = results["tuned dev server"]["direct"]
    print(f"\npipeline for one 10 s draft job, median of {args.jobs} (same machine, same run):")
    print(f"  steps called directly in-process      {direct * 1000:7.0f} ms   1.00x")
    for name, r in results.items():
        overhead = 1000 * (r["workflow"] - direct)
        print(f"  GenerateTrack workflow, {name:<16}{r['workflow'] * 1000:7.0f} ms   "
              f"{r['workflow'] / direct:.2f}x   (overhead {overhead:5.0f} ms,"
              f" tasks waiting for a worker {r['waited'] * 1000:4.0f} ms)")  # fmt: skip
    stock, tuned_r = results["stock dev server"], results["tuned dev server"]
    print(f"  tuned vs stock overhead: {(stock['workflow'] - direct) * 1000:.0f} ms → "
          f"{(tuned_r['workflow'] - direct) * 1000:.0f} ms")  # fmt: skip
    print(
        f"\npure orchestration: GenerateTrack with no-op steps (6 activities, 2 queues), "
        f"median of {args.jobs * 3}:"
    )
    print(f"  stock dev server {stock['noop'] * 1000:6.0f} ms   "
          f"tuned {tuned_r['noop'] * 1000:6.0f} ms   "
          f"ratio {stock['noop'] / tuned_r['noop']:.1f}x")  # fmt: skip

    similarity_section()


async def _similarity_on(stack: LocalStack, sizes: tuple[int, ...]) -> None:
    db = await Database.open(stack.settings)
    try:
        await bench_similarity(db, sizes=sizes)
    finally:
        await db.close()


def similarity_section(sizes: tuple[int, ...] = (1_000, 10_000)) -> None:
    print("\nsimilarity: catalog lookups, 30 s queries, synthetic fingerprints and melodies:")
    home = Path(tempfile.mkdtemp(prefix="tunesmith-bench-"))
    stack = LocalStack(make_settings(home))
    try:
        stack.up(workers=False, log=lambda _m: None)
        asyncio.run(_similarity_on(stack, sizes))
    finally:
        stack.destroy(log=lambda _m: None)


if __name__ == "__main__":
    main()

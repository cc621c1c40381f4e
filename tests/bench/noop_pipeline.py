"""The real GenerateTrack workflow with no-op stand-in activities: pure orchestration cost.

Stand-ins are registered under the real activity names on the real task queues (CPU worker with
the workflow, a separate GPU worker), so every workflow task, activity dispatch, search-attribute
upsert and payload conversion is the production one; only the work inside the steps is gone.
"""

from __future__ import annotations

import statistics
import time
import uuid

from temporalio import activity
from temporalio.worker import Worker

from activities.controls.normalize import normalize_request
from schemas.jobs import (
    AudioMeasurements,
    AudioRef,
    CheckSimilarityInput,
    CheckSimilarityOutput,
    GenerateAudioInput,
    GenerateAudioOutput,
    NormalizeInput,
    NormalizeOutput,
    PostprocessInput,
    PostprocessOutput,
    PublishInput,
    PublishOutput,
    ReviewRecommendation,
)
from schemas.names import CPU_TASK_QUEUE, GPU_TASK_QUEUE
from tunesmith import Client, GenerationRequest
from workflows.generate_track import GenerateTrack

_REF = AudioRef(uri="s3://bench/x.wav", sha256="0" * 64, sample_rate=44100, channels=2,
                duration_s=10.0, format="wav", size_bytes=1)  # fmt: skip


@activity.defn(name="normalize_controls")
async def normalize_controls(inp: NormalizeInput) -> NormalizeOutput:
    request, tokens = normalize_request(inp.request)
    return NormalizeOutput(tokens=tokens, request=request.model_dump(mode="json"),
                           request_sha256=request.sha256())  # fmt: skip


@activity.defn(name="generate_audio")
async def generate_audio(inp: GenerateAudioInput) -> GenerateAudioOutput:
    return GenerateAudioOutput(raw=_REF, model_id="draft", model_version="noop", render_seconds=0)


@activity.defn(name="postprocess")
async def postprocess(inp: PostprocessInput) -> PostprocessOutput:
    m = AudioMeasurements(
        integrated_lufs=-14, true_peak_dbtp=-1.1, duration_s=10, sample_rate=44100
    )
    return PostprocessOutput(master=_REF, compressed=_REF.model_copy(update={"format": "mp3"}),
                             measurements=m, postprocess_version="noop")  # fmt: skip


@activity.defn(name="check_similarity")
async def check_similarity(inp: CheckSimilarityInput) -> CheckSimilarityOutput:
    rec = ReviewRecommendation(decision="auto_approve", policy_version="noop")
    return CheckSimilarityOutput(fingerprint_sha256="", fingerprint_items=0, recommendation=rec)


@activity.defn(name="publish")
async def publish(inp: PublishInput) -> PublishOutput:
    return PublishOutput(artifacts={}, provenance_uri="s3://bench/p.json", charge_cents=0)


async def measure_noop_pipeline(client: Client, jobs: int) -> float:
    """Median wall seconds of one GenerateTrack run with no-op steps (after warm-up)."""
    cpu = Worker(
        client.temporal,
        task_queue=CPU_TASK_QUEUE,
        workflows=[GenerateTrack],
        activities=[normalize_controls, postprocess, check_similarity, publish],
    )
    gpu = Worker(client.temporal, task_queue=GPU_TASK_QUEUE, activities=[generate_audio])
    request = GenerationRequest(prompt="noop", duration_s=10.0)
    walls = []
    async with cpu, gpu:
        for i in range(jobs + 3):  # the first runs warm caches and connections
            started = time.perf_counter()
            handle = await client.submit(request, idempotency_key=f"noop-{uuid.uuid4()}")
            await handle.result()
            if i >= 3:
                walls.append(time.perf_counter() - started)
    return statistics.median(walls)

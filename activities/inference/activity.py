"""The `generate_audio` activity (GPU queue): render raw audio and store it, heartbeating."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audio_io import CONTENT_TYPES, describe, write_wav
from activities.inference.failures import classify
from activities.inference.products import render_product
from activities.inference.registry import ModelRegistry
from infra.db import Database
from infra.store import ObjectStore
from schemas import names
from schemas.errors import BACKEND_LIMIT
from schemas.jobs import AudioRef, GenerateAudioInput, GenerateAudioOutput, ModelRef


def raw_key(job_id: str, part: str | None = None, *, preview: bool = False) -> str:
    """Object key of a job's raw render (or one part of it): job id + step, never the attempt."""
    name = "raw" if part is None else "part-" + part
    return f"{job_id}/generate_audio/{'draft-preview-' if preview else ''}{name}.wav"


@contextlib.asynccontextmanager
async def _heartbeating(detail: dict[str, object], every_s: float = 1.0) -> AsyncIterator[None]:
    """Heartbeat `detail` every `every_s` seconds while the body runs (uploads, writes)."""

    async def beat() -> None:
        while True:
            activity.heartbeat(detail)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class InferenceActivities:
    """The GPU queue's activities, bound to the worker's warm model registry."""

    def __init__(
        self, registry: ModelRegistry, store: ObjectStore, db: Database, max_concurrent: int = 1
    ) -> None:
        self.registry = registry
        self.store = store
        self.db = db
        # One limit for the whole GPU, shared by the workers of every model it serves.
        self._gpu = asyncio.Semaphore(max_concurrent)

    @activity.defn(name=names.GENERATE_AUDIO)
    async def generate_audio(self, inp: GenerateAudioInput) -> GenerateAudioOutput:
        """Render `inp.tokens` with the requested model and upload the raw WAV.

        Heartbeats `{"stage": "generating", "progress": f}` while rendering; a retry after a
        worker crash renders again (deterministic per seed) and overwrites the same object key.
        The job row then records the stage the workflow named (`inp.next_stage`).
        """
        tokens = inp.tokens
        try:
            backend = await asyncio.to_thread(self.registry.get, tokens.model_id)
            weights_sha256 = await asyncio.to_thread(self.registry.weights_hash, tokens.model_id)
        except Exception as exc:  # unknown model, missing weights, a broken checkpoint
            raise classify(exc, model_id=tokens.model_id) from exc
        if tokens.duration_s > backend.max_duration_s:
            raise ApplicationError(
                f"{tokens.duration_s:g} s is over {backend.model_id}'s limit of "
                f"{backend.max_duration_s:g} s",
                type=BACKEND_LIMIT,
                non_retryable=True,
            )
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # heartbeat() needs the activity's context

        def progress(fraction: float) -> None:
            detail = {"stage": "generating", "progress": round(fraction, 3)}
            loop.call_soon_threadsafe(activity.heartbeat, detail, context=ctx)

        async with _heartbeating({"stage": "waiting for the GPU", "progress": 0.0}):
            await self._gpu.acquire()
        try:
            activity.heartbeat({"stage": "generating", "progress": 0.0})
            started = time.perf_counter()
            try:
                product = await asyncio.to_thread(render_product, backend, tokens, progress)
            except Exception as exc:
                # Typed: invalid conditioning never retries; OOM and crashes do (see failures).
                activity.logger.warning("generation failed: %r", exc)
                raise classify(exc, model_id=tokens.model_id) from exc
            render_seconds = time.perf_counter() - started
        finally:
            self._gpu.release()

        # A long render is ~160 MB of WAV: keep heartbeating while it is written and uploaded,
        # or the heartbeat timeout would declare this worker dead and render it all again.
        def store_wav(samples: object, key: str, path: Path) -> AudioRef:
            write_wav(path, samples, product.sample_rate)  # type: ignore[arg-type]
            uri = self.store.put_file(
                self.store.settings.raw_bucket, key, path, CONTENT_TYPES["wav"]
            )
            return describe(path, uri, "wav")

        parts: dict[str, AudioRef] = {}
        with tempfile.TemporaryDirectory(prefix="tunesmith-gen-") as tmp:
            async with _heartbeating({"stage": "uploading", "progress": 1.0}):
                ref = await asyncio.to_thread(
                    store_wav,
                    product.main,
                    raw_key(inp.job_id, preview=inp.preview),
                    Path(tmp) / "raw.wav",
                )
                for name, samples in product.parts.items():
                    parts[name] = await asyncio.to_thread(
                        store_wav,
                        samples,
                        raw_key(inp.job_id, name, preview=inp.preview),
                        Path(tmp) / f"{name}.wav",
                    )
        if inp.preview:
            await self.db.upsert_artifact(inp.job_id, "draft_preview", **ref.model_dump())
            await self.db.enqueue_webhook(
                inp.job_id, event="job.draft_ready",
                payload={"job_id": inp.job_id, "draft_preview": ref.uri,
                         "model": ModelRef(id=backend.model_id,
                                           version=backend.model_version).label},
            )  # fmt: skip
            return GenerateAudioOutput(raw=ref, model_id=backend.model_id,
                                       model_version=backend.model_version,
                                       render_seconds=render_seconds)  # fmt: skip
        await self.db.upsert_artifact(inp.job_id, "raw", **ref.model_dump())
        for name, part_ref in parts.items():
            await self.db.upsert_artifact(inp.job_id, f"raw_part_{name}", **part_ref.model_dump())
        await self.db.set_stage(
            inp.job_id, inp.next_stage.value, model_version=backend.model_version
        )
        return GenerateAudioOutput(
            raw=ref,
            model_id=backend.model_id,
            model_version=backend.model_version,
            render_seconds=render_seconds,
            parts=parts,
            main_part=product.main_name,
            weights_sha256=weights_sha256,
        )

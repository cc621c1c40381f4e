"""The `generate_audio` activity (GPU queue): render raw audio and store it, heartbeating."""

from __future__ import annotations

import asyncio
import contextvars
import tempfile
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audio_io import CONTENT_TYPES, describe, write_wav
from activities.inference.backend import UnsupportedControlsError
from activities.inference.registry import ModelRegistry, UnknownModelError
from infra.db import Database
from infra.store import ObjectStore
from schemas.errors import BACKEND_LIMIT, INVALID_REQUEST, UNKNOWN_MODEL
from schemas.jobs import GenerateAudioInput, GenerateAudioOutput


def raw_key(job_id: str) -> str:
    """Object key of a job's raw render: job id + step, never the attempt."""
    return f"{job_id}/generate_audio/raw.wav"


class InferenceActivities:
    """The GPU queue's activities, bound to the worker's warm model registry."""

    def __init__(self, registry: ModelRegistry, store: ObjectStore, db: Database) -> None:
        self.registry = registry
        self.store = store
        self.db = db

    @activity.defn(name="generate_audio")
    async def generate_audio(self, inp: GenerateAudioInput) -> GenerateAudioOutput:
        """Render `inp.tokens` with the requested model and upload the raw WAV.

        Heartbeats `{"stage": "generating", "progress": f}` while rendering; a retry after a
        worker crash renders again (deterministic per seed) and overwrites the same object key.
        """
        tokens = inp.tokens
        try:
            backend = await asyncio.to_thread(self.registry.get, tokens.model_id)
        except UnknownModelError as exc:
            raise ApplicationError(str(exc), type=UNKNOWN_MODEL) from None
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

        activity.heartbeat({"stage": "generating", "progress": 0.0})
        started = time.perf_counter()
        try:
            audio = await asyncio.to_thread(backend.generate, tokens, progress)
        except UnsupportedControlsError as exc:
            # The backend refuses these controls; rendering them again cannot succeed.
            raise ApplicationError(str(exc), type=INVALID_REQUEST, non_retryable=True) from None
        render_seconds = time.perf_counter() - started

        # A long render is ~160 MB of WAV: keep heartbeating while it is written and uploaded,
        # or the heartbeat timeout would declare this worker dead and render it all again.
        with tempfile.TemporaryDirectory(prefix="tunesmith-gen-") as tmp:
            path = Path(tmp) / "raw.wav"
            activity.heartbeat({"stage": "writing", "progress": 1.0})
            await asyncio.to_thread(write_wav, path, audio.samples, audio.sample_rate)
            activity.heartbeat({"stage": "uploading", "progress": 1.0})
            uri = await asyncio.to_thread(
                self.store.put_file,
                self.store.settings.raw_bucket,
                raw_key(inp.job_id),
                path,
                CONTENT_TYPES["wav"],
            )
            activity.heartbeat({"stage": "hashing", "progress": 1.0})
            ref = await asyncio.to_thread(describe, path, uri, "wav")
        await self.db.upsert_artifact(inp.job_id, "raw", **ref.model_dump())
        await self.db.set_stage(inp.job_id, "postprocessing", model_version=backend.model_version)
        return GenerateAudioOutput(
            raw=ref,
            model_id=backend.model_id,
            model_version=backend.model_version,
            render_seconds=render_seconds,
        )

"""The `postprocess` activity (CPU queue): master to the delivery loudness, write WAV + MP3."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audio_io import CONTENT_TYPES, describe, read_audio, write_audio
from activities.postprocess.loudness import POSTPROCESS_VERSION, normalize_loudness
from activities.postprocess.quality import assess_quality
from infra.db import Database
from infra.store import ObjectStore
from schemas.jobs import (
    AudioMeasurements,
    AudioRef,
    PostprocessInput,
    PostprocessOutput,
    QualityReport,
)


def master_key(job_id: str, fmt: str) -> str:
    return f"{job_id}/postprocess/master.{fmt}"


class PostprocessActivities:
    def __init__(self, store: ObjectStore, db: Database) -> None:
        self.store = store
        self.db = db

    def _master(
        self, inp: PostprocessInput, tmp: Path
    ) -> tuple[AudioRef, AudioRef, AudioMeasurements, QualityReport]:
        raw = self.store.download(inp.raw.uri, tmp / "raw.wav")
        samples, sample_rate = read_audio(raw)
        try:
            result = normalize_loudness(
                samples, sample_rate, target_lufs=inp.target_lufs, ceiling_dbtp=inp.true_peak_dbtp
            )
        except ValueError as exc:
            # Silent output cannot be mastered; another attempt would render the same silence.
            raise ApplicationError(str(exc), type="UnmasterableAudio", non_retryable=True) from None
        refs = []
        for fmt in ("wav", "mp3"):
            path = tmp / f"master.{fmt}"
            write_audio(path, result.samples, sample_rate, fmt=fmt)
            bucket = self.store.settings.raw_bucket
            uri = self.store.put_file(bucket, master_key(inp.job_id, fmt), path, CONTENT_TYPES[fmt])
            refs.append(describe(path, uri, fmt))
        measurements = AudioMeasurements(
            integrated_lufs=round(result.integrated_lufs, 2),
            true_peak_dbtp=round(result.true_peak_dbtp, 2),
            duration_s=result.samples.shape[0] / sample_rate,
            sample_rate=sample_rate,
        )
        quality = assess_quality(
            samples,
            result.samples,
            sample_rate,
            requested_duration_s=inp.requested_duration_s,
            integrated_lufs=result.integrated_lufs,
            target_lufs=inp.target_lufs,
        )
        return refs[0], refs[1], measurements, quality

    @activity.defn(name="postprocess")
    async def postprocess(self, inp: PostprocessInput) -> PostprocessOutput:
        """Loudness-normalize the raw render and store the masters (keys fixed per job)."""
        with tempfile.TemporaryDirectory(prefix="tunesmith-post-") as tmp:
            wav, mp3, measured, quality = await asyncio.to_thread(self._master, inp, Path(tmp))
        loudness = {"integrated_lufs": measured.integrated_lufs,
                    "true_peak_dbtp": measured.true_peak_dbtp}  # fmt: skip
        await self.db.upsert_artifact(inp.job_id, "master_wav", **wav.model_dump(), **loudness)
        await self.db.upsert_artifact(inp.job_id, "master_mp3", **mp3.model_dump(), **loudness)
        await self.db.set_stage(inp.job_id, "checking")
        return PostprocessOutput(
            master=wav,
            compressed=mp3,
            measurements=measured,
            postprocess_version=POSTPROCESS_VERSION,
            quality=quality,
        )

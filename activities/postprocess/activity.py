"""The `postprocess` activity (CPU queue): master, deliver in formats, preview, features."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from pedalboard import HighpassFilter, Pedalboard
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audio_io import describe, read_audio
from activities.postprocess.features import extract_features
from activities.postprocess.formats import FORMATS, AudioTags, encode, write_tags
from activities.postprocess.loudness import POSTPROCESS_VERSION, normalize_loudness
from activities.postprocess.preview import preview_clip, render_overview_png
from activities.postprocess.profiles import PROFILES
from activities.postprocess.quality import assess_quality
from infra.db import Database
from infra.store import ObjectStore
from schemas.errors import INVALID_REQUEST, UNMASTERABLE_AUDIO
from schemas.jobs import AudioMeasurements, AudioRef, PostprocessInput, PostprocessOutput

# Rumble and DC sit below anything musical; removing them first keeps them from eating headroom.
_HIGHPASS_HZ = 20.0


def postprocess_key(job_id: str, name: str) -> str:
    """Object key of a post-processing output: job id + step + name, never the attempt."""
    return f"{job_id}/postprocess/{name}"


@dataclass(frozen=True)
class _Mastered:
    output: PostprocessOutput
    uploads: list[tuple[str, AudioRef]]  # (artifact kind, ref)


class PostprocessActivities:
    """The CPU queue's mastering step, bound to the object store and the DB."""

    def __init__(self, store: ObjectStore, db: Database) -> None:
        self.store = store
        self.db = db

    def _upload(self, path: Path, name: str, fmt: str, content_type: str, job_id: str) -> AudioRef:
        uri = self.store.put_file(
            self.store.settings.raw_bucket, postprocess_key(job_id, name), path, content_type
        )
        return describe(path, uri, fmt)

    def _master(self, inp: PostprocessInput, tmp: Path) -> _Mastered:
        profile = PROFILES.get(inp.profile)
        if profile is None:
            raise ApplicationError(f"unknown delivery profile {inp.profile!r}",
                                   type=INVALID_REQUEST, non_retryable=True)  # fmt: skip
        raw_samples, rate = read_audio(self.store.download(inp.raw.uri, tmp / "raw.wav"))
        cleaned = Pedalboard([HighpassFilter(cutoff_frequency_hz=_HIGHPASS_HZ)])(
            raw_samples.T.copy(), rate
        ).T
        if rate != profile.sample_rate:
            cleaned = soxr.resample(cleaned, rate, profile.sample_rate, quality="VHQ")
            rate = profile.sample_rate
        try:
            result = normalize_loudness(cleaned, rate, target_lufs=profile.target_lufs,
                                        ceiling_dbtp=profile.true_peak_dbtp)  # fmt: skip
        except ValueError as exc:
            # Silent output cannot be mastered; another attempt would render the same silence.
            raise ApplicationError(str(exc), type=UNMASTERABLE_AUDIO, non_retryable=True) from None
        master = result.samples
        tags = AudioTags(title=inp.title or inp.job_id, job_id=inp.job_id, model=inp.model)
        uploads: list[tuple[str, AudioRef]] = []

        def deliver(samples: np.ndarray, fmt: str, name: str) -> AudioRef:
            path = tmp / name
            encode(samples, rate, fmt, path, seed=inp.seed)  # type: ignore[arg-type]
            write_tags(path, fmt, tags)  # type: ignore[arg-type]
            return self._upload(path, name, fmt, FORMATS[fmt].content_type, inp.job_id)

        master_ref = deliver(master, "wav24", "master.wav")
        uploads.append(("master_wav", master_ref))
        deliverables = [master_ref if fmt == "wav24" else
                        deliver(master, fmt, f"master.{FORMATS[fmt].extension}")
                        for fmt in inp.formats]  # fmt: skip
        pairs = zip(inp.formats, deliverables, strict=True)
        uploads += [(f"master_{fmt}", ref) for fmt, ref in pairs if fmt != "wav24"]
        preview = deliver(preview_clip(master, rate), "mp3", "preview.mp3")
        uploads.append(("preview_mp3", preview))
        png = tmp / "overview.png"
        render_overview_png(master, rate, png, title=f"{inp.job_id} · {tags.title[:60]}")
        overview_uri = self.store.put_file(self.store.settings.raw_bucket,
                                           postprocess_key(inp.job_id, "overview.png"), png,
                                           "image/png")  # fmt: skip

        features = extract_features(master, rate, instruments=inp.instruments)
        measurements = AudioMeasurements(
            integrated_lufs=round(result.integrated_lufs, 2),
            true_peak_dbtp=round(result.true_peak_dbtp, 2),
            duration_s=master.shape[0] / rate,
            sample_rate=rate,
            loudness_range_lu=features.loudness_range_lu,
            target_lufs=profile.target_lufs,
        )
        quality = assess_quality(
            raw_samples, master, rate,
            requested_duration_s=inp.requested_duration_s,
            integrated_lufs=result.integrated_lufs, target_lufs=profile.target_lufs,
        )  # fmt: skip
        output = PostprocessOutput(
            master=master_ref,
            measurements=measurements,
            postprocess_version=POSTPROCESS_VERSION,
            quality=quality,
            profile=profile.name,
            deliverables=deliverables,
            preview=preview,
            overview_uri=overview_uri,
            features=features,
        )
        return _Mastered(output, uploads)

    @activity.defn(name="postprocess")
    async def postprocess(self, inp: PostprocessInput) -> PostprocessOutput:
        """Master the raw render to the delivery profile; write every requested format with tags,
        a preview clip, a waveform/spectrogram PNG and the audio features (keys fixed per job)."""
        with tempfile.TemporaryDirectory(prefix="tunesmith-post-") as tmp:
            mastered = await asyncio.to_thread(self._master, inp, Path(tmp))
        out = mastered.output
        m, f = out.measurements, out.features
        for kind, ref in mastered.uploads:
            extra = {}
            if kind == "master_wav" and f is not None:
                extra = {"loudness_range_lu": f.loudness_range_lu, "tempo_bpm": f.tempo_bpm,
                         "musical_key": f.key, "instruments": f.instruments,
                         "embedding": f.embedding, "embedding_model": f.embedding_model,
                         "features": {"spectral": f.spectral, "key_confidence": f.key_confidence,
                                      "quality": out.quality.model_dump()}}  # fmt: skip
            await self.db.upsert_artifact(
                inp.job_id, kind, **ref.model_dump(),
                integrated_lufs=m.integrated_lufs, true_peak_dbtp=m.true_peak_dbtp, **extra,
            )  # fmt: skip
        await self.db.set_stage(inp.job_id, "checking")
        return out

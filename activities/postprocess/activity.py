"""The `postprocess` activity (CPU queue): master, deliver in formats, preview, features."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audio_io import FORMATS, describe, read_audio
from activities.disclosure.c2pa_signing import sign_file
from activities.disclosure.identity import signing_identity, watermark_key
from activities.disclosure.watermark import payload_for_job
from activities.postprocess.formats import AudioTags
from activities.postprocess.loudness import POSTPROCESS_VERSION
from activities.postprocess.manifest import build_manifest
from activities.postprocess.pipeline import MasteredFiles, MasteringJob, master_files
from activities.postprocess.profiles import PROFILES
from infra.db import Database
from infra.store import ObjectStore
from schemas import names
from schemas.errors import INVALID_REQUEST, UNMASTERABLE_AUDIO
from schemas.jobs import (
    OVERVIEW_ARTIFACT,
    AudioRef,
    ModelRef,
    PartOutput,
    PostprocessInput,
    PostprocessOutput,
)

# Formats c2pa-python can embed a manifest in (it cannot in Ogg/Opus).
C2PA_FORMATS = frozenset({"wav24", "wav16", "flac", "mp3"})


def postprocess_key(job_id: str, name: str) -> str:
    """Object key of a post-processing output: job id + step + name, never the attempt."""
    return f"{job_id}/postprocess/{name}"


@dataclass(frozen=True)
class _Upload:
    """One stored output of a job and what its artifact row says about it."""

    ref: AudioRef
    fmt: str  # the kind's format: "wav" for a 24-bit master, else the delivery format
    part: str | None = None  # the stem or layer it belongs to (None: the main audio)
    preview: bool = False

    @property
    def kind(self) -> str:
        """The artifact kind users and the DB see: `master_<fmt>`, `part_<name>_<fmt>` or
        `preview_<fmt>`."""
        if self.preview:
            return f"preview_{self.fmt}"
        return f"master_{self.fmt}" if self.part is None else f"part_{self.part}_{self.fmt}"


@dataclass(frozen=True)
class _Mastered:
    output: PostprocessOutput
    uploads: list[_Upload]
    overview: dict[str, object]  # the overview PNG's artifact columns (uri, sha256, size)


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

    def _sign(self, files: MasteredFiles, inp: PostprocessInput) -> list[str]:
        """Embed a signed C2PA manifest (AI generated, model) in every deliverable whose
        format C2PA supports; returns those formats (Opus is delivered unsigned)."""
        identity = signing_identity(self.store.settings)
        model = inp.model or ModelRef(id="", version="")
        deliverables = list(files.deliverables)
        for part in files.parts:
            deliverables += part.deliverables
        signed = set()
        for fmt, path in dict.fromkeys(deliverables):
            if fmt not in C2PA_FORMATS:
                continue
            sign_file(path, path, identity=identity, title=inp.title or inp.job_id,
                      job_id=inp.job_id, model_id=model.id, model_version=model.version,
                      assertions={"watermark": files.watermark,
                                  "postprocess_version": POSTPROCESS_VERSION})  # fmt: skip
            signed.add(fmt)
        return sorted(signed)

    def _master(self, inp: PostprocessInput, tmp: Path) -> _Mastered:
        settings = self.store.settings
        profile = PROFILES.get(inp.profile)
        if profile is None:
            raise ApplicationError(f"unknown delivery profile {inp.profile!r}",
                                   type=INVALID_REQUEST, non_retryable=True)  # fmt: skip
        raw, rate = read_audio(self.store.download(inp.raw.uri, tmp / "raw.wav"))
        parts = {name: read_audio(self.store.download(ref.uri, tmp / f"raw-{name}.wav"))[0]
                 for name, ref in inp.parts.items()}  # fmt: skip
        tokens = inp.tokens
        model_label = inp.model.label if inp.model is not None else ""
        loop_frames = (round(tokens.duration_s * profile.sample_rate)
                       if tokens is not None and tokens.loop else None)  # fmt: skip
        job = MasteringJob(
            profile=profile,
            formats=inp.formats,
            tags=AudioTags(title=inp.title or inp.job_id, job_id=inp.job_id, model=model_label),
            requested_duration_s=inp.requested_duration_s,
            instruments=inp.instruments,
            seed=inp.seed,
            loop_frames=loop_frames,
            parts=parts,
            link="static" if tokens is not None and tokens.product == "layers" else "curve",
            watermark=(watermark_key(settings).secret, payload_for_job(inp.job_id))
            if settings.watermark_enabled
            else None,
        )
        try:
            files = master_files(raw, rate, job, tmp)
        except ValueError as exc:
            # Silent output cannot be mastered; another attempt would render the same silence.
            raise ApplicationError(str(exc), type=UNMASTERABLE_AUDIO, non_retryable=True) from None

        signed = self._sign(files, inp) if settings.c2pa_enabled else []

        def upload(path: Path, fmt: str) -> AudioRef:
            return self._upload(path, path.name, fmt, FORMATS[fmt].content_type, inp.job_id)

        master_ref = upload(files.master, "wav24")
        uploads = [_Upload(master_ref, "wav")]
        deliverables = []
        for fmt, path in files.deliverables:
            ref = master_ref if path == files.master else upload(path, fmt)
            deliverables.append(ref)
            if ref is not master_ref:
                uploads.append(_Upload(ref, fmt))
        part_outputs = []
        for part in files.parts:
            part_ref = upload(part.master, "wav24")
            uploads.append(_Upload(part_ref, "wav", part=part.name))
            part_deliverables = []
            for fmt, path in part.deliverables:
                ref = part_ref if path == part.master else upload(path, fmt)
                part_deliverables.append(ref)
                if ref is not part_ref:
                    uploads.append(_Upload(ref, fmt, part=part.name))
            part_outputs.append(PartOutput(name=part.name, master=part_ref,
                                           deliverables=part_deliverables,
                                           integrated_lufs=part.integrated_lufs,
                                           true_peak_dbtp=part.true_peak_dbtp))  # fmt: skip
        preview = upload(files.preview, "mp3")
        uploads.append(_Upload(preview, "mp3", preview=True))
        overview_uri = self.store.put_file(self.store.settings.raw_bucket,
                                           postprocess_key(inp.job_id, "overview.png"),
                                           files.overview, "image/png")  # fmt: skip
        png = files.overview.read_bytes()
        overview = {"uri": overview_uri, "sha256": hashlib.sha256(png).hexdigest(),
                    "format": "png", "size_bytes": len(png)}  # fmt: skip
        output = PostprocessOutput(
            master=master_ref,
            measurements=files.measurements,
            postprocess_version=POSTPROCESS_VERSION,
            quality=files.quality,
            profile=profile.name,
            deliverables=deliverables,
            preview=preview,
            overview_uri=overview_uri,
            features=files.features,
            watermark=files.watermark,
            c2pa_signed=signed,
            parts=part_outputs,
            manifest=build_manifest(tokens, master_ref, part_outputs, inp.main_part)
            if tokens is not None and (tokens.loop or part_outputs)
            else None,
        )
        return _Mastered(output, uploads, overview)

    @activity.defn(name=names.POSTPROCESS)
    async def postprocess(self, inp: PostprocessInput) -> PostprocessOutput:
        """Master the raw render to the delivery profile; write every requested format with tags,
        a preview clip, a waveform/spectrogram PNG and the audio features (keys fixed per job);
        the job row then records the stage the workflow named (`inp.next_stage`)."""
        with tempfile.TemporaryDirectory(prefix="tunesmith-post-") as tmp:
            mastered = await asyncio.to_thread(self._master, inp, Path(tmp))
        out = mastered.output
        m, f = out.measurements, out.features
        part_levels = {p.name: (p.integrated_lufs, p.true_peak_dbtp) for p in out.parts}
        for up in mastered.uploads:
            lufs, peak = m.integrated_lufs, m.true_peak_dbtp
            if up.part is not None:
                lufs, peak = part_levels[up.part]
            extra = {}
            if up.kind == "master_wav" and f is not None:
                extra = {"loudness_range_lu": f.loudness_range_lu, "tempo_bpm": f.tempo_bpm,
                         "musical_key": f.key, "instruments": f.instruments,
                         "embedding": f.embedding, "embedding_model": f.embedding_model,
                         "features": {"spectral": f.spectral, "key_confidence": f.key_confidence,
                                      "quality": out.quality.model_dump()}}  # fmt: skip
            await self.db.upsert_artifact(
                inp.job_id, up.kind, **up.ref.model_dump(),
                integrated_lufs=lufs, true_peak_dbtp=peak, **extra,
            )  # fmt: skip
        # Not audio: the audio columns (rate, channels, duration, loudness) stay NULL.
        await self.db.upsert_artifact(inp.job_id, OVERVIEW_ARTIFACT, **mastered.overview)
        await self.db.set_stage(inp.job_id, inp.next_stage.value)
        return out

"""The `publish` activity (CPU queue): copy to the published bucket, provenance, charge once."""

from __future__ import annotations

import asyncio
import math

from temporalio import activity

from activities.audio_io import CONTENT_TYPES, FORMATS
from activities.publish.provenance import build_record, canonical_json, record_sha256
from infra.db import Database
from infra.store import ObjectStore
from schemas import names
from schemas.jobs import AudioRef, PublishInput, PublishOutput, ReviewState

CHARGE_KIND = "generation"


def published_key(job_id: str, name: str) -> str:
    """Stable key in the published bucket: a retry overwrites, never duplicates."""
    return f"{job_id}/{name}"


def _deliverables(inp: PublishInput) -> list[tuple[str, str, AudioRef]]:
    """(artifact kind, file name, source) of everything a published job exposes."""
    post, job_id = inp.postprocessed, inp.job_id
    out = [(f"published_{ref.format}", f"{job_id}.{FORMATS[ref.format].extension}", ref)
           for ref in post.deliverables]  # fmt: skip
    if not post.deliverables:  # a history from before delivery formats existed
        out = [("published_wav", f"{job_id}.wav", post.master)]
        if post.compressed is not None:
            out.append(("published_mp3", f"{job_id}.mp3", post.compressed))
    for part in post.parts:
        out += [(f"published_part_{part.name}_{ref.format}",
                 f"{job_id}-{part.name}.{FORMATS[ref.format].extension}", ref)
                for ref in part.deliverables]  # fmt: skip
    if post.preview is not None:
        out.append(("published_preview", "preview.mp3", post.preview))
    return out


def _published_manifest(inp: PublishInput) -> dict[str, object] | None:
    """The product manifest with the published file names of the main audio and every part."""
    post = inp.postprocessed
    if post.manifest is None:
        return None
    ext = [FORMATS[ref.format].extension for ref in post.deliverables]
    manifest = dict(post.manifest)
    manifest["job_id"] = inp.job_id
    manifest["main"] = {**manifest["main"], "files": [f"{inp.job_id}.{e}" for e in ext]}
    manifest["parts"] = [
        {**entry, "files": [f"{inp.job_id}-{entry['name']}.{e}" for e in ext]}
        for entry in manifest["parts"]
    ]
    return manifest


class PublishActivities:
    def __init__(self, store: ObjectStore, db: Database, price_cents_per_minute: int) -> None:
        self.store = store
        self.db = db
        self.price_cents_per_minute = price_cents_per_minute

    def _copy_outputs(self, inp: PublishInput) -> dict[str, dict[str, str]]:
        bucket = self.store.settings.published_bucket
        published = {}
        for kind, name, ref in _deliverables(inp):
            uri = self.store.copy(ref.uri, bucket, published_key(inp.job_id, name))
            published[kind] = {"uri": uri, "sha256": ref.sha256}
        manifest = _published_manifest(inp)
        if manifest is not None:
            uri = self.store.put_bytes(bucket, published_key(inp.job_id, "manifest.json"),
                                       canonical_json(manifest), CONTENT_TYPES["json"])  # fmt: skip
            published["published_manifest"] = {"uri": uri}
        overview = inp.postprocessed.overview_uri
        if overview is not None:
            uri = self.store.copy(overview, bucket, published_key(inp.job_id, "overview.png"))
            published["published_overview"] = {"uri": uri}
        return published

    @activity.defn(name=names.PUBLISH)
    async def publish(self, inp: PublishInput) -> PublishOutput:
        """Publish the deliverables, write provenance, charge the ledger once, enqueue the
        webhook."""
        job_id = inp.job_id
        published = await asyncio.to_thread(self._copy_outputs, inp)
        m = inp.postprocessed.measurements
        record = build_record(inp, published)
        provenance_uri = await asyncio.to_thread(
            self.store.put_bytes,
            self.store.settings.published_bucket,
            published_key(job_id, "provenance.json"),
            canonical_json(record),
            CONTENT_TYPES["json"],
        )
        artifacts = {kind: ref["uri"] for kind, ref in published.items()}
        artifacts["provenance"] = provenance_uri
        # Generated seconds are what a job costs: a layer set renders every layer.
        audio_seconds = m.duration_s * max(1, len(inp.tokens.layers))
        cents = math.ceil(audio_seconds / 60.0 * self.price_cents_per_minute)
        # All or nothing: a job is never charged without being marked published, or the reverse.
        async with self.db.transaction() as tx:
            for kind, _name, src in _deliverables(inp):  # the overview PNG is not audio: no row
                await tx.upsert_artifact(
                    job_id, kind, **(src.model_dump() | {"uri": published[kind]["uri"]}),
                    integrated_lufs=m.integrated_lufs, true_peak_dbtp=m.true_peak_dbtp,
                )  # fmt: skip
            await tx.upsert_provenance(
                job_id, record=record, sha256=record_sha256(record), uri=provenance_uri
            )
            if inp.review_state is ReviewState.AUTO_APPROVED:
                await tx.record_review(
                    job_id, outcome=inp.review_state.value, reviewer=None, note=None,
                    reasons=inp.review_reasons,
                )  # fmt: skip
            await tx.charge(
                job_id,
                tenant=inp.request.tenant,
                kind=CHARGE_KIND,
                amount_cents=cents,
                audio_seconds=audio_seconds,
            )
            await tx.enqueue_webhook(
                job_id, event="job.published", payload={"job_id": job_id, "artifacts": artifacts}
            )
            await tx.set_stage(job_id, inp.next_stage.value, finished=True)
        return PublishOutput(artifacts=artifacts, provenance_uri=provenance_uri, charge_cents=cents)

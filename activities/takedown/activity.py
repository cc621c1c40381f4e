"""Takedown activities (CPU queue): thin `@activity.defn` methods over the DB and object moves."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.catalog.ingest import RecordingMetadata, ingest
from activities.catalog.store import CatalogDB
from activities.takedown import objects
from activities.takedown.store import TakedownDB
from infra.db import Database
from infra.store import ObjectStore
from schemas import names
from schemas.takedown import (
    TAKEDOWN_NOT_ALLOWED,
    ApplyOutcomeInput,
    ApplyOutcomeOutput,
    AuditInput,
    OpenTakedownInput,
    OpenTakedownOutput,
    QuarantineInput,
    QuarantineOutput,
    TakedownState,
)


def catalog_title(claimant: str, part: str | None = None) -> str:
    """The catalog title of content removed on `claimant`'s claim (`part`: a stem or layer)."""
    return f"takedown: {claimant}" + (f" ({part})" if part else "")


class TakedownActivities:
    def __init__(self, db: Database, store: ObjectStore) -> None:
        self.db = db
        self.tdb = TakedownDB(db)
        self.store = store

    @property
    def _published(self) -> str:
        return self.store.settings.published_bucket

    @activity.defn(name=names.TAKEDOWN_OPEN)
    async def open(self, inp: OpenTakedownInput) -> OpenTakedownOutput:
        """Check the asset can be taken down and write the takedown row (state `filed`).

        Raises:
            ApplicationError: non-retryable `TakedownNotAllowed`: unknown or unpublished job,
                or its content was already removed.
        """
        claim = inp.claim
        job = await self.db.get_job(claim.job_id)
        if job is None:
            raise _not_allowed(f"no job {claim.job_id!r}")
        if job["stage"] != "published":
            raise _not_allowed(f"job {claim.job_id} is not published (stage: {job['stage']})")
        existing = await self.tdb.get(inp.takedown_id)
        if job.get("takedown_state") == TakedownState.REMOVED and existing is None:
            raise _not_allowed(f"job {claim.job_id} was already removed by a takedown")
        await self.tdb.insert(
            takedown_id=inp.takedown_id, workflow_id=inp.workflow_id, job_id=claim.job_id,
            claimant=claim.claimant, contact_email=claim.contact_email, evidence=claim.evidence,
            evidence_url=claim.evidence_url, owner=job["tenant"], filed_at=inp.filed_at,
            dispute_deadline=inp.dispute_deadline, claimant_callback_url=claim.callback_url,
        )  # fmt: skip
        callback = (job["request"] or {}).get("callback_url")
        return OpenTakedownOutput(owner=job["tenant"], callback_url=callback or None)

    @activity.defn(name=names.TAKEDOWN_QUARANTINE)
    async def quarantine(self, inp: QuarantineInput) -> QuarantineOutput:
        """Move the job's published objects to the quarantine bucket (copy, then delete), so
        presigned links to them stop working; the takedown and the job become `quarantined`."""

        def move() -> list[str]:
            objects.ensure_bucket(self.store, inp.quarantine_bucket)
            return objects.move(
                self.store, self._published, inp.quarantine_bucket, objects.job_prefix(inp.job_id)
            )

        keys = await asyncio.to_thread(move)
        await self.tdb.set_state(inp.takedown_id, inp.job_id, TakedownState.QUARANTINED,
                                 objects=keys)  # fmt: skip
        return QuarantineOutput(objects=keys)

    @activity.defn(name=names.TAKEDOWN_AUDIT)
    async def audit(self, inp: AuditInput) -> None:
        """Append an audit event; optionally change the state and queue a webhook event for the
        owner (the audit detail) and one for the claimant (the claimant notice only)."""
        await self.tdb.audit(
            event_key=f"{inp.takedown_id}:{inp.seq}", takedown_id=inp.takedown_id,
            job_id=inp.job_id, actor=inp.actor, action=inp.action, at=inp.at, detail=inp.detail,
        )  # fmt: skip
        if inp.state is not None:
            await self.tdb.set_state(inp.takedown_id, inp.job_id, inp.state)
        if inp.webhook_event is not None:
            payload: dict[str, Any] = {"takedown_id": inp.takedown_id, "action": inp.action,
                                       "actor": inp.actor, "at": inp.at.isoformat(),
                                       **inp.detail}  # fmt: skip
            await self.tdb.enqueue_webhook(
                inp.takedown_id, inp.job_id, event=inp.webhook_event, payload=payload
            )
            if inp.claimant_notice is not None:
                await self.tdb.enqueue_webhook(
                    inp.takedown_id, inp.job_id, event=inp.webhook_event,
                    payload=inp.claimant_notice.model_dump(mode="json"), recipient="claimant",
                )  # fmt: skip
        activity.logger.info("takedown %s: %s by %s", inp.takedown_id, inp.action, inp.actor)

    @activity.defn(name=names.TAKEDOWN_RESTORE)
    async def restore(self, inp: ApplyOutcomeInput) -> ApplyOutcomeOutput:
        """Copy the quarantined objects back to the published bucket and clear the quarantine."""

        def move() -> list[str]:
            objects.ensure_bucket(self.store, inp.quarantine_bucket)
            return objects.move(
                self.store, inp.quarantine_bucket, self._published, objects.job_prefix(inp.job_id)
            )

        keys = await asyncio.to_thread(move)
        await self.tdb.set_state(inp.takedown_id, inp.job_id, TakedownState.RESTORED)
        return ApplyOutcomeOutput(objects=keys)

    @activity.defn(name=names.TAKEDOWN_REMOVE)
    async def remove(self, inp: ApplyOutcomeInput) -> ApplyOutcomeOutput:
        """Add every published audio part (the main audio, each stem or layer) to the
        similarity catalog (owner: the claimant), then delete the job's objects from both
        buckets for good.

        The catalog comes first: once deleted, the audio cannot be fingerprinted any more. A
        retry after deletion finds the recording id already stored on the takedown row; a retry
        before it ingests again, which the catalog (keyed by each file's sha256) turns into
        duplicates of the first attempt's recordings.
        """
        row = await self.tdb.get(inp.takedown_id)
        recording_id = row["recording_id"] if row else None
        prefix = objects.job_prefix(inp.job_id)
        buckets = [inp.quarantine_bucket, self._published]
        catalog_error = None
        if recording_id is None:
            recording_id, catalog_error = await self._catalog(inp, buckets)
            if recording_id is not None:
                # Stored before deleting, so a retry does not look for the deleted audio.
                await self.tdb.set_recording(inp.takedown_id, recording_id)

        def purge() -> list[str]:
            objects.ensure_bucket(self.store, inp.quarantine_bucket)
            return objects.purge(self.store, buckets, prefix)

        deleted = await asyncio.to_thread(purge)
        await self.tdb.set_state(inp.takedown_id, inp.job_id, TakedownState.REMOVED,
                                 recording_id=recording_id)  # fmt: skip
        return ApplyOutcomeOutput(
            objects=deleted, recording_id=recording_id, catalog_error=catalog_error
        )

    async def _catalog(
        self, inp: ApplyOutcomeInput, buckets: list[str]
    ) -> tuple[str | None, str | None]:
        """Ingest every published audio part into the catalog and audit the result
        (`cataloged`, one row per takedown).

        Returns the main audio's recording id (else the first part's) and why any part could
        not be added, or None: the removal goes on either way (the workflow audits the error).
        """
        parts = objects.audio_parts(await self.db.artifacts(inp.job_id))
        if not parts:  # no artifacts rows (a job published before they existed): the listing
            for bucket in buckets:
                keys = await asyncio.to_thread(self.store.list_keys, bucket,
                                               objects.job_prefix(inp.job_id))  # fmt: skip
                key = objects.main_audio_key(keys, inp.job_id)
                if key is not None:
                    parts = [(None, key)]
                    break
        results = [await self._ingest_part(inp, buckets, part, key) for part, key in parts]
        await self.tdb.audit(
            event_key=f"{inp.takedown_id}:catalog", takedown_id=inp.takedown_id,
            job_id=inp.job_id, actor="system", action="cataloged", at=datetime.now(UTC),
            detail={"recordings": results},
        )  # fmt: skip
        added = [r["recording_id"] for r in results if r["status"] in ("added", "duplicate")]
        errors = [f"{r['key']}: {r['detail']}" for r in results
                  if r["status"] not in ("added", "duplicate")]  # fmt: skip
        if not parts:
            activity.logger.warning("takedown %s: no audio left to catalog", inp.takedown_id)
            errors = ["no audio left to add to the catalog"]
        return (added[0] if added else None), ("; ".join(errors) or None)

    async def _ingest_part(
        self, inp: ApplyOutcomeInput, buckets: list[str], part: str | None, key: str
    ) -> dict[str, Any]:
        """Ingest one part's file from whichever bucket holds it; a JSON-ready result."""
        result: dict[str, Any] = {"part": part or "main", "key": key, "recording_id": None}
        for bucket in buckets:
            uri = f"s3://{bucket}/{key}"
            if not await asyncio.to_thread(self.store.exists, uri):
                continue
            with tempfile.TemporaryDirectory(prefix="tunesmith-takedown-") as tmp:
                path = Path(tmp) / Path(key).name
                await asyncio.to_thread(self.store.download, uri, path)
                meta = RecordingMetadata(title=catalog_title(inp.claimant, part),
                                         owner=inp.claimant,
                                         licence=f"takedown {inp.takedown_id}")  # fmt: skip
                [ingested] = await ingest(CatalogDB(self.db.pool), [path], meta, concurrency=1)
            # An error is deterministic (unreadable, too short): retrying cannot fix it.
            return result | {"recording_id": ingested.recording_id, "status": ingested.status,
                             "detail": ingested.detail}  # fmt: skip
        return result | {"status": "missing", "detail": "in neither bucket"}


def _not_allowed(message: str) -> ApplicationError:
    return ApplicationError(message, type=TAKEDOWN_NOT_ALLOWED, non_retryable=True)

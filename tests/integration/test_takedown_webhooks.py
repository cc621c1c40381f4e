"""Takedown notifications reach the owner's callback URL, signed; removal catalogs every stem.

The receiver below behaves like a real consumer: it checks the HMAC signature of the raw body
(refusing a bad one with 401), drops a redelivered event by its `Idempotency-Key`, and answers
204.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.takedown.activity import TakedownActivities
from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from infra.takedown_db import TakedownDB
from schemas.jobs import Stage
from schemas.takedown import ApplyOutcomeInput, RecordedDecision, TakedownSettings, TakedownState
from tests.integration.helpers import short_request
from tunesmith import Client
from tunesmith import takedowns as sdk

pytestmark = pytest.mark.integration

QUARANTINE = TakedownSettings().quarantine_bucket
CLAIMANT = "Delta Music"


class SignedReceiver:
    """Webhook consumer on 127.0.0.1 (free port): verified events, each once, in arrival order."""

    def __init__(self, secret: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get("X-Tunesmith-Signature", ""), expected):
                    receiver.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                key = self.headers["Idempotency-Key"]
                if key not in receiver.seen:  # a retry or a second delivery run: already handled
                    receiver.seen.add(key)
                    receiver.events.append(json.loads(body) | {"idempotency_key": key})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tunesmith"

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]

    async def wait_for(self, event: str, timeout_s: float = 60.0) -> dict[str, Any]:
        for _ in range(int(timeout_s / 0.1)):
            for received in self.events:
                if received["event"] == event:
                    return received
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {event} event; received {self.names()}")


@pytest.fixture
def receiver(stack: LocalStack) -> Iterator[SignedReceiver]:
    r = SignedReceiver(stack.child_env()["TUNESMITH_WEBHOOK_SECRET"])
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
async def forget_catalog(db: Database) -> AsyncIterator[None]:
    yield  # this module's audio must not block other tests' outputs
    await db.pool.execute(
        "DELETE FROM catalog_recordings WHERE title LIKE $1", f"takedown: {CLAIMANT}%"
    )


async def test_stems_takedown_notifies_the_owner_and_catalogs_every_stem(
    client: Client,
    db: Database,
    store: ObjectStore,
    receiver: SignedReceiver,
    forget_catalog: None,
) -> None:
    request = short_request(prompt="takedown stems piece", product="stems", duration_s=8.0,
                            seed=9404, formats=["wav24", "flac"],
                            callback_url=receiver.url)  # fmt: skip
    handle = await client.submit(request)
    assert (await handle.result()).stage is Stage.PUBLISHED
    job_id = handle.job_id
    await receiver.wait_for("job.published")
    kinds = {a["kind"] for a in await db.artifacts(job_id)}
    stems = sorted(k.removeprefix("published_part_").removesuffix("_wav24") for k in kinds
                   if k.startswith("published_part_") and k.endswith("_wav24"))  # fmt: skip
    assert len(stems) >= 2, kinds

    filed = await sdk.file_takedown(client, job_id, claimant=CLAIMANT, evidence="our stems",
                                    contact_email="legal@delta.example")  # fmt: skip
    takedown_id = filed.status.takedown_id
    assert filed.status.state is TakedownState.QUARANTINED

    quarantined = await receiver.wait_for("takedown.filed")
    assert quarantined["job_id"] == job_id
    data = quarantined["data"]
    assert data["takedown_id"] == takedown_id and data["action"] == "quarantined"
    assert data["claimant"] == CLAIMANT and data["contact_email"] == "legal@delta.example"
    assert data["owner"] == "default" and data["notify"] == ["owner", "claimant"]
    assert sorted(data["objects"]) == sorted(filed.status.objects)
    assert quarantined["idempotency_key"] == f"{takedown_id}:takedown.filed"

    # An earlier attempt of the removal that stopped after cataloging (before storing its
    # result): the real removal below must add nothing twice.
    acts = TakedownActivities(db, store)
    outcome = ApplyOutcomeInput(
        takedown_id=takedown_id, job_id=job_id, claimant=CLAIMANT,
        quarantine_bucket=QUARANTINE,
        decision=RecordedDecision(decision="remove", reviewer="erin", at=datetime.now(UTC)),
    )  # fmt: skip
    first_id, first_error = await acts._catalog(
        outcome, [QUARANTINE, store.settings.published_bucket]
    )
    assert first_error is None
    licence = f"takedown {takedown_id}"
    rows = await db.pool.fetch(
        "SELECT recording_id, title, owner FROM catalog_recordings WHERE licence = $1", licence
    )
    titles = {r["title"]: r["recording_id"] for r in rows}
    assert set(titles) == {f"takedown: {CLAIMANT}"} | {f"takedown: {CLAIMANT} ({s})" for s in stems}
    assert {r["owner"] for r in rows} == {CLAIMANT} and first_id == titles[f"takedown: {CLAIMANT}"]

    removed = await sdk.decide(client, job_id, decision="remove", reviewer="erin", note="copy")
    assert removed.state is TakedownState.REMOVED and removed.recording_id == first_id
    again = await db.pool.fetch(
        "SELECT recording_id, title FROM catalog_recordings WHERE licence = $1", licence
    )
    assert {r["title"]: r["recording_id"] for r in again} == titles
    assert store.list_keys(QUARANTINE, f"{job_id}/") == []

    outcome_event = await receiver.wait_for("takedown.removed")
    data = outcome_event["data"]
    assert data["takedown_id"] == takedown_id and data["actor"] == "erin"
    assert data["catalog_recording"] == first_id and data["catalog_error"] is None
    assert receiver.names().index("takedown.filed") < receiver.names().index("takedown.removed")
    assert receiver.refused == 0

    events = await TakedownDB(db).events(takedown_id)
    [cataloged] = [e for e in events if e["action"] == "cataloged"]
    recorded = {r["part"]: r for r in cataloged["detail"]["recordings"]}
    assert set(recorded) == {"main", *stems}
    assert {r["status"] for r in recorded.values()} == {"added"}
    assert recorded["main"]["key"] == f"{job_id}/{job_id}.wav"  # the lossless file, not FLAC

    # A retry of the removal after deletion keeps the stored recording and adds nothing.
    retried = await ActivityEnvironment().run(acts.remove, outcome)
    assert retried.recording_id == first_id and retried.objects == []
    count = await db.pool.fetchval(
        "SELECT count(*) FROM catalog_recordings WHERE licence = $1", licence
    )
    assert count == len(titles)

    outbox = {row["event"]: row for row in await db.outbox(job_id)}
    for event in ("takedown.filed", "takedown.removed"):
        assert outbox[event]["delivered_at"] is not None, outbox[event]

"""Takedown notifications reach the owner's callback URL and the claimant's, signed, each only
its own events; removal catalogs every stem.

The receivers (tests/webhook_receiver.py) behave like real consumers: each checks the HMAC
signature of the raw body (refusing a bad one with 401) and counts a redelivered event once, by
its `Idempotency-Key`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from temporalio.testing import ActivityEnvironment

from activities.publish.webhooks import pending_events
from activities.takedown.activity import TakedownActivities
from activities.takedown.store import TakedownDB
from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.errors import InvalidRequestError
from schemas.jobs import DeliverWebhooksInput, Stage
from schemas.takedown import ApplyOutcomeInput, RecordedDecision, TakedownSettings, TakedownState
from tests.integration.helpers import run_cli, short_request
from tests.webhook_receiver import WebhookReceiver, serving
from tunesmith import Client
from tunesmith import takedowns as sdk

pytestmark = pytest.mark.integration

QUARANTINE = TakedownSettings().quarantine_bucket
CLAIMANT = "Delta Music"
# All a claimant's event may say (schemas.takedown.ClaimantNotice): nothing of the owner's.
CLAIMANT_FIELDS = {"takedown_id", "job_id", "state", "at", "filed_at", "dispute_deadline",
                   "disputed", "decision", "decided_at"}  # fmt: skip


@pytest.fixture
def receiver(stack: LocalStack) -> Iterator[WebhookReceiver]:
    """The asset owner's webhook (the job's callback URL)."""
    with serving(secret=stack.child_env()["TUNESMITH_WEBHOOK_SECRET"]) as r:
        yield r


@pytest.fixture
def claimant_receiver(stack: LocalStack) -> Iterator[WebhookReceiver]:
    """The claimant's webhook (the claim's callback URL)."""
    with serving(secret=stack.child_env()["TUNESMITH_WEBHOOK_SECRET"]) as r:
        yield r


@pytest.fixture
async def forget_catalog(db: Database) -> AsyncIterator[None]:
    yield  # this module's audio must not block other tests' outputs
    await db.pool.execute(
        "DELETE FROM catalog_recordings WHERE title LIKE $1", f"takedown: {CLAIMANT}%"
    )


async def test_stems_takedown_notifies_both_parties_and_catalogs_every_stem(
    client: Client,
    db: Database,
    store: ObjectStore,
    stack: LocalStack,
    receiver: WebhookReceiver,
    claimant_receiver: WebhookReceiver,
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

    # A claimant callback that is not an http(s) URL: refused before anything starts.
    bad = run_cli(
        stack,
        "takedown",
        "file",
        job_id,
        "--claimant",
        CLAIMANT,
        "--evidence",
        "e",
        "--contact",
        "legal@delta.example",
        "--callback-url",
        "ftp://delta.example/h",
    )
    assert bad.returncode == 2 and "callback_url" in bad.stderr, bad.stdout + bad.stderr
    with pytest.raises(InvalidRequestError, match="callback_url"):
        await sdk.file_takedown(
            client,
            job_id,
            claimant=CLAIMANT,
            evidence="e",
            contact_email="legal@delta.example",
            callback_url="delta.example",
        )
    with pytest.raises(Exception, match="not found"):
        await client.temporal.get_workflow_handle(f"takedown-{job_id}").describe()

    filed = await sdk.file_takedown(client, job_id, claimant=CLAIMANT, evidence="our stems",
                                    contact_email="legal@delta.example",
                                    callback_url=claimant_receiver.url)  # fmt: skip
    takedown_id = filed.status.takedown_id
    assert filed.status.state is TakedownState.QUARANTINED
    row = await TakedownDB(db).get(takedown_id)
    assert row is not None and row["claimant_callback_url"] == claimant_receiver.url

    # The claimant's view: signed, its own idempotency key, only the claimant's fields.
    notice = await claimant_receiver.wait_for("takedown.filed")
    assert notice["job_id"] == job_id and set(notice["data"]) == CLAIMANT_FIELDS
    assert notice["data"]["takedown_id"] == takedown_id
    assert notice["data"]["state"] == "quarantined" and notice["data"]["decision"] is None
    assert notice["idempotency_key"] == f"{takedown_id}:claimant:takedown.filed"

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

    outcome_notice = await claimant_receiver.wait_for("takedown.removed")
    data = outcome_notice["data"]
    assert set(data) == CLAIMANT_FIELDS and data["state"] == "removed"
    assert data["decision"] == "remove" and data["decided_at"] is not None
    assert claimant_receiver.names() == ["takedown.filed", "takedown.removed"]
    assert claimant_receiver.refused == 0
    # Neither party got the other's events: the owner saw none of the claimant's keys, and
    # nothing of the owner's (request, contact, objects, job events) reached the claimant.
    assert all(":claimant:" not in e["idempotency_key"] for e in receiver.events())
    assert all(":claimant:" in e["idempotency_key"] for e in claimant_receiver.events())
    claimant_text = json.dumps(claimant_receiver.events())
    assert "legal@delta.example" not in claimant_text and f"{job_id}/" not in claimant_text

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

    rows = await db.outbox(job_id)
    outbox = {(r["recipient"], r["event"]): r for r in rows}
    for recipient in ("owner", "claimant"):
        for event in ("takedown.filed", "takedown.removed"):
            assert outbox[recipient, event]["delivered_at"] is not None, outbox[recipient, event]
    assert {r["takedown_id"] for r in rows if r["recipient"] == "claimant"} == {takedown_id}
    assert outbox["owner", "job.published"]["takedown_id"] is None  # a job event: the owner's


async def test_outbox_recipients_on_postgres(db: Database) -> None:
    """`pending_events`' query on the real schema: owner rows (including rows written before
    recipients existed) for the owner, one takedown's claimant rows for that claimant."""
    job_id = f"job-recipients-{uuid.uuid4().hex[:8]}"  # a bare jobs row: no workflow needed
    controls = {"prompt": "outbox recipients", "tier": "draft", "product": "track",
                "duration_s": 6.0, "seed": 1}  # fmt: skip
    await db.upsert_job(job_id=job_id, tenant="default", idempotency_key=None, request={},
                        request_sha256="0" * 64, controls=controls, model_id="draft",
                        stage="generating")  # fmt: skip
    tdb = TakedownDB(db)
    await db.pool.execute(  # a row as written before 0009: no recipient given
        "INSERT INTO webhook_outbox (job_id, event, idempotency_key, payload)"
        " VALUES ($1, 'legacy.event', $2, '{}')",
        job_id, f"{job_id}:legacy",
    )  # fmt: skip
    for td in ("td-recip-a", "td-recip-b"):
        await tdb.enqueue_webhook(td, job_id, event="takedown.filed", payload={"o": td})
        await tdb.enqueue_webhook(td, job_id, event="takedown.filed", payload={"c": td},
                                  recipient="claimant")  # fmt: skip
    try:
        owner = DeliverWebhooksInput(job_id=job_id, callback_url="http://o")
        claimant_a = DeliverWebhooksInput(
            job_id=job_id, callback_url="http://a", recipient="claimant", takedown_id="td-recip-a"
        )
        keys = [r["idempotency_key"] for r in await pending_events(db, owner)]
        assert keys == [f"{job_id}:legacy", "td-recip-a:takedown.filed",
                        "td-recip-b:takedown.filed"]  # fmt: skip
        [only] = await pending_events(db, claimant_a)
        assert only["idempotency_key"] == "td-recip-a:claimant:takedown.filed"
        assert only["payload"] == {"c": "td-recip-a"}
        with pytest.raises(Exception, match="check constraint"):  # only owner|claimant
            await db.pool.execute(
                "INSERT INTO webhook_outbox (job_id, event, idempotency_key, payload, recipient)"
                " VALUES ($1, 'x', $2, '{}', 'someone')",
                job_id, f"{job_id}:x",
            )  # fmt: skip
    finally:
        await db.pool.execute("DELETE FROM webhook_outbox WHERE job_id = $1", job_id)
        await db.pool.execute("DELETE FROM jobs WHERE job_id = $1", job_id)

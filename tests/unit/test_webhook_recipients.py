"""Outbox recipients without the stack: a delivery run sends only its recipient's rows.

The database is a stand-in that answers `pending_events`' query from rows in memory, applying
the query's parameters; the SQL itself runs against PostgreSQL in
tests/integration/test_takedown_webhooks.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.publish.webhooks import WebhookActivities, pending_events
from schemas.errors import WEBHOOK_REJECTED
from schemas.jobs import DeliverWebhooksInput
from tests.webhook_receiver import WebhookReceiver, serving

SECRET = "unit-secret"


def row(id_: int, event: str, recipient: str = "owner", takedown_id: str | None = None,
        job_id: str = "job-1") -> dict[str, Any]:  # fmt: skip
    return {"id": id_, "job_id": job_id, "event": event, "recipient": recipient,
            "takedown_id": takedown_id, "idempotency_key": f"key-{id_}",
            "payload": {"n": id_}, "delivered_at": None}  # fmt: skip


class FakePool:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.queries: list[str] = []

    async def fetch(self, sql: str, job_id: str, recipient: str, takedown_id: str | None) -> Any:
        self.queries.append(sql)
        assert "recipient = $2" in sql and "takedown_id = $3" in sql
        return [
            {k: r[k] for k in ("id", "event", "idempotency_key", "payload")}
            for r in sorted(self.rows, key=lambda r: r["id"])
            if r["job_id"] == job_id and r["delivered_at"] is None and r["recipient"] == recipient
            and (recipient == "owner" or r["takedown_id"] == takedown_id)
        ]  # fmt: skip


class FakeDB:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.pool = FakePool(rows)

    async def record_webhook_attempt(self, outbox_id: int, *, error: str | None) -> None:
        if error is None:
            next(r for r in self.pool.rows if r["id"] == outbox_id)["delivered_at"] = "now"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with serving(secret=SECRET) as r:  # a wrong signature gets 401, so nothing is delivered
        yield r


def outbox() -> list[dict[str, Any]]:
    return [
        row(1, "job.published"),
        row(2, "takedown.filed", takedown_id="td-a"),  # the owner's view of takedown A
        row(3, "takedown.filed", "claimant", "td-a"),
        row(4, "takedown.filed", "claimant", "td-b"),  # a later claimant of the same asset
        row(5, "takedown.restored", "owner", "td-a"),
        row(6, "takedown.restored", "claimant", "td-a"),
        row(7, "job.published", job_id="job-2"),
    ]


def test_old_delivery_inputs_decode_as_the_owners() -> None:
    old = DeliverWebhooksInput.model_validate_json('{"job_id": "j", "callback_url": "http://x"}')
    assert old.recipient == "owner" and old.takedown_id is None


async def test_each_recipient_gets_only_its_rows() -> None:
    db = FakeDB(outbox())
    owner = DeliverWebhooksInput(job_id="job-1", callback_url="http://o")
    claimant_a = DeliverWebhooksInput(job_id="job-1", callback_url="http://a",
                                      recipient="claimant", takedown_id="td-a")  # fmt: skip
    claimant_b = claimant_a.model_copy(update={"takedown_id": "td-b"})
    assert [r["id"] for r in await pending_events(db, owner)] == [1, 2, 5]  # type: ignore[arg-type]
    assert [r["id"] for r in await pending_events(db, claimant_a)] == [3, 6]  # type: ignore[arg-type]
    assert [r["id"] for r in await pending_events(db, claimant_b)] == [4]  # type: ignore[arg-type]


async def test_a_claimant_delivery_without_its_takedown_is_refused() -> None:
    db = FakeDB(outbox())
    inp = DeliverWebhooksInput(job_id="job-1", callback_url="http://a", recipient="claimant")
    with pytest.raises(ApplicationError) as refused:
        await pending_events(db, inp)  # type: ignore[arg-type]
    assert refused.value.type == WEBHOOK_REJECTED and refused.value.non_retryable
    assert db.pool.queries == []  # nothing read, so nothing could be sent anywhere


async def test_deliveries_go_to_their_own_url_signed(receiver: WebhookReceiver) -> None:
    db = FakeDB(outbox())
    acts = WebhookActivities(db, secret=SECRET, timeout_s=5)  # type: ignore[arg-type]
    env = ActivityEnvironment()
    claimant = DeliverWebhooksInput(job_id="job-1", callback_url=f"{receiver.base}/claimant",
                                    recipient="claimant", takedown_id="td-a")  # fmt: skip
    out = await env.run(acts.deliver_webhooks, claimant)
    assert out.delivered == 2
    owner = DeliverWebhooksInput(job_id="job-1", callback_url=f"{receiver.base}/owner")
    assert (await env.run(acts.deliver_webhooks, owner)).delivered == 3
    assert [(r.path, r.event["event"], r.status) for r in receiver.requests] == [
        ("/claimant", "takedown.filed", 204),
        ("/claimant", "takedown.restored", 204),
        ("/owner", "job.published", 204),
        ("/owner", "takedown.filed", 204),
        ("/owner", "takedown.restored", 204),
    ]
    # Delivered rows are not sent again; the other claimant's and job's rows are still pending.
    assert (await env.run(acts.deliver_webhooks, claimant)).delivered == 0
    assert [r["id"] for r in db.pool.rows if r["delivered_at"] is None] == [4, 7]

"""Job events reach the requester's callback URL once, signed, despite a failing receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from infra.db import Database
from infra.stack import LocalStack
from schemas.jobs import Stage
from tests.integration.helpers import short_request, wait_for_stage
from tests.webhook_receiver import WebhookReceiver, serving
from tunesmith import Client

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with serving(fail_first=1) as r:
        yield r


async def test_published_event_is_delivered_once_after_a_receiver_error(
    client: Client, db: Database, stack: LocalStack, receiver: WebhookReceiver
) -> None:
    handle = await client.submit(short_request(seed=61, duration_s=5.0,
                                               callback_url=receiver.url))  # fmt: skip
    result = await handle.result()  # not held up by the failing receiver
    assert result.stage is Stage.PUBLISHED
    await receiver.wait_accepted(1)

    assert len(receiver.requests) == 2  # one 503, then accepted
    first, accepted = receiver.requests
    assert (first.status, accepted.status) == (503, 204)
    headers, body = accepted.headers, accepted.body
    assert (
        headers["Idempotency-Key"]
        == first.headers["Idempotency-Key"]
        == f"{handle.job_id}:job.published"
    )
    assert body == first.body
    event = json.loads(body)
    assert event["event"] == "job.published" and event["job_id"] == handle.job_id
    assert event["data"]["artifacts"]["published_wav24"] == result.artifacts["published_wav24"]
    secret = stack.child_env()["TUNESMITH_WEBHOOK_SECRET"]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Tunesmith-Signature"] == expected

    (row,) = await db.outbox(handle.job_id)
    assert row["delivered_at"] is not None and row["attempts"] == 2 and row["last_error"] is None


async def test_rejection_is_delivered_too(
    client: Client, db: Database, receiver: WebhookReceiver
) -> None:
    handle = await client.submit(short_request(seed=62, duration_s=5.0, review="required",
                                               callback_url=receiver.url))  # fmt: skip
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    await handle.reject(reviewer="dana", reason="off brand")
    await receiver.wait_accepted(1)
    event = receiver.accepted()[0].event
    assert event["event"] == "job.rejected" and event["data"]["note"] == "off brand"


def test_callback_url_must_be_http() -> None:
    from schemas.errors import InvalidRequestError

    for bad in ("ftp://example.org/x", "not a url", "http://"):
        with pytest.raises(InvalidRequestError, match="callback_url"):
            short_request(callback_url=bad)

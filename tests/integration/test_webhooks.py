"""Job events reach the requester's callback URL once, signed, despite a failing receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.db import Database
from infra.stack import LocalStack
from schemas.jobs import Stage
from tests.integration.helpers import short_request, wait_for_stage
from tunesmith import Client

pytestmark = pytest.mark.integration


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 503 to the first `fail_first` requests."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 503 if len(receiver.requests) < receiver.fail_first else 204
                receiver.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tunesmith"

    def accepted(self) -> list[tuple[dict[str, str], bytes, int]]:
        return [r for r in self.requests if r[2] == 204]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


async def _wait_accepted(receiver: Receiver, count: int) -> None:
    for _ in range(300):
        if len(receiver.accepted()) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"receiver got {receiver.requests}")


async def test_published_event_is_delivered_once_after_a_receiver_error(
    client: Client, db: Database, stack: LocalStack, receiver: Receiver
) -> None:
    handle = await client.submit(short_request(seed=61, duration_s=5.0,
                                               callback_url=receiver.url))  # fmt: skip
    result = await handle.result()  # not held up by the failing receiver
    assert result.stage is Stage.PUBLISHED
    await _wait_accepted(receiver, 1)

    assert len(receiver.requests) == 2  # one 503, then accepted
    (first_headers, first_body, _), (headers, body, _) = receiver.requests
    assert (
        headers["Idempotency-Key"]
        == first_headers["Idempotency-Key"]
        == f"{handle.job_id}:job.published"
    )
    assert body == first_body
    event = json.loads(body)
    assert event["event"] == "job.published" and event["job_id"] == handle.job_id
    assert event["data"]["artifacts"]["published_wav24"] == result.artifacts["published_wav24"]
    secret = stack.child_env()["TUNESMITH_WEBHOOK_SECRET"]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Tunesmith-Signature"] == expected

    (row,) = await db.outbox(handle.job_id)
    assert row["delivered_at"] is not None and row["attempts"] == 2 and row["last_error"] is None


async def test_rejection_is_delivered_too(client: Client, db: Database, receiver: Receiver) -> None:
    handle = await client.submit(short_request(seed=62, duration_s=5.0, review="required",
                                               callback_url=receiver.url))  # fmt: skip
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    await handle.reject(reviewer="dana", reason="off brand")
    await _wait_accepted(receiver, 1)
    event = json.loads(receiver.accepted()[0][1])
    assert event["event"] == "job.rejected" and event["data"]["note"] == "off brand"


def test_callback_url_must_be_http() -> None:
    from schemas.errors import InvalidRequestError

    for bad in ("ftp://example.org/x", "not a url", "http://"):
        with pytest.raises(InvalidRequestError, match="callback_url"):
            short_request(callback_url=bad)

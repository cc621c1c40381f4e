"""A webhook consumer for tests: an HTTP server on 127.0.0.1 (free port) that records each POST.

Like a real consumer it can check the HMAC signature of the raw body (a bad one gets 401) and
be flaky (503 to its first requests); `events()` is what a consumer that drops redeliveries by
`Idempotency-Key` would have handled.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _sign(secret: str, body: bytes) -> str:
    # Computed here, not with activities.publish.webhooks.sign: the test checks the scheme too.
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One POST as received, with the status the receiver answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class WebhookReceiver:
    """Records every request; with `secret`, answers 401 to a wrong signature; answers 503 to
    the first `fail_first` requests; else 204."""

    def __init__(self, secret: str | None = None, fail_first: int = 0) -> None:
        self.requests: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get("X-Tunesmith-Signature", "")
                if secret is not None and not hmac.compare_digest(signature, _sign(secret, body)):
                    status = 401
                elif len(receiver.requests) < fail_first:
                    status = 503
                else:
                    status = 204
                receiver.requests.append(Delivery(self.path, dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/hooks/tunesmith"

    def accepted(self) -> list[Delivery]:
        return [r for r in self.requests if r.status == 204]

    @property
    def refused(self) -> int:
        """Requests whose signature did not verify."""
        return sum(r.status == 401 for r in self.requests)

    def events(self) -> list[dict[str, Any]]:
        """Accepted events, each once (by Idempotency-Key), in arrival order, with that key."""
        seen: set[str] = set()
        out = []
        for r in self.accepted():
            key = r.headers["Idempotency-Key"]
            if key not in seen:
                seen.add(key)
                out.append(r.event | {"idempotency_key": key})
        return out

    def names(self) -> list[str]:
        return [e["event"] for e in self.events()]

    async def wait_for(self, event: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The first accepted `event`; AssertionError after `timeout_s`."""
        for _ in range(int(timeout_s / 0.1)):
            for received in self.events():
                if received["event"] == event:
                    return received
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {event} event; received {self.names()}")

    async def wait_accepted(self, count: int, timeout_s: float = 30.0) -> None:
        for _ in range(int(timeout_s / 0.1)):
            if len(self.accepted()) >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"receiver got {self.requests}")


@contextmanager
def serving(secret: str | None = None, fail_first: int = 0) -> Iterator[WebhookReceiver]:
    """A running `WebhookReceiver`, always shut down afterwards."""
    receiver = WebhookReceiver(secret, fail_first)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()

"""The `deliver_webhooks` activity (CPU queue): POST a job's outbox events to its callback URL.

Every outbox row has a recipient: the job's owner (job events, the owner's takedown events) or
a takedown's claimant. A delivery run sends only its own recipient's rows, so an owner's URL
never receives claimant events and a claimant never sees the owner's.

Each event carries its outbox idempotency key (`Idempotency-Key` header, the same on every
attempt) so a receiver that sees a retry can drop the duplicate; bodies are HMAC-signed when
`TUNESMITH_WEBHOOK_SECRET` is set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from infra.db import Database
from schemas import names
from schemas.errors import WEBHOOK_REJECTED
from schemas.jobs import DeliverWebhooksInput, DeliverWebhooksOutput

# Statuses after which the same request may succeed later; other 4xx mean "never".
_RETRYABLE_4XX = {408, 409, 425, 429}


def sign(secret: str, body: bytes) -> str:
    """The X-Tunesmith-Signature value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def pending_events(db: Database, inp: DeliverWebhooksInput) -> list[dict[str, Any]]:
    """The outbox events of `inp`'s recipient not yet accepted by the receiver, oldest first.

    Owner: every owner row of the job (rows written before recipients existed are the owner's).
    Claimant: only the rows of `inp.takedown_id`.
    """
    if inp.recipient == "claimant" and not inp.takedown_id:
        raise ApplicationError(
            "a claimant delivery needs its takedown_id", type=WEBHOOK_REJECTED, non_retryable=True
        )
    rows = await db.pool.fetch(
        """
        SELECT id, event, idempotency_key, payload FROM webhook_outbox
        WHERE job_id = $1 AND delivered_at IS NULL AND recipient = $2
          AND ($2 = 'owner' OR takedown_id = $3)
        ORDER BY id
        """,
        inp.job_id,
        inp.recipient,
        inp.takedown_id,
    )
    return [dict(r) for r in rows]


class WebhookActivities:
    """Webhook delivery, bound to the DB (the outbox) and the signing secret."""

    def __init__(self, db: Database, *, secret: str | None, timeout_s: float) -> None:
        self.db = db
        self.secret = secret
        self.timeout_s = timeout_s

    @activity.defn(name=names.DELIVER_WEBHOOKS)
    async def deliver_webhooks(self, inp: DeliverWebhooksInput) -> DeliverWebhooksOutput:
        """Deliver every pending outbox event of the job for `inp.recipient`, in order.

        Raises:
            ApplicationError: retryable on network errors and 5xx/408/429 (the workflow's retry
                policy backs off), non-retryable `WebhookRejected` on other 4xx.
        """
        delivered = 0
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            for event in await pending_events(self.db, inp):
                body = json.dumps(
                    {"event": event["event"], "job_id": inp.job_id, "data": event["payload"]},
                    sort_keys=True,
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": event["idempotency_key"],
                    "X-Tunesmith-Event": event["event"],
                }
                if self.secret:
                    headers["X-Tunesmith-Signature"] = sign(self.secret, body)
                try:
                    response = await http.post(inp.callback_url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    await self.db.record_webhook_attempt(event["id"], error=repr(exc))
                    raise ApplicationError(f"webhook delivery failed: {exc!r}") from None
                if response.is_success:
                    await self.db.record_webhook_attempt(event["id"], error=None)
                    delivered += 1
                    continue
                error = f"HTTP {response.status_code} from {inp.callback_url}"
                await self.db.record_webhook_attempt(event["id"], error=error)
                retryable = response.status_code >= 500 or response.status_code in _RETRYABLE_4XX
                raise ApplicationError(
                    f"webhook {error}", type=None if retryable else WEBHOOK_REJECTED,
                    non_retryable=not retryable,
                )  # fmt: skip
        return DeliverWebhooksOutput(delivered=delivered)

"""Two-reviewer approvals and escalation, end to end on a private stack with its own policy.

The stack's workers read `TUNESMITH_REVIEW_POLICY_DIR`: a policy where every job needs two
approvals, escalates to seniors after ESCALATE_AFTER_S and expires after TIMEOUT_S. The
escalation time must leave room for a few CLI calls (seconds each on a loaded machine) in the
tests that decide before it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from activities.review import store as review_db
from infra.db import Database
from infra.stack import LocalStack
from schemas.jobs import JobStatus, Stage
from tests.conftest import make_settings, private_home, private_stack
from tests.integration.helpers import add_reviewer, run_cli, short_request, wait_for_stage
from tunesmith import Client

pytestmark = pytest.mark.integration

ESCALATE_AFTER_S = 40
TIMEOUT_S = 120
POLICY = f"""
name = "review-policy"
version = 1
timeout = "{TIMEOUT_S}s"

[escalation]
after = "{ESCALATE_AFTER_S}s"
target = "senior"

[[rules]]
name = "every job, two reviewers"
risk = ["clear", "review", "block"]
approvals = 2
"""


TOKENS: dict[str, str] = {}  # reviewer -> the token `reviewers add` issued


@pytest.fixture(scope="module")
def review_stack() -> Iterator[LocalStack]:
    """A private stack (free ports, temp home) whose workers use the two-reviewer policy."""
    home = private_home("tunesmith-review2-")
    home.mkdir()
    policy_dir = home / "policies"
    policy_dir.mkdir()
    (policy_dir / "review-policy@1.toml").write_text(POLICY)
    settings = make_settings(home, review_policy_dir=policy_dir)
    with private_stack(settings, {"TUNESMITH_REVIEW_POLICY_DIR": str(policy_dir)}) as local:
        for name, role in (("alice", "reviewer"), ("bob", "reviewer"), ("carol", "senior")):
            TOKENS[name] = add_reviewer(local, name, "--role", role)
        yield local


@pytest.fixture
async def client(review_stack: LocalStack) -> Client:
    return await Client.connect(review_stack.settings)


@pytest.fixture
async def rdb(review_stack: LocalStack) -> AsyncIterator[Database]:
    database = await Database.open(review_stack.settings, max_size=2)
    try:
        yield database
    finally:
        await database.close()


async def _awaiting(client: Client, seed: int) -> tuple[str, float]:
    """Submit a short job; return its id and when it started waiting for reviewers."""
    handle = await client.submit(short_request(duration_s=5.0, seed=seed))
    status = await wait_for_stage(handle, Stage.AWAITING_REVIEW, timeout_s=180)
    assert status.required_approvals == 2, status
    return handle.job_id, time.monotonic()


def _decide(stack: LocalStack, job_id: str, reviewer: str, decision: str = "approve") -> str:
    """`tunesmith review approve|reject`; returns its exit code and output, for asserts."""
    extra = ["--reason", "off brand"] if decision == "reject" else []
    out = run_cli(stack, "review", decision, job_id, "--reviewer", reviewer, *extra,
                  env={"TUNESMITH_REVIEWER_TOKEN": TOKENS[reviewer]})  # fmt: skip
    return f"rc={out.returncode}\n{out.stdout}{out.stderr}"


async def _audit(db: Database, job_id: str) -> list[tuple[object, ...]]:
    rows = await review_db.audit_log(db, job_id)
    return [(a["action"], a["reviewer"], a["decision"], a["accepted"]) for a in rows]


async def _status(client: Client, job_id: str) -> JobStatus:
    return await client.get_handle(job_id).status()


async def test_two_reviewers_publish(
    review_stack: LocalStack, client: Client, rdb: Database
) -> None:
    job_id, since = await _awaiting(client, seed=41)

    first = _decide(review_stack, job_id, "alice")
    assert first.startswith("rc=0") and "1 of 2 approvals (alice)" in first, first
    status = await _status(client, job_id)
    assert status.stage is Stage.AWAITING_REVIEW and status.approvals == ["alice"]

    again = _decide(review_stack, job_id, "alice")
    assert again.startswith("rc=2") and "alice already approved" in again, again

    second = _decide(review_stack, job_id, "bob")
    assert second.startswith("rc=0") and "published" in second, second
    assert time.monotonic() - since < ESCALATE_AFTER_S, "too slow: the job was escalated"
    result = await client.get_handle(job_id).result()
    assert result.stage is Stage.PUBLISHED and result.review and result.review.reviewer == "bob"
    final = await _status(client, job_id)
    assert final.approvals == ["alice", "bob"] and final.escalated_to is None

    assert await _audit(rdb, job_id) == [
        ("update", "alice", "approve", True),
        ("client", "alice", "approve", False),
        ("update", "bob", "approve", True),
        ("outcome", "bob", "approved", True),
    ]


async def test_one_rejection_rejects(
    review_stack: LocalStack, client: Client, rdb: Database
) -> None:
    job_id, since = await _awaiting(client, seed=42)

    first = _decide(review_stack, job_id, "alice")
    assert first.startswith("rc=0") and "1 of 2 approvals" in first, first
    rejected = _decide(review_stack, job_id, "bob", "reject")
    assert rejected.startswith("rc=0") and "rejected" in rejected, rejected
    assert time.monotonic() - since < ESCALATE_AFTER_S, "too slow: the job was escalated"

    result = await client.get_handle(job_id).result()
    assert result.stage is Stage.REJECTED
    job = await rdb.get_job(job_id)
    assert job is not None and job["review_state"] == "rejected"
    assert await _audit(rdb, job_id) == [
        ("update", "alice", "approve", True),
        ("update", "bob", "reject", True),
        ("outcome", "bob", "rejected", True),
    ]
    events = await rdb.pool.fetch("SELECT event FROM webhook_outbox WHERE job_id = $1", job_id)
    assert [e["event"] for e in events] == ["job.rejected"]


async def test_escalation_restricts_to_seniors(
    review_stack: LocalStack, client: Client, rdb: Database
) -> None:
    """After `after`: a `review.escalated` event; reviewers are refused; two seniors-or-above
    (distinct, as ever) still have to approve."""
    TOKENS["dave"] = add_reviewer(review_stack, "dave", "--role", "admin")
    job_id, since = await _awaiting(client, seed=43)

    deadline = since + ESCALATE_AFTER_S + 60
    while (status := await _status(client, job_id)).escalated_to is None:
        assert time.monotonic() < deadline, f"never escalated: {status}"
        await asyncio.sleep(0.5)
    assert status.escalated_to == "senior" and status.stage is Stage.AWAITING_REVIEW
    assert time.monotonic() - since >= ESCALATE_AFTER_S - 1
    events = await rdb.pool.fetch(
        "SELECT event, payload FROM webhook_outbox WHERE job_id = $1", job_id
    )
    assert [e["event"] for e in events] == ["review.escalated"]

    refused = _decide(review_stack, job_id, "alice")
    assert refused.startswith("rc=2") and "escalated to seniors" in refused, refused
    first = _decide(review_stack, job_id, "carol")
    assert first.startswith("rc=0") and "1 of 2 approvals (carol)" in first, first
    again = _decide(review_stack, job_id, "carol")
    assert again.startswith("rc=2") and "carol already approved" in again, again
    second = _decide(review_stack, job_id, "dave")
    assert second.startswith("rc=0") and "published" in second, second

    result = await client.get_handle(job_id).result()
    assert result.stage is Stage.PUBLISHED and result.review and result.review.reviewer == "dave"
    assert (await _status(client, job_id)).approvals == ["carol", "dave"]
    assert await _audit(rdb, job_id) == [
        ("escalate", None, "senior", True),
        ("update", "alice", "approve", False),
        ("update", "carol", "approve", True),
        ("client", "carol", "approve", False),
        ("update", "dave", "approve", True),
        ("outcome", "dave", "approved", True),
    ]

"""The review queue on the real stack: authorized reviewers, audit, annotations, revisions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from activities.review import store as review_db
from infra.db import Database
from infra.stack import LocalStack
from schemas import names
from schemas.errors import JobNotFoundError, ReviewNotAllowedError
from schemas.jobs import ReviewDecision, Stage
from tests.integration.helpers import run_cli, short_request, wait_for_stage
from tunesmith import Client


@pytest.fixture
async def reviewers(db: Database) -> AsyncIterator[None]:
    """Reviewers for this test; the table is emptied after (back to the bootstrap rule)."""
    await review_db.add_reviewer(db, "alice", role="reviewer", tenants=["acme"])
    await review_db.add_reviewer(db, "bob", role="senior", tenants=None)
    await review_db.add_reviewer(db, "dave", role="reviewer", tenants=["other"])
    await review_db.add_reviewer(db, "carol", role="admin", tenants=None)
    await review_db.remove_reviewer(db, "carol")
    try:
        yield
    finally:
        await db.pool.execute("DELETE FROM reviewers")


async def test_only_authorized_reviewers_decide_and_everything_is_audited(
    client: Client, db: Database, reviewers: None
) -> None:
    handle = await client.submit(short_request(review="required", seed=31, tenant="acme",
                                               duration_s=6.0))  # fmt: skip
    # Refused by the update validator (still generating): the workflow never sees it, the SDK
    # audits it (action "client").
    with pytest.raises(ReviewNotAllowedError, match="not awaiting review"):
        await handle.approve(reviewer="alice", note="too early")
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    refusals = {"mallory": "unknown reviewer", "dave": "may not review tenant 'acme'",
                "carol": "inactive"}  # fmt: skip
    for reviewer, reason in refusals.items():
        with pytest.raises(ReviewNotAllowedError, match=reason):
            await handle.approve(reviewer=reviewer)
    status = await handle.status()
    assert status.stage is Stage.AWAITING_REVIEW and status.approvals == []
    assert status.required_approvals == 1

    # A signal cannot be refused: it is ignored and audited.
    wf = client.temporal.get_workflow_handle(handle.job_id)
    await wf.signal(names.REVIEW_SIGNAL, ReviewDecision(decision="reject", reviewer="mallory"))
    for _ in range(100):
        audit = await review_db.audit_log(db, handle.job_id)
        if any(a["action"] == "signal" for a in audit):
            break
        await asyncio.sleep(0.1)
    assert (await handle.status()).stage is Stage.AWAITING_REVIEW

    status = await handle.approve(reviewer="alice", note="fine")
    assert status.stage is not Stage.AWAITING_REVIEW
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED and result.review and result.review.reviewer == "alice"
    with pytest.raises(ReviewNotAllowedError, match="not awaiting review"):
        await handle.reject(reviewer="bob", reason="late")

    audit = await review_db.audit_log(db, handle.job_id)
    rows = [(a["action"], a["reviewer"], a["decision"], a["accepted"]) for a in audit]
    assert rows == [
        ("client", "alice", "approve", False),
        ("update", "mallory", "approve", False),
        ("update", "dave", "approve", False),
        ("update", "carol", "approve", False),
        ("signal", "mallory", "reject", False),
        ("update", "alice", "approve", True),
        ("outcome", "alice", "approved", True),
        ("client", "bob", "reject", False),  # the job had finished: audited by the SDK
    ]
    assert "not awaiting review" in audit[0]["reason"]
    assert "unknown reviewer" in audit[1]["reason"]
    assert "not awaiting review (stage: published)" in audit[-1]["reason"]


async def test_sdk_decision_on_an_unknown_job_is_audited(client: Client, db: Database) -> None:
    job_id = "job-sdk-audit-unknown"
    with pytest.raises(JobNotFoundError):
        await client.get_handle(job_id).reject(reviewer="alice", reason="no such job")
    audit = await review_db.audit_log(db, job_id)
    assert [(a["action"], a["reviewer"], a["decision"], a["accepted"]) for a in audit] == [
        ("client", "alice", "reject", False)
    ]
    await db.pool.execute("DELETE FROM review_audit WHERE job_id = $1", job_id)


def test_review_cli_annotate_stats_open_revise(stack: LocalStack) -> None:
    gen = run_cli(stack, "generate", "revise me", "--duration", "6", "--seed", "5", "--tenant",
                  "revtenant", "--review", "required", "--wait")  # fmt: skip
    assert gen.returncode == 0, gen.stdout + gen.stderr
    job_id = gen.stdout.split()[1]

    listed = run_cli(stack, "review", "list", "--tenant", "revtenant", "--json")
    assert job_id in listed.stdout
    assert job_id not in run_cli(stack, "review", "list", "--older-than", "1d").stdout
    assert job_id not in run_cli(stack, "review", "list", "--risk", "block").stdout
    bad_age = run_cli(stack, "review", "list", "--older-than", "soon")
    assert bad_age.returncode == 2 and "not a duration" in bad_age.stderr

    opened = run_cli(stack, "review", "open", job_id)
    assert opened.returncode == 0 and f"/workflows/{job_id}" in opened.stdout

    run_cli(stack, "reviewers", "add", "erin", "--role", "senior", "--tenant", "revtenant")
    try:
        assert "erin" in run_cli(stack, "reviewers", "list").stdout
        refused = run_cli(stack, "review", "approve", job_id, "--reviewer", "zed")
        assert refused.returncode == 2 and "unknown reviewer 'zed'" in refused.stderr
        ok = run_cli(stack, "review", "approve", job_id, "--reviewer", "erin")
        assert ok.returncode == 0 and "published" in ok.stdout, ok.stdout + ok.stderr
        note = run_cli(stack, "review", "annotate", job_id, "--reviewer", "erin", "--tag",
                       "muddy-mix", "--rating", "4", "--note", "eq'd", "--post-edit")  # fmt: skip
        assert note.returncode == 0, note.stderr
        bad = run_cli(stack, "review", "annotate", job_id, "--reviewer", "zed", "--rating", "3")
        assert bad.returncode == 2 and "unknown reviewer" in bad.stderr
        assert run_cli(stack, "review", "annotate", job_id, "--reviewer", "erin",
                       "--rating", "9").returncode != 0  # fmt: skip
    finally:
        run_cli(stack, "reviewers", "remove", "erin", "--purge")
    stats = run_cli(stack, "review", "stats")
    line = next(x for x in stats.stdout.splitlines() if "revtenant" in x)
    assert "100%" in line and "4.00" in line, stats.stdout
    shown = run_cli(stack, "review", "show", job_id)
    assert "controls:" in shown.stdout and "update approve by erin: accepted" in shown.stdout

    revised = run_cli(stack, "review", "revise", job_id, "--set", "tempo_bpm=100", "--set",
                      "key=A minor")  # fmt: skip
    assert revised.returncode == 0, revised.stderr
    new_id = re.findall(r"job-[0-9a-f]{24}", revised.stdout)[0]
    assert new_id != job_id and f"revision of {job_id}" in revised.stdout
    detail = run_cli(stack, "jobs", "show", new_id)
    assert f'"revision_of": "{job_id}"' in detail.stdout
    assert '"tempo_bpm": 100' in detail.stdout

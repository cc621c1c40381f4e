"""The review queue on the real stack: authorized reviewers, audit, annotations, revisions."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator

import pytest

from activities.review import store as review_db
from activities.review.proof import review_proof
from infra.db import Database
from infra.stack import LocalStack, console_script
from schemas import names
from schemas.errors import JobNotFoundError, ReviewNotAllowedError
from schemas.jobs import ReviewDecision, Stage
from tests.integration.helpers import add_reviewer, run_cli, short_request, wait_for_stage
from tunesmith import Client


@pytest.fixture
async def reviewers(db: Database) -> AsyncIterator[dict[str, str]]:
    """Reviewers (name -> token) for this test; the table is emptied after (back to the
    bootstrap rule)."""
    tokens = {
        "alice": await review_db.add_reviewer(db, "alice", role="reviewer", tenants=["acme"]),
        "bob": await review_db.add_reviewer(db, "bob", role="senior", tenants=None),
        "dave": await review_db.add_reviewer(db, "dave", role="reviewer", tenants=["other"]),
        "carol": await review_db.add_reviewer(db, "carol", role="admin", tenants=None),
    }
    await review_db.remove_reviewer(db, "carol")
    try:
        yield {name: token for name, token in tokens.items() if token}
    finally:
        await db.pool.execute("DELETE FROM reviewers")


async def test_only_authorized_reviewers_decide_and_everything_is_audited(
    client: Client, db: Database, reviewers: dict[str, str]
) -> None:
    tokens = reviewers
    assert set(tokens) == {"alice", "bob", "dave", "carol"}  # each issued a token
    handle = await client.submit(short_request(review="required", seed=31, tenant="acme",
                                               duration_s=6.0))  # fmt: skip
    # Refused by the update validator (still generating): the workflow never sees it, the SDK
    # audits it (action "client").
    with pytest.raises(ReviewNotAllowedError, match="not awaiting review"):
        await handle.approve(reviewer="alice", note="too early", token=tokens["alice"])
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    refusals = {"mallory": "unknown reviewer", "dave": "may not review tenant 'acme'",
                "carol": "inactive"}  # fmt: skip
    for reviewer, reason in refusals.items():
        with pytest.raises(ReviewNotAllowedError, match=reason):
            await handle.approve(reviewer=reviewer, token=tokens.get(reviewer, "rvt_guess"))
    # A registered name is not enough: the decision must be signed with that reviewer's token.
    other_job = review_proof(tokens["alice"], job_id="job-other", reviewer="alice",
                             decision="approve")  # fmt: skip
    forged = {
        "carries no proof": ReviewDecision(decision="approve", reviewer="alice"),
        "does not match": ReviewDecision(
            decision="approve", reviewer="alice",
            proof=review_proof(tokens["bob"], job_id=handle.job_id, reviewer="alice",
                               decision="approve"),
        ),  # signed with someone else's token
        "does not match ": ReviewDecision(decision="approve", reviewer="alice", proof=other_job),
    }  # fmt: skip
    for reason, decision in forged.items():
        with pytest.raises(ReviewNotAllowedError, match=reason.strip()):
            await handle._submit_review(decision)
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

    status = await handle.approve(reviewer="alice", note="fine", token=tokens["alice"])
    assert status.stage is not Stage.AWAITING_REVIEW
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED and result.review and result.review.reviewer == "alice"
    with pytest.raises(ReviewNotAllowedError, match="not awaiting review"):
        await handle.reject(reviewer="bob", reason="late", token=tokens["bob"])

    audit = await review_db.audit_log(db, handle.job_id)
    rows = [(a["action"], a["reviewer"], a["decision"], a["accepted"]) for a in audit]
    assert rows == [
        ("client", "alice", "approve", False),
        ("update", "mallory", "approve", False),
        ("update", "dave", "approve", False),
        ("update", "carol", "approve", False),
        ("update", "alice", "approve", False),  # no proof
        ("update", "alice", "approve", False),  # bob's token
        ("update", "alice", "approve", False),  # another job's proof
        ("signal", "mallory", "reject", False),
        ("update", "alice", "approve", True),
        ("outcome", "alice", "approved", True),
        ("client", "bob", "reject", False),  # the job had finished: audited by the SDK
    ]
    assert "not awaiting review" in audit[0]["reason"]
    assert "unknown reviewer" in audit[1]["reason"]
    assert "carries no proof" in audit[4]["reason"] and "does not match" in audit[5]["reason"]
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

    token = add_reviewer(stack, "erin", "--role", "senior", "--tenant", "revtenant")
    try:
        assert "erin" in run_cli(stack, "reviewers", "list").stdout
        refused = run_cli(stack, "review", "approve", job_id, "--reviewer", "zed")
        assert refused.returncode == 2 and "unknown reviewer 'zed'" in refused.stderr
        unsigned = run_cli(stack, "review", "approve", job_id, "--reviewer", "erin")
        assert unsigned.returncode == 2 and "carries no proof" in unsigned.stderr
        ok = run_cli(stack, "review", "approve", job_id, "--reviewer", "erin",
                     env={"TUNESMITH_REVIEWER_TOKEN": token})  # fmt: skip
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


async def test_stock_temporal_signal_counts_only_with_the_reviewers_proof(
    client: Client, db: Database, stack: LocalStack
) -> None:
    """The documented operator path: `tunesmith review proof` signs, the stock `temporal
    workflow signal` sends; the same signal without (or with a reused) proof is ignored and
    audited."""
    token = add_reviewer(stack, "sam", "--role", "reviewer")
    try:
        handle = await client.submit(short_request(review="required", seed=37, duration_s=5.0))
        await wait_for_stage(handle, Stage.AWAITING_REVIEW)

        def stock_signal(body: dict[str, str]) -> None:
            proc = subprocess.run(
                [console_script("temporal"), "workflow", "signal",
                 "--address", stack.settings.temporal_target, "--workflow-id", handle.job_id,
                 "--name", names.REVIEW_SIGNAL, "--input", json.dumps(body)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr

        async def audited(n: int) -> list[dict[str, object]]:
            for _ in range(150):
                rows = [a for a in await review_db.audit_log(db, handle.job_id)
                        if a["action"] == "signal"]  # fmt: skip
                if len(rows) >= n:
                    return rows
                await asyncio.sleep(0.1)
            raise AssertionError(f"fewer than {n} signal audit rows")

        stock_signal({"decision": "approve", "reviewer": "sam"})
        reused = review_proof(token, job_id="job-elsewhere", reviewer="sam", decision="approve")
        stock_signal({"decision": "approve", "reviewer": "sam", "proof": reused})
        rows = await audited(2)
        assert [r["accepted"] for r in rows] == [False, False]
        assert "carries no proof" in str(rows[0]["reason"])
        assert "does not match" in str(rows[1]["reason"])
        assert (await handle.status()).stage is Stage.AWAITING_REVIEW

        no_token = run_cli(stack, "review", "proof", handle.job_id, "--reviewer", "sam",
                           "--decision", "approve")  # fmt: skip
        assert no_token.returncode == 2 and "TUNESMITH_REVIEWER_TOKEN" in no_token.stderr
        signer = {"TUNESMITH_REVIEWER_TOKEN": token}
        proof = run_cli(stack, "review", "proof", handle.job_id, "--reviewer", "sam",
                        "--decision", "approve", env=signer)  # fmt: skip
        assert proof.returncode == 0, proof.stderr
        assert "temporal workflow signal" in proof.stderr
        stock_signal({"decision": "approve", "reviewer": "sam", "proof": proof.stdout.strip()})
        result = await handle.result()
        assert result.stage is Stage.PUBLISHED and result.review and result.review.reviewer == "sam"

        rotated = run_cli(stack, "reviewers", "rotate", "sam")
        assert rotated.returncode == 0 and "rvt_" in rotated.stdout and token not in rotated.stdout
        assert run_cli(stack, "reviewers", "rotate", "nobody-here").returncode == 2
    finally:
        await db.pool.execute("DELETE FROM reviewers")

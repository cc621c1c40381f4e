"""Takedown end to end on the real stack: quarantine, dispute, remove (→ catalog) or restore."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from activities.takedown.store import TakedownDB
from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import Stage
from schemas.takedown import TakedownSettings
from tests.integration.helpers import run_cli, short_request, wait_for_stage
from tunesmith import Client

pytestmark = pytest.mark.integration

QUARANTINE = TakedownSettings().quarantine_bucket


def takedown_cli(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """`tunesmith takedown ...` against the test stack."""
    return run_cli(stack, "takedown", *args)


def ok(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    return proc.stderr


async def published_job(client: Client, seed: int, duration_s: float = 6.0) -> str:
    # Own prompt and seeds: the audio this module adds to the catalog must not match other
    # tests' (default-seed) tracks; the fixture below also removes it afterwards.
    handle = await client.submit(
        short_request(prompt="takedown piece", duration_s=duration_s, seed=seed)
    )
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED
    return handle.job_id


def http_status(url: str) -> int:
    return httpx.get(url, timeout=10).status_code


@pytest.fixture(scope="module", autouse=True)
async def forget_takedown_catalog(db: Database) -> AsyncIterator[None]:
    yield
    await db.pool.execute("DELETE FROM catalog_recordings WHERE title LIKE 'takedown: %'")


async def test_takedown_dispute_and_removal(
    client: Client, db: Database, store: ObjectStore, stack: LocalStack, tmp_path
) -> None:
    # 10 s: a whole-file copy starting at 0 s must run ≥ 6 s of fingerprint to count (intros).
    job_id = await published_job(client, seed=9101, duration_s=10.0)
    published = store.settings.published_bucket
    keys = store.list_keys(published, f"{job_id}/")
    wav_uri = f"s3://{published}/{job_id}/{job_id}.wav"
    assert f"{job_id}/{job_id}.wav" in keys
    original = store.download(wav_uri, tmp_path / "original.wav")
    link = store.presigned_get(wav_uri)
    assert http_status(link) == 200

    # Bad input first: nothing may start.
    refused(takedown_cli(stack, "file", "job-nope", "--claimant", "X", "--evidence", "e",
                         "--contact", "x@example.com"), "no job")  # fmt: skip
    refused(takedown_cli(stack, "file", job_id, "--claimant", "X", "--evidence", "e",
                         "--contact", "not-an-email"), "email")  # fmt: skip
    refused(takedown_cli(stack, "show", job_id), "no takedown")

    claim = ["--claimant", "Acme Records", "--evidence", "copies our single 'Groove'",
             "--contact", "legal@acme.example", "--evidence-url", "https://acme.example/c/1",
             "--json"]  # fmt: skip
    filed = ok(takedown_cli(stack, "file", job_id, *claim))
    assert filed["created"] is True and filed["workflow_id"] == f"takedown-{job_id}"
    assert filed["state"] == "quarantined" and filed["owner"] == "default"
    assert sorted(filed["objects"]) == sorted(keys)
    # Out of the published bucket at once: the presigned link stops working.
    assert store.list_keys(published, f"{job_id}/") == []
    assert sorted(store.list_keys(QUARANTINE, f"{job_id}/")) == sorted(keys)
    assert http_status(link) == 404

    again = ok(takedown_cli(stack, "file", job_id, *claim))
    assert again["created"] is False and again["takedown_id"] == filed["takedown_id"]

    job = await db.get_job(job_id)
    assert job is not None and job["stage"] == "published"  # stage semantics unchanged
    assert job["takedown_state"] == "quarantined"
    events = [e["event"] for e in await db.outbox(job_id)]
    assert "takedown.filed" in events

    refused(takedown_cli(stack, "decide", job_id, "remove", "--reviewer", " "), "reviewer")
    refused(takedown_cli(stack, "decide", job_id, "remove", "--reviewer", "Acme Records"),
            "party")  # fmt: skip
    refused(takedown_cli(stack, "dispute", job_id, "--by", "mallory", "--reason", "x"), "owner")
    disputed = ok(takedown_cli(stack, "dispute", job_id, "--by", "default",
                               "--reason", "original work", "--json"))  # fmt: skip
    assert disputed["state"] == "disputed" and disputed["dispute"]["by"] == "default"
    refused(takedown_cli(stack, "dispute", job_id, "--by", "default", "--reason", "again"),
            "already disputed")  # fmt: skip

    removed = ok(takedown_cli(stack, "decide", job_id, "remove", "--reviewer", "alice",
                              "--note", "clear copy", "--json"))  # fmt: skip
    assert removed["state"] == "removed" and removed["recording_id"]
    assert store.list_keys(published, f"{job_id}/") == []
    assert store.list_keys(QUARANTINE, f"{job_id}/") == []
    recording = await db.pool.fetchrow(
        "SELECT title, owner FROM catalog_recordings WHERE recording_id = $1",
        removed["recording_id"],
    )
    assert recording is not None
    assert (recording["title"], recording["owner"]) == ("takedown: Acme Records", "Acme Records")
    check = ok(run_cli(stack, "similarity", "check", str(original), "--json"))
    assert check["risk"] == "block", check

    refused(takedown_cli(stack, "decide", job_id, "restore", "--reviewer", "bob"), "closed")
    refused(takedown_cli(stack, "file", job_id, *claim), "already removed")
    assert (await db.get_job(job_id))["takedown_state"] == "removed"  # type: ignore[index]

    shown = ok(takedown_cli(stack, "show", job_id, "--json"))
    actions = [e["action"] for e in shown["events"]]
    assert actions == ["filed", "quarantined", "disputed", "decided", "cataloged", "removed"], (
        actions
    )
    assert [e["actor"] for e in shown["events"]][-1] == "alice"
    listed = ok(takedown_cli(stack, "list", "--state", "removed", "--json"))
    assert filed["takedown_id"] in [r["takedown_id"] for r in listed]
    events = [e["event"] for e in await db.outbox(job_id)]
    assert {"takedown.filed", "takedown.disputed", "takedown.removed"} <= set(events)


async def test_late_dispute_is_refused_and_restore_republishes(
    client: Client, db: Database, store: ObjectStore, stack: LocalStack
) -> None:
    job_id = await published_job(client, seed=9202)
    published = store.settings.published_bucket
    keys = sorted(store.list_keys(published, f"{job_id}/"))
    wav_uri = f"s3://{published}/{job_id}/{job_id}.wav"
    filed = ok(takedown_cli(stack, "file", job_id, "--claimant", "Beta", "--evidence", "ours",
                            "--contact", "b@beta.example", "--dispute-window-s", "1",
                            "--json"))  # fmt: skip
    assert filed["state"] == "quarantined" and not store.exists(wav_uri)
    tdb = TakedownDB(db)
    for _ in range(100):  # the window's durable timer fires (audited) after ~1 s
        actions = [e["action"] for e in await tdb.events(filed["takedown_id"])]
        if "dispute_window_closed" in actions:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"dispute window never closed: {actions}")

    refused(takedown_cli(stack, "dispute", job_id, "--by", "default", "--reason", "late"),
            "window closed")  # fmt: skip
    # The stock signal path cannot be refused: it is ignored and audited.
    handle = client.temporal.get_workflow_handle(f"takedown-{job_id}")
    await handle.signal("dispute", {"by": "default", "reason": "late via signal"})
    for _ in range(100):
        actions = [e["action"] for e in await tdb.events(filed["takedown_id"])]
        if "dispute_ignored" in actions:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"late dispute signal not audited: {actions}")

    restored = ok(takedown_cli(stack, "decide", job_id, "restore", "--reviewer", "carol",
                               "--json"))  # fmt: skip
    assert restored["state"] == "restored" and restored["dispute"] is None
    assert sorted(store.list_keys(published, f"{job_id}/")) == keys
    assert store.list_keys(QUARANTINE, f"{job_id}/") == []
    assert http_status(store.presigned_get(wav_uri)) == 200
    assert (await db.get_job(job_id))["takedown_state"] == "restored"  # type: ignore[index]

    # A restored asset can be claimed again: a new takedown (new id) under the same workflow id.
    refiled = ok(takedown_cli(stack, "file", job_id, "--claimant", "Gamma", "--evidence", "x",
                              "--contact", "g@gamma.example", "--json"))  # fmt: skip
    assert refiled["created"] is True and refiled["takedown_id"] != filed["takedown_id"]
    ok(takedown_cli(stack, "decide", job_id, "restore", "--reviewer", "carol", "--json"))
    assert sorted(store.list_keys(published, f"{job_id}/")) == keys


async def test_unpublished_job_cannot_be_taken_down(client: Client, stack: LocalStack) -> None:
    handle = await client.submit(
        short_request(prompt="takedown unpublished", duration_s=6.0, seed=9303, review="required")
    )
    await wait_for_stage(handle, Stage.AWAITING_REVIEW, timeout_s=120)
    refused(takedown_cli(stack, "file", handle.job_id, "--claimant", "X", "--evidence", "e",
                         "--contact", "x@example.com"), "not published")  # fmt: skip
    described = client.temporal.get_workflow_handle(f"takedown-{handle.job_id}")
    with pytest.raises(Exception, match="not found"):
        await described.describe()
    await handle.reject(reviewer="alice", reason="cleanup")

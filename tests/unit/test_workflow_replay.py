"""Saved GenerateTrack histories still replay: workflow changes must stay deterministic.

When a change to the workflow is intended to be incompatible, guard it with `workflow.patched`
and record new histories next to these (see `tests/unit/histories/`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.generate_track import GenerateTrack

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[GenerateTrack], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_histories_cover_the_outcomes_and_the_newest_paths() -> None:
    # The three outcomes from before any patch, one auto-approved run through the per-model
    # GPU queue and the draft preview, and the review gate with authorization (escalation,
    # approvals by signal and update, expiry, webhook children), recorded with
    # `python -m tests.tools.record_history NAME.json [layers|review|expired]`.
    assert {p.stem.removeprefix("generate_track_") for p in HISTORIES} >= {
        "auto_approved",
        "human_approved",
        "rejected",
        "layers_draft_first",
        "review_two_approvals_escalated",
        "review_expired",
    }


def _activities_and_patches(path: Path) -> tuple[list[str], set[str]]:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    patches = {
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    }
    return activities, patches


def test_review_histories_take_the_authorized_gate() -> None:
    """The review histories run the gate with authorization, escalation and webhooks."""
    folder = Path(__file__).parent / "histories"
    approved, patches = _activities_and_patches(
        folder / "generate_track_review_two_approvals_escalated.json"
    )
    assert {"review-authz-v1", "deliver-webhooks-v1", "draft-first-v1"} <= patches
    assert approved.count("authorize_review") == 3  # alice, alice again (refused), bob
    assert "escalate_review" in approved and approved[-1] == "publish"
    expired, patches = _activities_and_patches(folder / "generate_track_review_expired.json")
    assert {"review-authz-v1", "deliver-webhooks-v1"} <= patches
    assert "authorize_review" not in expired and expired[-2:] == [
        "escalate_review",
        "record_review",
    ]

"""Saved GenerateTrack histories still replay: workflow changes must stay deterministic.

When a change to the workflow is intended to be incompatible, guard it with `workflow.patched`
and record new histories next to these (see `tests/unit/histories/`).
"""

from __future__ import annotations

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
    # The three outcomes from before any patch, and one run through every patched path
    # (per-model GPU queue, draft preview, review authorization), recorded with
    # `python -m tests.tools.record_history`.
    assert {p.stem.removeprefix("generate_track_") for p in HISTORIES} >= {
        "auto_approved",
        "human_approved",
        "rejected",
        "layers_draft_first",
    }

"""Record a GenerateTrack history for the replay test (`tests/unit/histories/`).

Starts a private stack, runs one job and writes its history as JSON. Run after an intended
workflow change:

    .venv/bin/python -m tests.tools.record_history tests/unit/histories/NAME.json [SCENARIO]

Scenarios:
- `layers` (the default): one auto-approved job that takes the newest workflow paths (per-model
  GPU queue, draft preview, layers product).
- `review`: the review gate with authorization (`review-authz-v1`) under a two-approval policy
  that escalates to seniors: draft preview, escalation, one approval by signal, the same
  reviewer again by signal (refused and ignored), the second by the `submit_review` update,
  publish, and every webhook delivery child (draft, escalated, final).
- `expired`: the same policy with no decision: escalation, expiry, the delivery children.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowHandle

from infra.stack import LocalStack
from schemas import names
from schemas.jobs import JobStatus, ReviewDecision, Stage
from tests.conftest import make_settings, private_home, private_stack
from tunesmith import Client

REQUEST = {"prompt": "replay fixture", "product": "layers", "duration_s": 4.0, "seed": 3,
           "draft_first": True, "formats": ["wav24"]}  # fmt: skip
# Nothing listens there: the delivery children retry in the background, the job is unaffected.
CALLBACK_URL = "http://127.0.0.1:9/replay-fixture"
REVIEW_REQUEST = {"prompt": "replay fixture review", "duration_s": 4.0, "seed": 5,
                  "draft_first": True, "formats": ["wav24"],
                  "callback_url": CALLBACK_URL}  # fmt: skip
ESCALATE_AFTER_S = 3
TIMEOUT_S = 25
REVIEW_POLICY = f"""
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


async def _status_until(
    handle: WorkflowHandle, done: Callable[[JobStatus], bool], timeout_s: float = 300
) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = await handle.query(names.STATUS_QUERY, result_type=JobStatus)
            if done(status):
                return status
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"{handle.id}: condition not reached")
        await asyncio.sleep(0.2)


async def _approve_twice(handle: WorkflowHandle) -> None:
    await _status_until(handle, lambda s: s.escalated_to is not None)
    await handle.signal(names.REVIEW_SIGNAL, ReviewDecision(decision="approve", reviewer="alice"))
    await _status_until(handle, lambda s: "alice" in s.approvals)
    # Already approved: `authorize_review` refuses it, and a signal's refusal is only logged.
    await handle.signal(names.REVIEW_SIGNAL, ReviewDecision(decision="approve", reviewer="alice"))
    await asyncio.sleep(2)
    await handle.execute_update(
        names.SUBMIT_REVIEW_UPDATE,
        ReviewDecision(decision="approve", reviewer="bob", note="fine"),
        result_type=JobStatus,
    )


async def _no_decision(handle: WorkflowHandle) -> None:
    await _status_until(handle, lambda s: s.escalated_to is not None)


SCENARIOS: dict[str, tuple[dict[str, object], Callable[[WorkflowHandle], Awaitable[None]] | None]]
SCENARIOS = {
    "layers": (REQUEST, None),
    "review": (REVIEW_REQUEST, _approve_twice),
    "expired": (REVIEW_REQUEST | {"seed": 6}, _no_decision),
}


async def record(stack: LocalStack, out: Path, scenario: str) -> None:
    request, decide = SCENARIOS[scenario]
    client = await Client.connect(stack.settings)
    handle = await client.submit(request)
    wf = client.temporal.get_workflow_handle(handle.job_id)
    if decide is not None:
        await _status_until(wf, lambda s: s.stage is Stage.AWAITING_REVIEW)
        await decide(wf)
    result = await handle.result()
    print(f"{handle.job_id}: {result.stage.value} ({result.review_state.value})")
    history = await wf.fetch_history()
    out.write_text(history.to_json())


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    scenario = sys.argv[2] if len(sys.argv) > 2 else "layers"
    if scenario not in SCENARIOS:
        raise SystemExit(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    home = private_home("tunesmith-history-")
    home.mkdir()
    env: dict[str, str] = {}
    settings = make_settings(home)
    if scenario != "layers":
        policy_dir = home / "policies"
        policy_dir.mkdir()
        (policy_dir / "review-policy@1.toml").write_text(REVIEW_POLICY)
        settings = make_settings(home, review_policy_dir=policy_dir)
        env["TUNESMITH_REVIEW_POLICY_DIR"] = str(policy_dir)
    with private_stack(settings, env) as stack:
        asyncio.run(record(stack, out, scenario))


if __name__ == "__main__":
    main()

"""Record a GenerateTrack history for the replay test (`tests/unit/histories/`).

Starts a private stack, runs one auto-approved job that takes the newest workflow paths
(per-model GPU queue, draft preview, review authorization, layers product) and writes its
history as JSON. Run after an intended workflow change:

    .venv/bin/python -m tests.tools.record_history tests/unit/histories/NAME.json
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from infra.stack import LocalStack
from tests.conftest import make_settings
from tunesmith import Client

REQUEST = {"prompt": "replay fixture", "product": "layers", "duration_s": 4.0, "seed": 3,
           "draft_first": True, "formats": ["wav24"]}  # fmt: skip


async def record(stack: LocalStack, out: Path) -> None:
    client = await Client.connect(stack.settings)
    handle = await client.submit(REQUEST)
    result = await handle.result()
    print(f"{handle.job_id}: {result.stage.value} ({result.review_state.value})")
    history = await client.temporal.get_workflow_handle(handle.job_id).fetch_history()
    out.write_text(history.to_json())


def main() -> None:
    out = Path(sys.argv[1])
    home = Path(tempfile.mkdtemp(prefix="tunesmith-history-"))
    stack = LocalStack(make_settings(home))
    try:
        stack.up(log=lambda _msg: None)
        asyncio.run(record(stack, out))
    finally:
        stack.destroy(log=lambda _msg: None)


if __name__ == "__main__":
    main()

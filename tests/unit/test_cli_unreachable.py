"""Commands give exit code 3 and one line, not a traceback, when the platform is down."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from infra.stack import free_port


@pytest.mark.parametrize(
    "args",
    [
        ["catalog", "list"],
        ["catalog", "reindex"],
        ["similarity", "check", __file__],  # a file that exists: fails at the database
        ["search", "--tempo", "120-130"],
        ["review", "list"],
    ],
)
def test_unreachable_platform_exits_3(args: list[str]) -> None:
    port = str(free_port())  # nothing listens there
    # Credentials given as settings: this is about the platform being down, not secrets missing
    # (tests/integration/test_stack_privacy.py covers those).
    env = {**os.environ, "TUNESMITH_PG_PORT": port, "TUNESMITH_TEMPORAL_PORT": port,
           "TUNESMITH_S3_PORT": port, "TUNESMITH_PG_PASSWORD": "x",
           "TUNESMITH_S3_ACCESS_KEY": "x", "TUNESMITH_S3_SECRET_KEY": "x"}  # fmt: skip
    env.pop("TUNESMITH_DATABASE_URL", None)
    env.pop("TUNESMITH_TEMPORAL_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "cannot reach the platform" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("extra", "code", "says"),
    [
        ({}, 3, "unreachable"),  # nothing listens on the ports
        ({"TUNESMITH_PAYLOAD_KEYS": "k:short"}, 2, "TUNESMITH_PAYLOAD_KEYS"),
    ],
)
def test_a_worker_that_cannot_start_says_why_and_exits(
    extra: dict[str, str], code: int, says: str
) -> None:
    port = str(free_port())
    env = {**os.environ, "TUNESMITH_PG_PORT": port, "TUNESMITH_TEMPORAL_PORT": port,
           "TUNESMITH_S3_PORT": port, "TUNESMITH_PG_PASSWORD": "x", "TUNESMITH_S3_ACCESS_KEY": "x",
           "TUNESMITH_S3_SECRET_KEY": "x", "TUNESMITH_WATERMARK_KEY": "x", **extra}  # fmt: skip
    env.pop("TUNESMITH_DATABASE_URL", None)
    env.pop("TUNESMITH_TEMPORAL_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith", "worker", "cpu"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    assert "cannot start" in proc.stderr and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

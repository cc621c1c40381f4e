"""Workers an orchestrator can run: /healthz, /readyz, and a clean exit 0 on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.stack import LocalStack, free_port

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_stack_workers_are_alive_and_ready(stack: LocalStack) -> None:
    for kind in ("cpu", "gpu"):
        address = (stack.run_dir / f"worker-{kind}.health").read_text().strip()
        assert address.startswith("127.0.0.1:")
        assert get(f"http://{address}/healthz") == (200, {"status": "alive"})
        status, body = get(f"http://{address}/readyz")
        assert status == 200, body
        assert body["checks"] == {"temporal": "ok", "database": "ok", "store": "ok",
                                  "polling": "ok"}  # fmt: skip
        assert get(f"http://{address}/nope")[0] == 404
    assert {s.name: s.state for s in stack.status()}["worker-cpu"] == "running"


def test_sigterm_drains_and_exits_0(stack: LocalStack, tmp_path: Path) -> None:
    """An extra CPU worker configured like a pod (settings only, its own empty home, a fixed
    health port): ready, then SIGTERM: it stops polling, finishes within the graceful-shutdown
    timeout and exits 0."""
    port = free_port()
    secrets = json.loads((stack.settings.resolved_home / "secrets.json").read_text())
    env = stack.child_env() | {
        "TUNESMITH_HOME": str(tmp_path),
        "TUNESMITH_PG_PASSWORD": secrets["pg_password"],
        "TUNESMITH_S3_ACCESS_KEY": secrets["s3_access_key"],
        "TUNESMITH_S3_SECRET_KEY": secrets["s3_secret_key"],
        "TUNESMITH_WATERMARK_KEY": secrets["watermark_key"],
        "TUNESMITH_HEALTH_PORT": str(port),
        "TUNESMITH_GRACEFUL_SHUTDOWN_S": "5",
    }
    argv = [sys.executable, "-m", "tunesmith", "worker", "cpu"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "worker never became ready"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "shutting down (up to 5 s for running steps)" in out
        assert "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_wrong_database_credentials_stop_the_worker_with_a_clear_error(
    stack: LocalStack, tmp_path: Path
) -> None:
    env = stack.child_env() | {"TUNESMITH_HOME": str(tmp_path), "TUNESMITH_PG_PASSWORD": "wrong",
                               "TUNESMITH_WATERMARK_KEY": "k"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "tunesmith", "worker", "cpu"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "the database refused the credentials" in proc.stderr
    assert "Traceback" not in proc.stderr and ":wrong@" not in proc.stderr  # no password shown


def test_setup_prepares_the_services_idempotently(stack: LocalStack) -> None:
    """`tunesmith setup` (the deployments' one-shot job): migrations, buckets, search
    attributes on the configured services, starting nothing; a second run changes nothing."""
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "tunesmith", "setup"], env=stack.child_env(),
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "prepared:" in proc.stdout and "password" not in proc.stdout

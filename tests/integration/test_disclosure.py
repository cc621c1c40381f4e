"""Published audio discloses itself: C2PA manifests and the job watermark, checked from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import Stage
from tests.integration.helpers import run_cli, short_request
from tunesmith import Client

pytestmark = pytest.mark.integration


async def test_published_files_verify_and_carry_the_job_watermark(
    client: Client, store: ObjectStore, stack: LocalStack, tmp_path: Path
) -> None:
    request = short_request(formats=["wav24", "flac", "mp3", "opus"], seed=77, prompt="signed")
    handle = await client.submit(request)
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED
    provenance = json.loads(store.get_bytes(result.provenance_uri or ""))
    disclosure = provenance["disclosure"]
    assert disclosure["c2pa_signed_formats"] == ["flac", "mp3", "wav24"]
    assert disclosure["watermark"]["scheme"] == "tunesmith-wm-ss-1"

    published = {k: uri for k, uri in result.artifacts.items() if k.startswith("published_")}
    files = {
        kind: store.download(uri, tmp_path / Path(uri).name) for kind, uri in published.items()
    }
    for kind in ("published_wav24", "published_flac", "published_mp3"):
        proc = run_cli(stack, "verify", str(files[kind]), "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        verified = json.loads(proc.stdout)
        assert verified["valid"] and verified["ai_generated"]
        assert verified["job_id"] == handle.job_id and verified["model"]["id"] == "draft"
    unsigned = run_cli(stack, "verify", str(files["published_opus"]))
    assert unsigned.returncode == 2  # Opus: C2PA cannot carry a manifest in it

    for kind in ("published_wav24", "published_mp3", "published_opus"):
        proc = run_cli(stack, "watermark", "detect", str(files[kind]), "--job", handle.job_id)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    other = run_cli(stack, "watermark", "detect", str(files["published_wav24"]),
                    "--job", "job-someone-else")  # fmt: skip
    assert other.returncode == 1
    # Run away from the stack's state dir, the detector has no key: it says so and which key it
    # would need, instead of making one up and answering "no watermark found".
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = subprocess.run(
        [sys.executable, "-m", "tunesmith", "watermark", "detect", str(files["published_wav24"])],
        env={k: v for k, v in stack.child_env().items() if k != "TUNESMITH_HOME"},
        cwd=elsewhere, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert lost.returncode == 2, lost.stdout + lost.stderr
    assert "no watermark key" in lost.stderr and "TUNESMITH_WATERMARK_KEY" in lost.stderr
    assert list(elsewhere.iterdir()) == []  # no state dir, no key file created
    found = run_cli(stack, "watermark", "detect", str(files["published_wav24"]), "--json")
    key = json.loads(found.stdout)
    assert key["found"] and key["key_source"].endswith("secrets.json") and key["key_id"]
    wrong = run_cli(stack, "watermark", "detect", str(files["published_wav24"]),
                    env={"TUNESMITH_WATERMARK_KEY": "some-other-deployment"})  # fmt: skip
    assert wrong.returncode == 1 and "TUNESMITH_WATERMARK_KEY" in wrong.stdout

    # A file edited after publishing no longer verifies.
    tampered = tmp_path / "tampered.wav"
    data = bytearray(files["published_wav24"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    assert run_cli(stack, "verify", str(tampered)).returncode == 1

    shown = run_cli(stack, "provenance", handle.job_id)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "draft-2.0.0" in shown.stdout and "tunesmith-wm-ss-1" in shown.stdout
    export = tmp_path / "audit.json"
    exported = run_cli(stack, "provenance", handle.job_id, "--export", str(export), "--json")
    assert exported.returncode == 0
    assert json.loads(export.read_text()) == provenance
    missing = run_cli(stack, "provenance", "job-nope")
    assert missing.returncode == 2 and "no provenance" in missing.stderr

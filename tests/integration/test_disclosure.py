"""Published audio discloses itself: C2PA manifests and the job watermark, checked from the CLI."""

from __future__ import annotations

import json
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

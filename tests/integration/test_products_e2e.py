"""Products and control inputs end to end on the real stack: MIDI, reference, templates,
loops, stems, layers, manifests, and bad input that leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from temporalio.client import WorkflowFailureError

from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas import names
from schemas.errors import InvalidRequestError
from schemas.jobs import TERMINAL_STAGES, GenerateTrackInput, Stage
from tests.integration.helpers import run_cli, wait_for_stage
from tests.unit.test_normalize_controls import D_MINOR_TUNE, _tone_file, midi_bytes
from tunesmith import Client
from tunesmith.client import JobFailedError

pytestmark = pytest.mark.integration


async def test_layers_with_midi_melody_publish_a_manifest(
    client: Client, store: ObjectStore, tmp_path: Path
) -> None:
    midi = tmp_path / "theme.mid"
    midi.write_bytes(midi_bytes(D_MINOR_TUNE, tempo=110.0))
    handle = await client.submit(
        {"prompt": "forest theme", "product": "layers", "duration_s": 8.0, "formats": ["wav24"],
         "instruments": ["flute", "strings", "bass", "drums"], "seed": 5},
        midi=midi,
    )  # fmt: skip
    status = await wait_for_stage(handle, *TERMINAL_STAGES, Stage.AWAITING_REVIEW)
    assert status.stage is Stage.PUBLISHED, status
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED
    manifest = json.loads(store.get_bytes(result.artifacts["published_manifest"]))
    assert manifest["product"] == "layers" and manifest["tempo_bpm"] == pytest.approx(110.0)
    assert manifest["key"] == "D minor"  # from the melody
    assert [p["name"] for p in manifest["parts"]] == ["calm", "tense", "combat"]
    frames = manifest["loop_length_samples"]
    assert manifest["switch_points_samples"][1] == round(manifest["bar_length_samples"])
    for part in manifest["parts"]:
        kind = f"published_part_{part['name']}_wav24"
        path = store.download(result.artifacts[kind], tmp_path / f"{part['name']}.wav")
        assert Path(result.artifacts[kind]).name in part["files"]
        assert sf.info(path).frames == frames
        assert hashlib.sha256(path.read_bytes()).hexdigest() == part["sha256"]
    # Twice the generated audio of one loop, charged once per layer.
    assert result.charge_cents >= 1
    provenance = json.loads(store.get_bytes(result.provenance_uri or ""))
    assert provenance["inputs"]["midi"].startswith("s3://tunesmith-inputs/midi/")
    assert provenance["controls"]["melody"][0]["pitch"] == D_MINOR_TUNE[0]
    assert provenance["manifest"]["parts"][0]["name"] == "calm"


def test_template_stems_from_the_cli(stack: LocalStack, tmp_path: Path) -> None:
    proc = run_cli(
        stack, "generate", "--template", "podcast-intro", "--var", "brand=Acme",
        "--product", "stems", "--duration", "8", "--formats", "wav24,flac", "--wait",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {p.name for p in tmp_path.iterdir()}
    job_id = proc.stdout.split()[1]
    stems = sorted(n for n in files if n.startswith(f"{job_id}-") and n.endswith(".wav"))
    assert len(stems) >= 3
    mix, _rate = sf.read(tmp_path / f"{job_id}.wav", dtype="float64", always_2d=True)
    total = sum(sf.read(tmp_path / n, dtype="float64", always_2d=True)[0] for n in stems)
    error = np.sqrt(np.mean((total - mix) ** 2)) / np.sqrt(np.mean(mix**2))
    assert 20 * np.log10(error) < -60.0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["parts_sum_to_main"] is True and manifest["product"] == "stems"
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["template"] == {"id": "podcast-intro", "version": 2}
    assert "Acme" in provenance["controls"]["prompt"]


async def test_reference_fills_tempo_and_is_recorded(
    client: Client, store: ObjectStore, tmp_path: Path
) -> None:
    ref = _tone_file(tmp_path / "ref.wav", seconds=8.0, bpm=100.0)
    handle = await client.submit(
        {"prompt": "like this", "product": "loop", "duration_s": 4.8, "formats": ["wav24"]},
        reference=ref,
    )
    status = await wait_for_stage(handle, *TERMINAL_STAGES, Stage.AWAITING_REVIEW)
    assert status.stage is Stage.PUBLISHED, status
    result = await handle.result()
    provenance = json.loads(store.get_bytes(result.provenance_uri or ""))
    summary = provenance["controls"]["reference"]
    assert summary["filled"] == ["tempo_bpm", "key"]
    assert provenance["controls"]["tempo_bpm"] == pytest.approx(summary["tempo_bpm"])
    assert summary["sha256"] == hashlib.sha256(ref.read_bytes()).hexdigest()
    assert store.exists(summary["uri"])


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({"bad.mid": b"MThd\x00\x00\x00\x06garbage"}, ["--midi", "bad.mid"], "MIDI"),
        ({"silent.wav": None}, ["--reference", "silent.wav"], "silent"),
        ({"notes.wav": b"not audio at all"}, ["--reference", "notes.wav"], "audio"),
        ({}, ["--template", "no-such"], "unknown template"),
        ({}, ["--template", "podcast-intro"], "brand"),
        ({}, ["--meter", "7/3"], "beat unit"),
        ({"long.mid": "long"}, ["--midi", "long.mid", "--duration", "3"], "melody is"),
    ],
)
def test_bad_inputs_from_the_cli_leave_nothing(
    stack: LocalStack, store: ObjectStore, tmp_path: Path,
    files: dict[str, bytes | str | None], args: list[str], message: str,
) -> None:  # fmt: skip
    for name, content in files.items():
        path = tmp_path / name
        if content is None:
            sf.write(path, np.zeros(22050 * 4), 22050)
        elif content == "long":
            path.write_bytes(midi_bytes(D_MINOR_TUNE))
        else:
            assert isinstance(content, bytes)
            path.write_bytes(content)
    before = set(store.list_keys(stack.settings.inputs_bucket))
    resolved = [str(tmp_path / a) if a in files else a for a in args]
    prompt = [] if "--template" in args else ["bad input"]
    proc = run_cli(stack, "generate", *prompt, *resolved)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "job-" not in proc.stdout
    assert set(store.list_keys(stack.settings.inputs_bucket)) == before  # nothing uploaded


async def test_directly_started_job_with_a_missing_input_fails_cleanly(
    client: Client, db: Database, stack: LocalStack
) -> None:
    with pytest.raises(InvalidRequestError):
        await client.submit({"prompt": "x", "midi": "s3://tunesmith-inputs/midi/nothing.mid"})
    job_id = "job-direct-missing-midi"
    handle = await client.temporal.start_workflow(
        names.GENERATE_TRACK_WORKFLOW,
        GenerateTrackInput(
            job_id=job_id, request={"prompt": "x", "midi": "s3://tunesmith-inputs/midi/nothing.mid"}
        ),
        id=job_id,
        task_queue=names.CPU_TASK_QUEUE,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "does not exist" in str(failure.value.cause)
    assert await db.artifacts(job_id) == []


async def test_model_no_worker_serves_fails_clearly(client: Client, db: Database) -> None:
    """The test stack's GPU worker serves only the draft model: a job for MusicGen must fail
    with ModelNotServed after the queue timeout, not wait forever."""
    impatient = Client(client.temporal, client.settings.model_copy(
        update={"gpu_queue_timeout_s": 3.0}))  # fmt: skip
    handle = await impatient.submit({"prompt": "x", "model": "musicgen-small", "duration_s": 4})
    status = await wait_for_stage(handle, *TERMINAL_STAGES, timeout_s=60)
    assert status.stage is Stage.FAILED
    assert status.error is not None and "ModelNotServed" in status.error
    assert "musicgen-small" in status.error
    with pytest.raises(JobFailedError, match="no GPU worker serves model"):
        await handle.result()  # the workflow has recorded the failure by then
    job = await db.get_job(handle.job_id)
    assert job is not None and job["stage"] == "failed"


async def test_draft_first_reports_a_preview_before_the_final(
    client: Client, db: Database, store: ObjectStore
) -> None:
    handle = await client.submit(
        {
            "prompt": "preview me",
            "duration_s": 6.0,
            "draft_first": True,
            "formats": ["wav24"],
        }
    )
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED
    status = await handle.status()
    preview = status.artifacts["draft_preview"]
    assert "draft-preview" in preview and store.exists(preview)
    assert preview != status.artifacts["raw"]
    events = [e["event"] for e in await db.outbox(handle.job_id)]
    assert events.index("job.draft_ready") < events.index("job.published")
    kinds = {a["kind"] for a in await db.artifacts(handle.job_id)}
    assert {"draft_preview", "raw"} <= kinds

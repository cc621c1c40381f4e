"""Delivery profiles and formats end to end, and feature search from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from activities.postprocess.formats import read_tags
from activities.postprocess.loudness import integrated_lufs, true_peak_dbtp
from infra.db import Database
from infra.stack import LocalStack
from infra.store import ObjectStore
from schemas.jobs import Stage
from tests.integration.helpers import run_cli, short_request
from tunesmith import Client

pytestmark = pytest.mark.integration


async def test_broadcast_profile_in_every_format(
    client: Client, store: ObjectStore, db: Database, tmp_path: Path
) -> None:
    request = short_request(profile="broadcast", formats=["wav24", "wav16", "flac", "mp3", "opus"],
                            seed=41, prompt="news bed")  # fmt: skip
    handle = await client.submit(request)
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED
    m = result.measurements
    assert m is not None and m.sample_rate == 48000 and m.target_lufs == -23.0
    assert abs(m.integrated_lufs + 23.0) <= 0.5 and m.true_peak_dbtp <= -1.0
    expected = {
        "published_wav24",
        "published_wav16",
        "published_flac",
        "published_mp3",
        "published_opus",
        "published_preview",
        "published_overview",
        "provenance",
    }
    assert set(result.artifacts) == expected  # fmt: skip

    wav = store.download(result.artifacts["published_wav24"], tmp_path / "a.wav")
    samples, rate = sf.read(wav, always_2d=True)
    assert rate == 48000 and samples.shape[0] == 8 * 48000
    assert abs(integrated_lufs(samples, rate) + 23.0) <= 0.5
    assert true_peak_dbtp(samples) <= -1.0
    for kind in ("published_flac", "published_opus", "published_mp3", "published_wav16"):
        # With its real name: a C2PA-signed FLAC starts with the ID3v2 tag that holds the
        # manifest, so tag readers need the extension to know it is FLAC.
        path = store.download(result.artifacts[kind], tmp_path / Path(result.artifacts[kind]).name)
        tags = read_tags(path)
        assert tags["tunesmith_job_id"] == handle.job_id and tags["title"] == "news bed"
    png = store.get_bytes(result.artifacts["published_overview"])
    assert png[:4] == b"\x89PNG"

    rows = {a["kind"]: a for a in await db.artifacts(handle.job_id)}
    master = rows["master_wav"]
    assert master["musical_key"] == "A minor" and master["embedding_model"] == "dsp-v1"
    assert 115 <= master["tempo_bpm"] <= 125 and master["loudness_range_lu"] is not None
    assert master["features"]["quality"]["score"] == 1.0


def test_search_by_features_and_similarity(stack: LocalStack) -> None:
    jobs = {}
    for name, extra in {
        "piano-a": ["--key", "A minor", "--tempo", "120", "--seed", "51"],
        "piano-b": ["--key", "A minor", "--tempo", "122", "--seed", "52"],
        "strings": ["--key", "D major", "--tempo", "80", "--seed", "53",
                    "--instruments", "strings,flute"],
    }.items():  # fmt: skip
        proc = run_cli(stack, "generate", f"search {name}", "--duration", "10", *extra, "--wait")
        assert proc.returncode == 0, proc.stderr
        jobs[name] = proc.stdout.split()[1]

    found = run_cli(stack, "search", "--key", "a minor", "--tempo", "110-130", "--published",
                    "--json", "--limit", "50")  # fmt: skip
    assert found.returncode == 0, found.stderr
    ids = {r["job_id"] for r in json.loads(found.stdout)}
    assert {jobs["piano-a"], jobs["piano-b"]} <= ids and jobs["strings"] not in ids

    near = run_cli(stack, "search", "--similar-to", jobs["piano-a"], "--json", "--limit", "50")
    ranked = [r["job_id"] for r in json.loads(near.stdout)]
    assert jobs["piano-a"] not in ranked
    assert ranked.index(jobs["piano-b"]) < ranked.index(jobs["strings"])

    table = run_cli(stack, "search", "--instrument", "flute")
    assert jobs["strings"] in table.stdout and jobs["piano-a"] not in table.stdout

    for bad, message in ((["--tempo", "fast"], "range"), (["--key", "H"], "unknown key"),
                         (["--similar-to", "job-nope"], "no stored embedding")):  # fmt: skip
        proc = run_cli(stack, "search", *bad)
        assert proc.returncode == 2 and message in proc.stderr

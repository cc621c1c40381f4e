"""Catalog ingest, indexed matching, `similarity check` and the pipeline's block routing.

Real PostgreSQL, real fpcalc, real audio rendered by the draft backend.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from activities.catalog.store import WARM_FINGERPRINT_INDEX, CatalogDB
from activities.controls.normalize import normalize_request
from activities.inference.draft import DraftBackend
from infra.stack import LocalStack
from schemas.jobs import Stage
from tests.integration.helpers import run_cli, short_request, wait_for_stage

pytestmark = pytest.mark.integration
SR = 44100


def _render(backend: DraftBackend, path: Path, **request: object) -> np.ndarray:
    base = {
        "prompt": "catalog piece",
        "duration_s": 20.0,
        "instruments": ["piano", "bass", "drums"],
    }
    _, tokens = normalize_request({**base, **request})
    audio = backend.generate(tokens).samples
    sf.write(path, audio, SR, subtype="PCM_16")
    return audio


@pytest.fixture(scope="module", autouse=True)
async def empty_catalog_afterwards(db: object) -> AsyncIterator[None]:
    """Other tests' tracks must not be checked against this module's pieces."""
    yield
    await db.pool.execute("TRUNCATE catalog_recordings CASCADE")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("catalog")
    backend = DraftBackend()
    a = _render(backend, folder / "alpha.wav", seed=301, key="E minor", tempo_bpm=100.0)
    _render(backend, folder / "beta.wav", seed=302, key="G major", tempo_bpm=128.0)
    host = _render(backend, folder.parent / "host.wav", seed=303, key="D major", tempo_bpm=112.0)
    spliced = host.copy()
    start, n = int(9.3 * SR), 7 * SR
    spliced[start : start + n] = a[int(4.6 * SR) : int(4.6 * SR) + n]  # a 7 s excerpt
    sf.write(folder.parent / "spliced.mp3", spliced, SR, format="MP3")
    (folder / "notes.txt").write_text("not audio")
    sf.write(folder / "tiny.wav", host[: 2 * SR], SR)
    return {"folder": folder, "host": folder.parent / "host.wav",
            "spliced": folder.parent / "spliced.mp3", "notes": folder / "notes.txt",
            "tiny": folder / "tiny.wav"}  # fmt: skip


def test_ingest_reports_each_bad_file_and_keeps_the_rest(
    stack: LocalStack, pieces: dict[str, Path]
) -> None:
    folder = pieces["folder"]
    args = ["catalog", "add", str(folder), str(pieces["notes"]), str(folder / "alpha.wav")]
    proc = run_cli(stack, *args, "--owner", "Acme", "--json")
    assert proc.returncode == 1, proc.stderr
    by_file = {}
    for r in json.loads(proc.stdout):
        by_file.setdefault(Path(r["path"]).name, []).append(r)
    assert [r["status"] for r in by_file["alpha.wav"]].count("added") == 1
    assert [r["status"] for r in by_file["alpha.wav"]].count("duplicate") == 1
    assert by_file["beta.wav"][0]["status"] == "added"
    assert "too short" in by_file["tiny.wav"][0]["detail"]
    assert "not a readable audio file" in by_file["notes.txt"][0]["detail"]
    again = run_cli(stack, "catalog", "add", str(folder / "beta.wav"), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)[0]["status"] == "duplicate"
    listed = run_cli(stack, "catalog", "list", "--json")
    titles = {r["title"] for r in json.loads(listed.stdout)}
    assert {"alpha", "beta"} <= titles and "tiny" not in titles


async def test_nothing_half_written_for_failed_files(db: object) -> None:
    catalog = CatalogDB(db.pool)  # type: ignore[attr-defined]
    orphans = await catalog.pool.fetchval(
        "SELECT count(*) FROM catalog_fingerprint_index i LEFT JOIN catalog_recordings r "
        "ON r.id = i.recording WHERE r.id IS NULL"
    )
    assert orphans == 0
    assert await catalog.count() == 2


async def test_warm_reads_the_whole_fingerprint_index(db: object) -> None:
    catalog = CatalogDB(db.pool)  # type: ignore[attr-defined]
    rows = await catalog.pool.fetchval("SELECT count(*) FROM catalog_fingerprint_index")
    assert rows > 0 and await catalog.warm() == rows
    async with catalog.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {WARM_FINGERPRINT_INDEX}")
    scan = json.loads(plan)[0]["Plan"]["Plans"][0]
    # An index scan keeps its pages in shared_buffers; a sequential one would use a small ring.
    assert scan["Node Type"] == "Index Only Scan"
    assert scan["Index Name"] == "catalog_fingerprint_index_key_idx"


def test_check_finds_the_excerpt_with_offsets_and_blocks(
    stack: LocalStack, pieces: dict[str, Path]
) -> None:
    proc = run_cli(stack, "similarity", "check", str(pieces["spliced"]), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["risk"] == "block"
    best = out["matches"][0]
    assert (best["title"], best["method"], best["risk"]) == ("alpha", "fingerprint", "block")
    assert best["bit_error_rate"] <= 0.15
    # The clean run starts inside the 7 s excerpt placed at 9.3 s, copied from 4.6 s.
    assert 8.5 <= best["query_offset_s"] <= 11.5
    assert best["recording_offset_s"] - best["query_offset_s"] == pytest.approx(-4.7, abs=0.3)
    clean = json.loads(run_cli(stack, "similarity", "check", str(pieces["host"]), "--json").stdout)
    assert clean["risk"] == "clear" and clean["matches"] == []
    bad = run_cli(stack, "similarity", "check", str(pieces["tiny"]))
    assert bad.returncode == 2 and "fingerprint" in bad.stderr


async def test_pipeline_routes_a_catalog_copy_to_review(
    stack: LocalStack, client: object, db: object, tmp_path: Path
) -> None:
    request = short_request(seed=4242, duration_s=10.0)
    _, tokens = normalize_request(request)
    copy = tmp_path / "copy.wav"
    sf.write(copy, DraftBackend().generate(tokens).samples, SR)
    added = json.loads(run_cli(stack, "catalog", "add", str(copy), "--title", "Ours",
                               "--json").stdout)[0]  # fmt: skip
    catalog = CatalogDB(db.pool)  # type: ignore[attr-defined]
    try:
        handle = await client.submit(request)  # type: ignore[attr-defined]
        status = await wait_for_stage(handle, Stage.AWAITING_REVIEW, Stage.PUBLISHED)
        assert status.stage is Stage.AWAITING_REVIEW
        assert "similarity risk block" in status.review_reasons
        assert any("Ours" in r and "fingerprint" in r for r in status.review_reasons)
    finally:
        await catalog.remove(added["recording_id"])

"""Melody window index in PostgreSQL: migration 0008, ingest, HNSW lookup, `catalog reindex`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from activities.catalog import melody, melody_index
from activities.catalog import store as catalog_db
from activities.catalog.store import CatalogDB, NewRecording
from activities.similarity.checker import SimilarityChecker
from infra.stack import LocalStack
from tests.integration.helpers import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
async def empty_catalog(db: object) -> AsyncIterator[None]:
    pool = db.pool  # type: ignore[attr-defined]
    await pool.execute("TRUNCATE catalog_recordings CASCADE")
    yield
    await pool.execute("TRUNCATE catalog_recordings CASCADE")


def _tune(rng: np.random.Generator, frames: int) -> np.ndarray:
    bands = np.zeros((frames, melody.STORED_BANDS), dtype=np.float32)
    for t in range(0, frames, 4):
        bands[t : t + 4, int(rng.integers(10, 40))] = 1.0
    for t in range(0, frames, 16):
        bands[t : t + 16, int(rng.integers(0, 12)) + np.array([0, 4, 7])] += 0.4
    return np.log1p(100 * bands / bands.mean()).astype(np.float32)


def _recording(name: str, bands: np.ndarray | None) -> NewRecording:
    data = melody.MelodyProfile(bands).to_bytes() if bands is not None else None
    return NewRecording(recording_id=name, source_path=f"/{name}.wav", duration_s=45.0,
                        fingerprint=[1, 2, 3], melody=data,
                        melody_beats=0 if bands is None else len(bands))  # fmt: skip


async def test_migration_creates_the_window_table_and_hnsw_index(db: object) -> None:
    pool = db.pool  # type: ignore[attr-defined]
    assert await pool.fetchval(
        "SELECT 1 FROM schema_migrations WHERE version = '0008_melody_index'"
    )
    indexdef = await pool.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'catalog_melody_windows_embedding_idx'"
    )
    assert "hnsw" in indexdef and "vector_ip_ops" in indexdef
    dims = await pool.fetchval(
        "SELECT atttypmod FROM pg_attribute "
        "WHERE attrelid = 'catalog_melody_windows'::regclass AND attname = 'embedding'"
    )
    assert dims == melody_index.DIMENSIONS
    assert await pool.fetchval(
        "SELECT 1 FROM information_schema.columns "
        "WHERE table_name = 'catalog_recordings' AND column_name = 'melody_index_version'"
    )


async def test_ingest_indexes_windows_and_the_check_finds_a_transposed_copy(db: object) -> None:
    pool = db.pool  # type: ignore[attr-defined]
    catalog = CatalogDB(pool)
    rng = np.random.default_rng(4)
    tunes = [_tune(rng, 484) for _ in range(40)]
    for i, bands in enumerate(tunes):
        assert await catalog.add(_recording(f"tune-{i}", bands))
    assert await catalog.add(_recording("atonal", None))
    expected = sum(len(melody_index.reference_vectors(melody.MelodyProfile(b))[0]) for b in tunes)
    assert await pool.fetchval("SELECT count(*) FROM catalog_melody_windows") == expected
    assert await pool.fetchval(
        "SELECT count(*) FROM catalog_recordings WHERE melody_index_version = $1",
        melody_index.INDEX_VERSION,
    ) == len(tunes)  # fmt: skip
    query = _tune(rng, 323)
    query[120:200] = np.roll(tunes[29][250:330], 1, axis=1)  # 7.4 s, +1 semitone
    matches = await SimilarityChecker(catalog).melody_matches(melody.MelodyProfile(query))
    assert [(m.recording_id, m.semitones) for m in matches] == [("tune-29", 1)]
    assert [b async for b in catalog.unindexed_melodies()] == []
    assert await catalog.remove("tune-29")
    assert await pool.fetchval("SELECT count(*) FROM catalog_melody_windows") < expected


async def test_window_lookup_split_over_connections_finds_the_same_windows(
    db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = CatalogDB(db.pool)  # type: ignore[attr-defined]
    rng = np.random.default_rng(6)
    for i in range(12):
        await catalog.add(_recording(f"tune-{i}", _tune(rng, 484)))
    _, vectors = melody_index.query_vectors(melody.MelodyProfile(_tune(rng, 323)))
    assert catalog.pool.get_max_size() // 2 >= 2  # so the lookup below is split
    split = await catalog.nearest_melody_windows(vectors, 10)
    monkeypatch.setattr(catalog_db, "MAX_KNN_STATEMENTS", 1)
    single = await catalog.nearest_melody_windows(vectors, 10)
    assert len(split) == 10 * len(vectors)
    assert sorted(split) == sorted(single)  # query rows numbered across the parts


async def test_recordings_from_before_the_index_match_and_reindex_indexes_them(
    db: object,
) -> None:
    pool = db.pool  # type: ignore[attr-defined]
    catalog = CatalogDB(pool)
    rng = np.random.default_rng(5)
    old = _tune(rng, 484)
    await catalog.add(_recording("old", old))
    # As ingested before migration 0008: no windows, no index version.
    await pool.execute("DELETE FROM catalog_melody_windows")
    await pool.execute("UPDATE catalog_recordings SET melody_index_version = NULL")
    query = _tune(rng, 323)
    query[40:120] = old[100:180]
    checker = SimilarityChecker(catalog)
    profile = melody.MelodyProfile(query)
    assert await checker.melody_candidates(profile) == []
    assert [m.recording_id for m in await checker.melody_matches(profile)] == ["old"]

    assert await catalog.reindex_melodies() == 1
    assert await catalog.reindex_melodies() == 0  # idempotent
    assert [b async for b in catalog.unindexed_melodies()] == []
    assert len(await checker.melody_candidates(profile)) == 1
    assert [m.recording_id for m in await checker.melody_matches(profile)] == ["old"]


async def test_catalog_reindex_command(db: object, stack: LocalStack) -> None:
    pool = db.pool  # type: ignore[attr-defined]
    await CatalogDB(pool).add(_recording("old", _tune(np.random.default_rng(6), 200)))
    await pool.execute("DELETE FROM catalog_melody_windows")
    await pool.execute("UPDATE catalog_recordings SET melody_index_version = NULL")
    result = await asyncio.to_thread(run_cli, stack, "catalog", "reindex", "--batch", "10")
    assert result.returncode == 0, result.stderr
    assert "indexed 1 recordings" in result.stdout
    assert await pool.fetchval("SELECT count(*) FROM catalog_melody_windows") > 0
    again = await asyncio.to_thread(run_cli, stack, "catalog", "reindex")
    assert "indexed 0 recordings" in again.stdout

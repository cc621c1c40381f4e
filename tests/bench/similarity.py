"""Fingerprint lookup time against catalogs of 1k and 10k recordings (synthetic fingerprints).

Each recording is 60 s of random 32-bit items (≈ 480 items); each query is a 30 s fingerprint
with a 10 s excerpt of a random catalog recording (3 % of bits flipped) spliced in. The time is
`SimilarityChecker.fingerprint_matches`: index lookup in PostgreSQL, voting, verification.

`bench_melody` (no database; `python -m tests.bench.similarity`) times the melody detector,
which still compares the query with every stored profile: per-reference time of the coarse
pass that rejects unrelated recordings, and of a full comparison.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from activities.similarity.catalog_db import CatalogDB
from activities.similarity.checker import SimilarityChecker
from activities.similarity.fingerprint_index import index_entries
from infra.db import Database

ITEMS_PER_RECORDING = 480
QUERY_ITEMS = 240


def _items(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(-(2**31), 2**31, size=n, dtype=np.int64).astype(np.int32)


async def _fill(db: Database, rng: np.random.Generator, start: int, count: int) -> None:
    """Bulk-load recordings start..start+count with COPY (ingest's per-file path is too slow)."""
    recordings: list[tuple[int, str, str, str, float, list[int]]] = []
    index: list[tuple[int, int, int]] = []
    for i in range(start, start + count):
        items = _items(rng, ITEMS_PER_RECORDING)
        recordings.append((i + 1, f"bench-{i:06d}", f"bench {i}", "bench", 60.0, items.tolist()))
        keys, positions = index_entries(items)
        index += zip(keys.tolist(), [i + 1] * len(keys), positions.tolist(), strict=True)
    async with db.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "catalog_recordings", records=recordings,
            columns=["id", "recording_id", "title", "source_path", "duration_s", "fingerprint"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "catalog_fingerprint_index", records=index,
            columns=["item_key", "recording", "position"],
        )  # fmt: skip
        await conn.execute("VACUUM ANALYZE catalog_fingerprint_index")


async def _queries(
    db: Database, rng: np.random.Generator, size: int, n: int
) -> tuple[list[float], float]:
    checker = SimilarityChecker(CatalogDB(db.pool))
    times, found = [], 0
    for _ in range(n):
        rec = int(rng.integers(1, size + 1))
        stored = await db.pool.fetchval(
            "SELECT fingerprint FROM catalog_recordings WHERE id = $1", rec
        )
        source = np.asarray(stored, dtype=np.int64).astype(np.int32)
        query = _items(rng, QUERY_ITEMS)
        at, start = int(rng.integers(0, QUERY_ITEMS - 80)), int(rng.integers(0, 400))
        excerpt = source[start : start + 80]
        bits = np.unpackbits(excerpt.view(np.uint8))
        bits ^= (rng.random(bits.size) < 0.03).astype(np.uint8)
        query[at : at + 80] = np.packbits(bits).view(np.int32)
        started = time.perf_counter()
        matches = await checker.fingerprint_matches(query.tolist())
        times.append(time.perf_counter() - started)
        found += any(m.recording_id == f"bench-{rec - 1:06d}" for m in matches)
    return times, found / n


async def bench_similarity(db: Database, queries: int = 100) -> None:
    rng = np.random.default_rng(0)
    await db.pool.execute("TRUNCATE catalog_recordings CASCADE")
    results: dict[int, tuple[float, float, float]] = {}
    loaded = 0
    for size in (1_000, 10_000):
        started = time.perf_counter()
        await _fill(db, rng, loaded, size - loaded)
        loaded = size
        load_s = time.perf_counter() - started
        await _queries(db, rng, size, 10)  # warm caches and the pool
        times, recall = await _queries(db, rng, size, queries)
        p50 = statistics.median(times)
        p95 = float(np.percentile(times, 95))
        results[size] = (p50, p95, recall)
        print(f"  {size:>6} recordings ({size * ITEMS_PER_RECORDING / 1e6:.1f} M items, "
              f"loaded in {load_s:.0f} s): median {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"
              f"  found {recall:.2f}")  # fmt: skip
    ratio = results[10_000][0] / results[1_000][0]
    print(f"  10x catalog → {ratio:.2f}x median query time (goal ≤ 2x)")
    await db.pool.execute("TRUNCATE catalog_recordings CASCADE")


def bench_melody(references: int = 40) -> None:
    """Per-reference melody comparison time: 30 s query against 45 s references."""
    from activities.similarity import melody, risk

    rng = np.random.default_rng(0)

    def tune(seconds: float) -> np.ndarray:
        t = np.arange(int(0.4 * 22050)) / 22050
        notes = [
            np.sin(2 * np.pi * 440 * 2 ** (rng.integers(-5, 19) / 12) * t) * np.exp(-4 * t)
            for _ in range(int(seconds / 0.4))
        ]
        return np.concatenate(notes).astype(np.float32) * 0.3

    started = time.perf_counter()
    refs = [melody.profile(tune(45.0), 22050) for _ in range(references)]
    profile_s = (time.perf_counter() - started) / references
    query = melody.profile(tune(30.0), 22050)
    started = time.perf_counter()
    for ref in refs:
        melody.best_alignment(query, ref, at_least=risk.MELODY_REVIEW_SCORE)
    screened = (time.perf_counter() - started) / references
    started = time.perf_counter()
    for ref in refs[:10]:
        melody.best_alignment(query, ref)
    full = (time.perf_counter() - started) / 10
    print(f"  melody: profile {profile_s * 1000:.0f} ms per 45 s recording; per reference "
          f"{screened * 1000:.1f} ms screened (unrelated), {full * 1000:.1f} ms full comparison; "
          f"linear in the catalog: {screened * 1000:.1f} s per 1k recordings")  # fmt: skip


if __name__ == "__main__":
    bench_melody()

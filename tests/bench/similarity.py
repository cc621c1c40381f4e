"""Fingerprint and melody query time against catalogs of 1k and 10k recordings (synthetic).

Fingerprints: each recording is 60 s of random 32-bit items (≈ 480 items); each query is a 30 s
fingerprint with a 10 s excerpt of a random catalog recording (3 % of bits flipped) spliced in.
The time is `SimilarityChecker.fingerprint_matches`: index lookup in PostgreSQL, voting,
verification.

Melody: each recording also gets a 45 s synthetic melody profile (a random tune of notes with
two overtones over changing triads, on the detector's 93 ms grid) and its windows in the
pgvector index; each query is a 30 s profile of another random tune with a 10 s excerpt of a
catalog recording spliced in, transposed +1 semitone and 4 % faster. The time is
`SimilarityChecker.melody_matches`: window lookup (HNSW), then exact scoring of the candidates.

`bench_melody` (no database; `python -m tests.bench.similarity`) times one exact comparison:
what a full scan of the catalog, the detector before its index, costs per recording.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import numpy as np

from activities.catalog import melody, melody_index
from activities.catalog.fingerprint_index import index_entries
from activities.catalog.store import CatalogDB, insert_melody_windows
from activities.similarity.checker import SimilarityChecker
from infra.db import Database
from tests.synthetic_melody import synthetic_profile

ITEMS_PER_RECORDING = 480
QUERY_ITEMS = 240
MELODY_FRAMES = int(45.0 / melody.STEP_S)
QUERY_FRAMES = int(30.0 / melody.STEP_S)
EXCERPT_FRAMES = int(10.0 / melody.STEP_S)


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


async def _fill_melodies(db: Database, rng: np.random.Generator, start: int, count: int) -> None:
    """Melody profiles and index windows for recordings start+1..start+count (already loaded).

    The HNSW index is rebuilt after the bulk load, as one would for a large import.
    """
    indexdef = await db.pool.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'catalog_melody_windows_embedding_idx'"
    )
    await db.pool.execute("DROP INDEX catalog_melody_windows_embedding_idx")
    for first in range(start, start + count, 500):
        ids = list(range(first + 1, min(start + count, first + 500) + 1))
        profiles = {i: melody.MelodyProfile(synthetic_profile(rng, MELODY_FRAMES)) for i in ids}
        async with db.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE catalog_recordings r SET melody = t.m, melody_beats = t.f, "
                "melody_index_version = $4 "
                "FROM unnest($1::integer[], $2::bytea[], $3::integer[]) AS t(i, m, f) "
                "WHERE r.id = t.i",
                ids, [profiles[i].to_bytes() for i in ids], [MELODY_FRAMES] * len(ids),
                melody_index.INDEX_VERSION,
            )  # fmt: skip
            windows = {i: melody_index.reference_vectors(p) for i, p in profiles.items()}
            await insert_melody_windows(conn, windows)
    async with db.pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(indexdef)
        await conn.execute("VACUUM ANALYZE catalog_melody_windows")
        # The melody UPDATEs left a dead copy of every recording row: measure the steady state
        # that autovacuum reaches in production, not the bloat of a bulk load.
        await conn.execute("VACUUM ANALYZE catalog_recordings")


async def _melody_queries(
    db: Database, rng: np.random.Generator, size: int, n: int
) -> tuple[list[float], float]:
    checker = SimilarityChecker(CatalogDB(db.pool))
    times, found = [], 0
    for _ in range(n):
        rec = int(rng.integers(1, size + 1))
        stored = await db.pool.fetchval("SELECT melody FROM catalog_recordings WHERE id = $1", rec)
        source = melody.MelodyProfile.from_bytes(stored).bands
        start = int(rng.integers(0, MELODY_FRAMES - EXCERPT_FRAMES))
        excerpt = source[start : start + EXCERPT_FRAMES]
        excerpt = np.roll(excerpt, 1, axis=1)  # +1 semitone
        excerpt[:, 0] = 0.0
        faster = np.round(np.arange(int(EXCERPT_FRAMES / 1.04)) * 1.04).astype(int)
        excerpt = excerpt[faster]
        query = synthetic_profile(rng, QUERY_FRAMES)
        at = int(rng.integers(0, QUERY_FRAMES - len(excerpt)))
        query[at : at + len(excerpt)] = excerpt
        started = time.perf_counter()
        matches = await checker.melody_matches(melody.MelodyProfile(query))
        times.append(time.perf_counter() - started)
        found += any(m.recording_id == f"bench-{rec - 1:06d}" for m in matches)
    return times, found / n


async def _sizes(db: Database) -> str:
    """What must stay in shared_buffers for lookups to stay flat, next to its size."""
    row = await db.pool.fetchrow(
        "SELECT pg_relation_size('catalog_fingerprint_index_key_idx') AS fingerprint, "
        "pg_relation_size('catalog_melody_windows_embedding_idx') AS melody, "
        "current_setting('shared_buffers') AS buffers"
    )
    return (f"fingerprint index {row['fingerprint'] / 2**20:.0f} MB, melody HNSW index "
            f"{row['melody'] / 2**20:.0f} MB, shared_buffers {row['buffers']}")  # fmt: skip


async def _index_blocks(db: Database, kind: str) -> tuple[int, int]:
    """(hit, read) block counters of the index a `kind` lookup scans (pg_statio, cumulative)."""
    index = {"fingerprint": "catalog_fingerprint_index_key_idx",
             "melody": "catalog_melody_windows_embedding_idx"}[kind]  # fmt: skip
    # Backends flush their counters when idle, at most once a second and otherwise within 10 s.
    await asyncio.sleep(11)
    await db.pool.execute("SELECT pg_stat_clear_snapshot()")
    row = await db.pool.fetchrow(
        "SELECT idx_blks_hit, idx_blks_read FROM pg_statio_user_indexes WHERE indexrelname = $1",
        index,
    )
    return int(row[0]), int(row[1])


async def bench_similarity(
    db: Database,
    queries: int = 100,
    melody_queries: int = 30,
    sizes: tuple[int, ...] = (1_000, 10_000),
) -> None:
    rng = np.random.default_rng(0)
    await db.pool.execute("TRUNCATE catalog_recordings CASCADE")
    results: dict[str, dict[int, tuple[float, float, float]]] = {"fingerprint": {}, "melody": {}}
    loaded = 0
    for size in sizes:
        started = time.perf_counter()
        await _fill(db, rng, loaded, size - loaded)
        await _fill_melodies(db, rng, loaded, size - loaded)
        windows = await db.pool.fetchval("SELECT count(*) FROM catalog_melody_windows")
        load_s = time.perf_counter() - started
        loaded = size
        items = size * ITEMS_PER_RECORDING / 1e6
        print(f"  {size:>6} recordings: {items:.1f} M fingerprint items, "
              f"{windows / 1e3:.0f} k melody windows (loaded in {load_s:.0f} s)")  # fmt: skip
        print(f"    {await _sizes(db)}")
        await CatalogDB(db.pool).warm()  # as a CPU worker does when it starts
        for kind, measure, n in (("fingerprint", _queries, queries),
                                 ("melody", _melody_queries, melody_queries)):  # fmt: skip
            await measure(db, rng, size, 5)  # warm the pool and the melody index's hot pages
            hit, read = await _index_blocks(db, kind)
            times, recall = await measure(db, rng, size, n)
            hit, read = [
                after - before
                for after, before in zip(await _index_blocks(db, kind), (hit, read), strict=True)
            ]
            p50 = statistics.median(times)
            p95 = float(np.percentile(times, 95))
            results[kind][size] = (p50, p95, recall)
            print(f"    {kind:<11} median {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
                  f"found {recall:.2f}  ({n} queries; index pages read from outside "
                  f"shared_buffers: {read} of {hit + read})")  # fmt: skip
        if size == 1_000:
            await bench_check(db)
    if len(sizes) < 2:
        return
    print("  10x catalog (1k → 10k recordings), side by side (goal ≤ 2x):")
    for kind, r in results.items():
        print(f"    {kind:<11} median {r[1_000][0] * 1000:7.1f} → {r[10_000][0] * 1000:7.1f} ms "
              f"= {r[10_000][0] / r[1_000][0]:.2f}x   p95 {r[1_000][1] * 1000:7.1f} → "
              f"{r[10_000][1] * 1000:7.1f} ms = {r[10_000][1] / r[1_000][1]:.2f}x")  # fmt: skip
    await db.pool.execute("TRUNCATE catalog_recordings CASCADE")


def _draft_wav(path: Path, seconds: float, seed: int, start_s: float = 0.0) -> Path:
    """A draft render written as a 24-bit WAV (what `check_similarity` downloads)."""
    import soundfile as sf

    from activities.controls.normalize import normalize_request
    from activities.inference.draft import DraftBackend

    request = {"prompt": "bench check", "duration_s": seconds + start_s, "tempo_bpm": 112,
               "key": "D minor", "instruments": ["piano", "bass", "drums"],
               "seed": seed}  # fmt: skip
    raw = DraftBackend().generate(normalize_request(request)[1])
    first = int(start_s * raw.sample_rate)
    sf.write(path, raw.samples[first:], raw.sample_rate, format="WAV", subtype="PCM_24")
    return path


async def bench_check(db: Database, queries: int = 10) -> dict[str, float]:
    """The whole `check_similarity` analysis + lookups of a 30 s master (wall time), against
    the catalog as loaded, plus a few real draft recordings whose 30 s copies must be found."""
    import tempfile

    from activities.catalog.chromaprint import fingerprint_file
    from activities.catalog.ingest import RecordingMetadata, ingest
    from activities.similarity.checker import profile_file

    checker = SimilarityChecker(CatalogDB(db.pool))
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tunesmith-bench-check-") as tmp:
        work = Path(tmp)
        originals = [_draft_wav(work / f"original-{i}.wav", 60.0, 900 + i) for i in range(3)]
        await db.pool.execute(  # the bulk load gave explicit ids
            "SELECT setval(pg_get_serial_sequence('catalog_recordings', 'id'), "
            "(SELECT max(id) FROM catalog_recordings))"
        )
        await ingest(CatalogDB(db.pool), originals, RecordingMetadata())
        names = {o: await db.pool.fetchval(
            "SELECT recording_id FROM catalog_recordings WHERE source_path = $1", str(o))
            for o in originals}  # fmt: skip
        unrelated = [_draft_wav(work / f"q-{i}.wav", 30.0, 300 + i) for i in range(queries)]
        copies = [(_draft_wav(work / f"copy-{i}.wav", 30.0, 900 + i, start_s=15.0), o)
                  for i, o in enumerate(originals)]  # fmt: skip
        # Warm as a worker is (imports, JIT, the pool); the fingerprint index was warmed.
        fingerprint_file(unrelated[0])
        profile_file(unrelated[0])
        await checker.check(fingerprint_file(unrelated[0]).items, profile_file(unrelated[0]))
        parts: dict[str, list[float]] = {"total": [], "fingerprint": [], "profile": [],
                                         "lookups": []}  # fmt: skip
        found = 0
        for path in unrelated + [c for c, _ in copies]:
            started = time.perf_counter()
            fp = await asyncio.to_thread(fingerprint_file, path)
            fingerprinted = time.perf_counter()
            profile = await asyncio.to_thread(profile_file, path)
            profiled = time.perf_counter()
            report = await checker.check(fp.items, profile)
            done = time.perf_counter()
            original = dict(copies).get(path)
            if original is not None:
                found += any(m.recording_id == names[original] for m in report.matches)
                continue
            for key, value in (("total", done - started), ("fingerprint", fingerprinted - started),
                               ("profile", profiled - fingerprinted),
                               ("lookups", done - profiled)):  # fmt: skip
                parts[key].append(value)
        for key, values in parts.items():
            out[key] = statistics.median(values)
        out["p95"] = float(np.percentile(parts["total"], 95))
        out["copies_found"] = found / len(copies)
        await db.pool.execute("DELETE FROM catalog_recordings WHERE source_path LIKE $1",
                              f"{tmp}%")  # fmt: skip
    size = await db.pool.fetchval("SELECT count(*) FROM catalog_recordings")
    print(f"    check_similarity of a 30 s master ({size} recordings + 3 drafts), median of "
          f"{queries}: p50 {out['total'] * 1000:6.0f} ms  p95 {out['p95'] * 1000:6.0f} ms   "
          f"(fingerprint {out['fingerprint'] * 1000:.0f} ms, melody profile "
          f"{out['profile'] * 1000:.0f} ms, catalog lookups {out['lookups'] * 1000:.0f} ms); "
          f"30 s copies of catalog drafts found {out['copies_found']:.2f}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    return out


def bench_melody(references: int = 40) -> None:
    """Per-reference melody comparison time: 30 s query against 45 s references."""
    from activities.catalog import melody
    from activities.similarity import risk

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
          f"a full scan (no index): {screened * 1000:.1f} s per 1k recordings")  # fmt: skip


if __name__ == "__main__":
    import sys

    from tests.bench.run import similarity_section

    if "--1k" in sys.argv:  # only the 1k catalog: lookups and the whole check
        similarity_section(sizes=(1_000,))
    else:
        similarity_section()
        bench_melody()

"""PostgreSQL access for the catalog (tables from `infra/migrations/0002_catalog.sql`, melody
window index from `0008_melody_index.sql`)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import numpy as np

from activities.catalog import melody_index
from activities.catalog.fingerprint_index import index_entries
from activities.catalog.melody import MelodyError, MelodyProfile

# Concurrent statements (connections) one check's melody window lookup may use.
MAX_KNN_STATEMENTS = 4
# Covers every row, so the planner (seq and bitmap scans off) reads the index leaf by leaf.
WARM_FINGERPRINT_INDEX = (
    "SELECT count(*) FROM catalog_fingerprint_index WHERE item_key >= -2147483648"
)


@dataclass(frozen=True)
class NewRecording:
    """Everything one ingest writes for a recording."""

    recording_id: str
    source_path: str
    duration_s: float
    fingerprint: list[int]
    melody: bytes | None
    melody_beats: int
    title: str | None = None
    owner: str | None = None
    licence: str | None = None


class CatalogReader(Protocol):
    """What checking needs from a catalog: `CatalogDB`, or the eval's in-memory catalog."""

    async def postings(self, keys: list[int]) -> list[tuple[int, int, int]]: ...
    async def fingerprints(self, ids: list[int]) -> dict[int, np.ndarray]: ...
    async def describe(self, ids: list[int]) -> dict[int, dict[str, Any]]: ...
    async def nearest_melody_windows(
        self, vectors: np.ndarray, k: int
    ) -> list[tuple[int, int, int, float]]: ...
    async def melodies_of(self, ids: list[int]) -> dict[int, bytes]: ...
    def unindexed_melodies(self, batch: int = 500) -> AsyncIterator[list[tuple[int, bytes]]]: ...


class CatalogDB:
    """Catalog queries over the platform's asyncpg pool (`infra.db.Database.pool`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def exists(self, recording_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT 1 FROM catalog_recordings WHERE recording_id = $1", recording_id
            )
        )

    async def add(self, rec: NewRecording) -> bool:
        """Write the recording and its index rows in one transaction.

        Returns False (and writes nothing) when the recording is already in the catalog.
        """
        keys, positions = index_entries(np.asarray(rec.fingerprint))
        windows = _melody_windows(rec.melody)
        async with self.pool.acquire() as conn, conn.transaction():
            rid = await conn.fetchval(
                """
                INSERT INTO catalog_recordings (recording_id, title, owner, licence, source_path,
                    duration_s, fingerprint, melody, melody_beats, melody_index_version)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (recording_id) DO NOTHING RETURNING id
                """,
                rec.recording_id, rec.title, rec.owner, rec.licence, rec.source_path,
                rec.duration_s, rec.fingerprint, rec.melody, rec.melody_beats,
                melody_index.INDEX_VERSION if rec.melody else None,
            )  # fmt: skip
            if rid is None:
                return False
            await conn.copy_records_to_table(
                "catalog_fingerprint_index",
                columns=["item_key", "recording", "position"],
                records=zip(keys.tolist(), [rid] * len(keys), positions.tolist(), strict=True),
            )
            await insert_melody_windows(conn, {rid: windows})
        return True

    async def remove(self, recording_id: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM catalog_recordings WHERE recording_id = $1", recording_id
        )
        return bool(status.endswith(" 1"))

    async def recordings(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """
            SELECT recording_id, title, owner, licence, duration_s, melody_beats, source_path,
                   cardinality(fingerprint) AS items, created_at
            FROM catalog_recordings ORDER BY created_at DESC, id DESC LIMIT $1
            """,
            limit,
        )
        return [dict(r) for r in rows]

    async def count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM catalog_recordings"))

    async def postings(self, keys: list[int]) -> list[tuple[int, int, int]]:
        """(key, recording, position) for every indexed item equal to one of `keys`."""
        rows = await self.pool.fetch(
            "SELECT item_key, recording, position FROM catalog_fingerprint_index "
            "WHERE item_key = ANY($1::integer[])",
            keys,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def warm(self) -> int:
        """Read the whole fingerprint index into PostgreSQL's shared buffers; its row count.

        A lookup probes one random leaf page per query item, so on a cold cache most probes
        are reads: at 10k recordings, right after a bulk load, a check took 14-17 ms instead
        of 5 ms until a few hundred checks had pulled the index in. An index scan, unlike a
        sequential one, keeps what it reads in shared_buffers, for as long as they can hold it.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            await conn.execute("SET LOCAL enable_bitmapscan = off")
            return int(await conn.fetchval(WARM_FINGERPRINT_INDEX))

    async def fingerprints(self, ids: list[int]) -> dict[int, np.ndarray]:
        rows = await self.pool.fetch(
            "SELECT id, fingerprint FROM catalog_recordings WHERE id = ANY($1::integer[])", ids
        )
        return {
            r["id"]: np.asarray(r["fingerprint"], dtype=np.int64).astype(np.int32) for r in rows
        }

    async def describe(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, recording_id, title FROM catalog_recordings WHERE id = ANY($1::integer[])",
            ids,
        )
        return {r["id"]: dict(r) for r in rows}

    async def melodies(self, batch: int = 500) -> AsyncIterator[list[tuple[int, bytes]]]:
        """Every stored melody profile, in batches."""
        async for rows in self._melodies_where("TRUE", batch):
            yield rows

    async def unindexed_melodies(self, batch: int = 500) -> AsyncIterator[list[tuple[int, bytes]]]:
        """Melody profiles not (or not at the current version) in the window index.

        Checks compare these one by one, so catalogs ingested before the index still match;
        `reindex_melodies` (`tunesmith catalog reindex`) empties this set.
        """
        where = f"melody_index_version IS DISTINCT FROM {melody_index.INDEX_VERSION}"
        async for rows in self._melodies_where(where, batch):
            yield rows

    async def _melodies_where(
        self, where: str, batch: int
    ) -> AsyncIterator[list[tuple[int, bytes]]]:
        last = 0
        while True:
            rows = await self.pool.fetch(
                f"SELECT id, melody FROM catalog_recordings WHERE id > $1 AND melody IS NOT NULL "
                f"AND {where} ORDER BY id LIMIT $2",
                last,
                batch,
            )
            if not rows:
                return
            yield [(r["id"], r["melody"]) for r in rows]
            last = rows[-1]["id"]

    async def melodies_of(self, ids: list[int]) -> dict[int, bytes]:
        rows = await self.pool.fetch(
            "SELECT id, melody FROM catalog_recordings "
            "WHERE id = ANY($1::integer[]) AND melody IS NOT NULL",
            ids,
        )
        return {r["id"]: r["melody"] for r in rows}

    async def nearest_melody_windows(
        self, vectors: np.ndarray, k: int
    ) -> list[tuple[int, int, int, float]]:
        """(query row, recording, window start, inner product) of each vector's `k` nearest.

        An HNSW index scan per query vector (~1 ms each; a check has ~200), split into one
        statement per connection on up to half the pool, so a server with spare cores answers
        a check several times faster than one statement would.
        """
        if len(vectors) == 0:
            return []
        parts = max(1, min(MAX_KNN_STATEMENTS, self.pool.get_max_size() // 2, len(vectors)))
        bounds = np.linspace(0, len(vectors), parts + 1).astype(int)
        chunks = await asyncio.gather(*(
            self._nearest(vectors[lo:hi], k, first=lo)
            for lo, hi in itertools.pairwise(bounds.tolist())
        ))  # fmt: skip
        return [hit for chunk in chunks for hit in chunk]

    async def _nearest(
        self, vectors: np.ndarray, k: int, first: int
    ) -> list[tuple[int, int, int, float]]:
        async with self.pool.acquire() as conn, conn.transaction():
            # More candidates than LIMIT per scan: the graph search is approximate.
            await conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, 4 * k)}")
            rows = await conn.fetch(
                """
                SELECT q.i - 1, w.recording, w.start_frame, -w.distance
                FROM unnest($1::text[]) WITH ORDINALITY AS q(v, i)
                CROSS JOIN LATERAL (
                    SELECT recording, start_frame, embedding <#> q.v::vector AS distance
                    FROM catalog_melody_windows
                    ORDER BY embedding <#> q.v::vector LIMIT $2
                ) w
                """,
                [melody_index.to_pgvector(v) for v in vectors],
                k,
            )
        return [(first + int(r[0]), r[1], r[2], float(r[3])) for r in rows]

    async def reindex_melodies(
        self, batch: int = 200, on_progress: Callable[[int], None] | None = None
    ) -> int:
        """Index the melody windows of every recording not yet (or not currently) indexed.

        Idempotent and resumable: each batch is one transaction. Returns how many recordings
        were indexed.
        """
        done = 0
        while True:
            rows = await self.pool.fetch(
                "SELECT id, melody FROM catalog_recordings WHERE melody IS NOT NULL "
                "AND melody_index_version IS DISTINCT FROM $1 ORDER BY id LIMIT $2",
                melody_index.INDEX_VERSION,
                batch,
            )
            if not rows:
                return done
            windows = {r["id"]: _melody_windows(r["melody"]) for r in rows}
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "DELETE FROM catalog_melody_windows WHERE recording = ANY($1::integer[])",
                    list(windows),
                )
                await insert_melody_windows(conn, windows)
                await conn.execute(
                    "UPDATE catalog_recordings SET melody_index_version = $2 "
                    "WHERE id = ANY($1::integer[])",
                    list(windows),
                    melody_index.INDEX_VERSION,
                )
            done += len(rows)
            if on_progress is not None:
                on_progress(done)


def _melody_windows(data: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and vectors of a stored profile; none for an absent or outdated one."""
    try:
        if data is not None:
            return melody_index.reference_vectors(MelodyProfile.from_bytes(data))
    except MelodyError:
        pass  # older profile format: skipped by checks too until the recording is re-ingested
    return np.zeros(0, dtype=np.int64), np.zeros((0, melody_index.DIMENSIONS), dtype=np.float32)


async def insert_melody_windows(
    conn: asyncpg.Connection, windows: dict[int, tuple[np.ndarray, np.ndarray]]
) -> None:
    """Write window rows for recordings: {id: (starts, vectors)}."""
    recordings: list[int] = []
    starts: list[int] = []
    vectors: list[str] = []
    for rid, (s, v) in windows.items():
        recordings += [rid] * len(s)
        starts += s.tolist()
        vectors += [melody_index.to_pgvector(row) for row in v]
    if recordings:
        await conn.execute(
            "INSERT INTO catalog_melody_windows (recording, start_frame, embedding) "
            "SELECT r, s, v::vector "
            "FROM unnest($1::integer[], $2::integer[], $3::text[]) AS t(r, s, v)",
            recordings,
            starts,
            vectors,
        )

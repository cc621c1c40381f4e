"""PostgreSQL access for the catalog (tables from `infra/migrations/0002_catalog.sql`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import numpy as np

from activities.similarity.fingerprint_index import index_entries


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
    def melodies(self, batch: int = 500) -> AsyncIterator[list[tuple[int, bytes]]]: ...


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
        async with self.pool.acquire() as conn, conn.transaction():
            rid = await conn.fetchval(
                """
                INSERT INTO catalog_recordings (recording_id, title, owner, licence, source_path,
                    duration_s, fingerprint, melody, melody_beats)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (recording_id) DO NOTHING RETURNING id
                """,
                rec.recording_id, rec.title, rec.owner, rec.licence, rec.source_path,
                rec.duration_s, rec.fingerprint, rec.melody, rec.melody_beats,
            )  # fmt: skip
            if rid is None:
                return False
            await conn.copy_records_to_table(
                "catalog_fingerprint_index",
                columns=["item_key", "recording", "position"],
                records=zip(keys.tolist(), [rid] * len(keys), positions.tolist(), strict=True),
            )
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
        """Every stored melody profile, in batches (the melody detector has no index yet)."""
        last = 0
        while True:
            rows = await self.pool.fetch(
                "SELECT id, melody FROM catalog_recordings WHERE id > $1 AND melody IS NOT NULL "
                "ORDER BY id LIMIT $2",
                last,
                batch,
            )
            if not rows:
                return
            yield [(r["id"], r["melody"]) for r in rows]
            last = rows[-1]["id"]

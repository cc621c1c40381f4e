"""Check audio against the catalog with both detectors and rate the risk.

Used by the `check_similarity` activity and `tunesmith similarity check`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from activities.catalog import fingerprint_index, melody, melody_index
from activities.catalog.chromaprint import fingerprint_file
from activities.catalog.ingest import IngestError, read_audio
from activities.catalog.store import CatalogReader
from activities.similarity import risk
from schemas.jobs import RiskLevel, SimilarityMatch


@dataclass
class SimilarityReport:
    matches: list[SimilarityMatch] = field(default_factory=list)
    risk: RiskLevel = "clear"
    reasons: list[str] = field(default_factory=list)


class SimilarityChecker:
    """Fingerprint lookups through the inverted index, then melody comparison of the
    candidates that the melody window index returns."""

    def __init__(self, catalog: CatalogReader) -> None:
        self.catalog = catalog

    async def fingerprint_matches(self, items: list[int]) -> list[SimilarityMatch]:
        """Catalog recordings whose audio is copied into `items`, best run per recording."""
        query = fingerprint_index.as_items(items)
        if query.size < fingerprint_index.MIN_RUN_ITEMS:
            return []
        postings = await self.catalog.postings(fingerprint_index.query_keys(query))
        candidates = fingerprint_index.vote(query, postings)
        if not candidates:
            return []
        references = await self.catalog.fingerprints(sorted({c[0] for c in candidates}))
        best: dict[int, fingerprint_index.FingerprintAlignment] = {}
        for rec, offset, _votes in candidates:
            found = fingerprint_index.verify(
                query, references[rec], offset, risk.FINGERPRINT_REVIEW_BER
            )
            if found and (rec not in best or found.items > best[rec].items):
                best[rec] = found
        names = await self.catalog.describe(list(best))
        return [
            SimilarityMatch(
                recording_id=names[rec]["recording_id"],
                title=names[rec]["title"],
                method="fingerprint",
                score=round(1.0 - a.bit_error_rate, 4),
                query_offset_s=round(a.query_offset_s, 2),
                recording_offset_s=round(a.reference_offset_s, 2),
                duration_s=round(a.duration_s, 2),
                risk=risk.fingerprint_risk(a.bit_error_rate),
                bit_error_rate=round(a.bit_error_rate, 4),
            )
            for rec, a in best.items()
        ]

    async def melody_matches(self, query: melody.MelodyProfile) -> list[SimilarityMatch]:
        """Catalog recordings whose tune the query follows (any key, tempo within ±10 %).

        Only the `melody_index.CANDIDATES` recordings nearest to the query's windows are
        scored, plus any recording not in the index yet (ingested before it existed).
        """
        found = await _score_parallel(query, await self.melody_candidates(query))
        async for batch in self.catalog.unindexed_melodies():
            found.update(await _score_parallel(query, batch))
        names = await self.catalog.describe(list(found))
        return [
            SimilarityMatch(
                recording_id=names[rec]["recording_id"],
                title=names[rec]["title"],
                method="melody",
                score=round(a.score, 4),
                query_offset_s=round(a.query_offset_s, 2),
                recording_offset_s=round(a.reference_offset_s, 2),
                duration_s=round(a.duration_s, 2),
                risk=risk.melody_risk(a.score),
                semitones=a.semitones,
                tempo_factor=a.tempo_factor,
            )
            for rec, a in found.items()
        ]

    async def melody_candidates(self, query: melody.MelodyProfile) -> list[tuple[int, bytes]]:
        """Stored profiles of the recordings whose windows are nearest to the query's."""
        _, vectors = melody_index.query_vectors(query)
        rows = await self.catalog.nearest_melody_windows(vectors, melody_index.NEIGHBOURS)
        ranked = melody_index.candidates(rows)
        profiles = await self.catalog.melodies_of(ranked)
        return [(rec, profiles[rec]) for rec in ranked if rec in profiles]

    async def check(
        self, items: list[int], profile: melody.MelodyProfile | None
    ) -> SimilarityReport:
        matches = await self.fingerprint_matches(items)
        if profile is not None:
            copied = {m.recording_id for m in matches}
            matches += [
                m for m in await self.melody_matches(profile) if m.recording_id not in copied
            ]
        matches.sort(key=lambda m: (m.risk != "block", m.risk != "review", -m.score))
        level, reasons = risk.assess(matches)
        return SimilarityReport(matches=matches, risk=level, reasons=reasons)

    async def check_file(self, path: Path) -> SimilarityReport:
        """Fingerprint + melody check of any audio file.

        Raises:
            FingerprintError: Chromaprint could not fingerprint the file.
            IngestError: the file is not readable audio.
        """
        fp = await asyncio.to_thread(fingerprint_file, path)
        profile = await asyncio.to_thread(profile_file, path)
        return await self.check(fp.items, profile)


def profile_file(path: Path) -> melody.MelodyProfile | None:
    """Melody profile of a file, or None when it has too few beats to compare."""
    try:
        samples, sample_rate = read_audio(path)
        return melody.profile(samples, sample_rate)
    except (IngestError, melody.MelodyError):
        return None


# Exact scoring is numpy on arrays of a few MB (the GIL is released): candidates are split over
# this many threads, and merged in their original order (the same result as one thread).
SCORING_THREADS = max(1, min(2, os.cpu_count() or 1))


async def _score_parallel(
    query: melody.MelodyProfile, batch: list[tuple[int, bytes]]
) -> dict[int, melody.MelodyAlignment]:
    parts = [batch[i::SCORING_THREADS] for i in range(SCORING_THREADS)]
    scored = await asyncio.gather(*(asyncio.to_thread(_score_batch, query, p) for p in parts))
    found = {rec: a for part in scored for rec, a in part.items()}
    return {rec: found[rec] for rec, _ in batch if rec in found}


def _score_batch(
    query: melody.MelodyProfile, batch: list[tuple[int, bytes]]
) -> dict[int, melody.MelodyAlignment]:
    out = {}
    for rec, data in batch:
        try:
            ref = melody.MelodyProfile.from_bytes(data)
        except melody.MelodyError:
            continue  # stored by an older detector; `catalog add` again to re-profile
        alignment = melody.best_alignment(query, ref, at_least=risk.MELODY_REVIEW_SCORE)
        if alignment is not None and alignment.score >= risk.MELODY_REVIEW_SCORE:
            out[rec] = alignment
    return out

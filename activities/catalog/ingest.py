"""Catalog ingest: fingerprint reference recordings into PostgreSQL, one transaction per file.

The recording id is the sha256 of the file bytes, so ingesting the same file twice (or a copy
under another name) reports `duplicate` and writes nothing. Every failure is reported per file
and the rest of the batch carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from activities.catalog import melody
from activities.catalog.chromaprint import FingerprintError, fingerprint_file
from activities.catalog.store import CatalogDB, NewRecording

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff"})
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_DURATION_S = 30 * 60.0
MIN_DURATION_S = 3.0  # Chromaprint gives no fingerprint under ~3 s


class IngestError(ValueError):
    """A file that cannot become a catalog recording; the message says why."""


@dataclass(frozen=True)
class RecordingMetadata:
    title: str | None = None
    owner: str | None = None
    licence: str | None = None


@dataclass(frozen=True)
class IngestResult:
    path: str
    status: Literal["added", "duplicate", "error"]
    recording_id: str | None = None
    duration_s: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class Analysis:
    """What ingest computes from one file before writing it."""

    fingerprint: list[int]
    duration_s: float
    melody: melody.MelodyProfile | None


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, plus audio files (by suffix) found under named folders."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
        else:
            out.append(path)
    return out


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode a whole file as float32 (frames, channels).

    Raises:
        IngestError: not decodable audio, too short or too long.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise IngestError(f"not a readable audio file ({exc})") from None
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    if duration > MAX_DURATION_S:
        raise IngestError(f"too long: {duration:.0f} s (max {MAX_DURATION_S:.0f} s)")
    if duration < MIN_DURATION_S:
        raise IngestError(f"too short: {duration:.2f} s (need ≥ {MIN_DURATION_S:g} s)")
    try:
        samples, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise IngestError(f"audio could not be decoded ({exc})") from None
    return samples, int(sample_rate)


def analyse(path: Path) -> Analysis:
    """Fingerprint and melody profile of one file (blocking; run it in a thread).

    Raises:
        IngestError: the file cannot be used (the message is for the ingest report).
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise IngestError(f"too large: {size / 2**20:.0f} MiB (max {MAX_FILE_BYTES / 2**20:.0f})")
    samples, sample_rate = read_audio(path)
    try:
        fp = fingerprint_file(path)
    except FingerprintError as exc:
        raise IngestError(f"no fingerprint: {exc}") from None
    try:
        profile: melody.MelodyProfile | None = melody.profile(samples, sample_rate)
    except melody.MelodyError:
        profile = None  # atonal or silent audio: still matched by fingerprint
    return Analysis(fingerprint=fp.items, duration_s=len(samples) / sample_rate, melody=profile)


async def ingest(
    catalog: CatalogDB,
    paths: list[Path],
    metadata: RecordingMetadata,
    *,
    concurrency: int | None = None,
    on_result: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest `paths` (files) into the catalog; returns one result per path, in order.

    `metadata.title` applies to single-file ingests; with several files each title defaults
    to the file's stem.
    """
    limit = asyncio.Semaphore(concurrency or max(1, (os.cpu_count() or 2) - 1))
    claimed: set[str] = set()  # the same bytes twice in one batch: the second is a duplicate

    async def one(path: Path) -> IngestResult:
        async with limit:
            result = await _ingest_one(catalog, path, metadata, len(paths) == 1, claimed)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(p) for p in paths)))


async def _ingest_one(
    catalog: CatalogDB, path: Path, meta: RecordingMetadata, single: bool, claimed: set[str]
) -> IngestResult:
    name = str(path)
    try:
        recording_id = await asyncio.to_thread(file_sha256, path)
    except OSError as exc:
        return IngestResult(name, "error", detail=f"unreadable: {exc.strerror or exc}")
    if recording_id in claimed or await catalog.exists(recording_id):
        return IngestResult(name, "duplicate", recording_id, detail="already in the catalog")
    claimed.add(recording_id)
    try:
        analysis = await asyncio.to_thread(analyse, path)
    except IngestError as exc:
        claimed.discard(recording_id)
        return IngestResult(name, "error", recording_id, detail=str(exc))
    except OSError as exc:
        claimed.discard(recording_id)
        return IngestResult(name, "error", recording_id, detail=f"unreadable: {exc}")
    profile = analysis.melody
    added = await catalog.add(
        NewRecording(
            recording_id=recording_id,
            source_path=name,
            duration_s=analysis.duration_s,
            fingerprint=analysis.fingerprint,
            melody=profile.to_bytes() if profile else None,
            melody_beats=profile.frames if profile else 0,
            title=(meta.title if single and meta.title else path.stem),
            owner=meta.owner,
            licence=meta.licence,
        )
    )
    status: Literal["added", "duplicate"] = "added" if added else "duplicate"
    detail = "" if profile else "no tonal content: fingerprint matching only"
    return IngestResult(name, status, recording_id, analysis.duration_s, detail)

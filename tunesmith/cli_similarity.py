"""CLI for the copyright catalog: `catalog add/list/remove/reindex`, `similarity check`, `eval`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from activities.catalog.chromaprint import ChromaprintUnavailableError, FingerprintError
from activities.catalog.ingest import (
    IngestError,
    IngestResult,
    RecordingMetadata,
    expand_paths,
    ingest,
)
from activities.catalog.store import CatalogDB
from activities.similarity.checker import SimilarityChecker
from infra.db import jsonable
from tunesmith.cli_common import console, err, fail, run, with_db

catalog_app = typer.Typer(help="Reference recordings checked for copying.", no_args_is_help=True)
similarity_app = typer.Typer(help="Check audio against the catalog.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate detectors.", no_args_is_help=True)

T = TypeVar("T")


def _with_catalog(fn: Callable[[CatalogDB], Awaitable[T]]) -> T:
    """Run `fn` on the catalog over a short-lived pool (ingest adds files in parallel)."""
    return run(with_db(lambda db: fn(CatalogDB(db.pool)), max_size=4))


@catalog_app.command("add")
def catalog_add(
    paths: Annotated[list[Path], typer.Argument(help="audio files and/or folders (recursive)")],
    title: Annotated[str | None, typer.Option(help="title (single file; else file stem)")] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    licence: Annotated[str | None, typer.Option()] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="print the ingest report as JSON")
    ] = False,
) -> None:
    """Fingerprint recordings into the catalog (idempotent: the id is the file's sha256).

    Exit code 1 when any file failed; the others are still ingested.
    """
    files = expand_paths(paths)
    meta = RecordingMetadata(title=title, owner=owner, licence=licence)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True, disable=json_out) as progress:
        task = progress.add_task("ingesting", total=len(files))

        def advance(_: IngestResult) -> None:
            progress.advance(task)

        results = _with_catalog(lambda c: ingest(c, files, meta, on_result=advance))
    if json_out:
        console.print_json(json.dumps([r.__dict__ for r in results]))
    else:
        table = Table("status", "recording", "duration", "file", "detail")
        for r in results:
            colour = {"added": "green", "duplicate": "yellow"}.get(r.status, "red")
            length = f"{r.duration_s:.1f} s" if r.duration_s else ""
            status = f"[{colour}]{r.status}[/{colour}]"
            table.add_row(status, (r.recording_id or "")[:16], length, r.path, r.detail)
        console.print(table)
        counts = {s: sum(r.status == s for r in results) for s in ("added", "duplicate", "error")}
        console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    if any(r.status == "error" for r in results):
        raise typer.Exit(1)


@catalog_app.command("list")
def catalog_list(
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recordings in the catalog, newest first."""
    rows = _with_catalog(lambda c: c.recordings(limit))
    if json_out:
        console.print_json(json.dumps([jsonable(r) for r in rows]))
        return
    table = Table("recording", "title", "owner", "licence", "duration", "melody frames", "file")
    for r in rows:
        table.add_row(r["recording_id"], r["title"] or "", r["owner"] or "", r["licence"] or "",
                      f"{r['duration_s']:.1f} s", str(r["melody_beats"]),
                      r["source_path"])  # fmt: skip
    console.print(table)


@catalog_app.command("remove")
def catalog_remove(recording_ids: list[str]) -> None:
    """Remove recordings (and their index rows) by id. Exit code 1 if one was not found."""

    async def remove(c: CatalogDB) -> list[bool]:
        return [await c.remove(rid) for rid in recording_ids]

    missing = [r for r, ok in zip(recording_ids, _with_catalog(remove), strict=True) if not ok]
    for rid in missing:
        err.print(f"[red]not in the catalog:[/red] {rid}")
    console.print(f"removed {len(recording_ids) - len(missing)}")
    if missing:
        raise typer.Exit(1)


@catalog_app.command("reindex")
def catalog_reindex(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="recordings per transaction")] = 200,
) -> None:
    """Put recordings ingested before the melody window index (or an older version of it) into
    the index. Idempotent; until it runs, checks compare such recordings one by one (slow).
    """

    async def reindex(c: CatalogDB) -> int:
        return await c.reindex_melodies(batch, on_progress=lambda n: err.print(f"indexed {n}"))

    console.print(f"indexed {_with_catalog(reindex)} recordings")


@similarity_app.command("check")
def similarity_check(file: Path, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check any audio file against the catalog: matches (fingerprint, melody) and risk level.

    Exit code 2 when the file cannot be checked (unreadable, too short).
    """
    if not file.is_file():
        raise fail(f"no such file: {file}")
    try:
        report = _with_catalog(lambda c: SimilarityChecker(c).check_file(file))
    except (FingerprintError, IngestError, ChromaprintUnavailableError) as exc:
        raise fail(f"{file}: {exc}") from None
    if json_out:
        console.print_json(json.dumps({
            "file": str(file), "risk": report.risk, "reasons": report.reasons,
            "matches": [m.model_dump() for m in report.matches],
        }))  # fmt: skip
        return
    table = Table("recording", "title", "method", "score", "at (file)", "at (recording)",
                  "length", "risk")  # fmt: skip
    for m in report.matches:
        table.add_row(m.recording_id[:16], m.title or "", m.method, f"{m.score:.3f}",
                      f"{m.query_offset_s:.1f} s", f"{m.recording_offset_s:.1f} s",
                      f"{m.duration_s:.1f} s", m.risk)  # fmt: skip
    if report.matches:
        console.print(table)
    console.print(f"risk: {report.risk}")
    for reason in report.reasons:
        console.print(f"  {reason}")


@eval_app.command("similarity")
def eval_similarity(
    catalog: Annotated[Path, typer.Option(help="folder of reference recordings")],
    limit: Annotated[int | None, typer.Option(help="recordings to build cases from")] = None,
    clean: Annotated[
        int | None, typer.Option(help="clean generated tracks (default 2/case)")
    ] = None,
    seed: Annotated[int, typer.Option()] = 7,
    generate: Annotated[int, typer.Option(help="first render N draft pieces into the folder")] = 0,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recall per transformation and false-positive rate of the similarity check.

    Excerpts (5-20 s) of each recording are MP3-encoded, gain-changed, noised (10 dB SNR),
    pitch-shifted ±1 semitone or tempo-changed ±5 %, then spliced into generated tracks.
    """
    from activities.evaluation.similarity import TRANSFORMS, evaluate, render_demo_catalog

    if generate:
        render_demo_catalog(catalog, generate)
    if not catalog.is_dir():
        raise fail(f"not a folder: {catalog}")
    report = asyncio.run(evaluate(
        catalog, limit=limit, clean_tracks=clean, seed=seed,
        progress=None if json_out else (lambda msg: err.print(msg)),
    ))  # fmt: skip
    if json_out:
        console.print_json(json.dumps({
            "recordings": report.recordings, "skipped": report.skipped,
            "thresholds": report.thresholds,
            "recall": {t: report.recall(t) for t in TRANSFORMS if t in report.cases},
            "cases": report.cases, "blocked": report.blocked,
            "melody_scan": report.melody_scan, "melody_index": report.melody_found,
            "clean_tracks": report.clean_tracks, "false_positive_rate": report.false_positive_rate,
        }))  # fmt: skip
        return
    console.print(f"catalog: {report.recordings} recordings ({len(report.skipped)} skipped)")
    for line in report.skipped:
        console.print(f"  skipped {line}")
    th = report.thresholds
    console.print(f"production thresholds: fingerprint block at bit-error rate ≤ "
                  f"{th['fingerprint_block_ber']:.2f}, review ≤ {th['fingerprint_review_ber']:.2f};"
                  f" melody review at score ≥ {th['melody_review_score']:.2f}")  # fmt: skip
    table = Table("transformation", "cases", "recall (review or block)", "blocked",
                  "melody: full scan", "melody: via index")  # fmt: skip
    for t in TRANSFORMS:
        if t in report.cases:
            n = report.cases[t]
            table.add_row(t, str(n), f"{report.recall(t):.3f}",
                          f"{report.blocked.get(t, 0) / n:.3f}",
                          f"{report.melody_scan.get(t, 0) / n:.3f}",
                          f"{report.melody_found.get(t, 0) / n:.3f}")  # fmt: skip
    console.print(table)
    console.print(f"false positives: {report.false_positives}/{report.clean_tracks} clean tracks "
                  f"= {report.false_positive_rate:.3f}")  # fmt: skip

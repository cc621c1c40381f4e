"""CLI for content credentials and the watermark: `verify`, `watermark detect`, `eval watermark`.

Wiring (tunesmith/cli.py): `app.command("verify")(verify)`,
`app.add_typer(watermark_app, name="watermark")` and
`eval_app.command("watermark")(eval_watermark)`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import soundfile as sf
import typer
from rich.table import Table

from activities.audio_io import read_audio
from activities.disclosure import identity
from activities.disclosure import watermark as wm
from activities.disclosure.c2pa_signing import (
    IDENTITY_SUBDIR,
    ROOT_CERT,
    C2paSigningError,
    verify_file,
)
from infra.settings import get_settings
from schemas.errors import MissingSecretError
from tunesmith.cli_common import console, err

watermark_app = typer.Typer(
    help="Inaudible job watermark in published audio.", no_args_is_help=True
)


def _default_trust_anchors() -> Path | None:
    """The local root CA created by `ensure_signing_identity`, when there is one."""
    path = get_settings().resolved_home / IDENTITY_SUBDIR / ROOT_CERT
    return path if path.is_file() else None


def watermark_key() -> identity.WatermarkKey:
    """The deployment's key: `TUNESMITH_WATERMARK_KEY`, else the local stack's (exit 2 with
    the reason when neither exists: a detector never makes up a key)."""
    try:
        return identity.watermark_key(get_settings())
    except MissingSecretError as exc:
        err.print(f"[red]error:[/red] no watermark key to detect with: {exc}")
        raise typer.Exit(2) from None


def verify(
    file: Annotated[Path, typer.Argument(help="a .wav, .mp3 or .flac file")],
    trust_anchors: Annotated[
        Path | None,
        typer.Option(help="PEM root certificates to trust (default: the local signing root)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Read and validate the file's C2PA manifest (AI-generation claim, model, signer).

    Exit code 0: valid; 1: no manifest or failed validation; 2: unreadable/unsupported file.
    """
    try:
        result = verify_file(file, trust_anchors=trust_anchors or _default_trust_anchors())
    except (C2paSigningError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if json_out:
        console.print_json(json.dumps(asdict(result)))
    elif not result.has_manifest:
        console.print(f"{file}: [yellow]no C2PA manifest[/yellow]")
    else:
        colour = "green" if result.valid else "red"
        console.print(f"{file}: [{colour}]{result.state}[/{colour}]")
        console.print(f"  signer:       {result.signer} (issuer: {result.issuer})")
        console.print(f"  AI-generated: {'yes' if result.ai_generated else 'no claim'}")
        if result.model:
            console.print(f"  model:        {result.model.get('id')} {result.model.get('version')}")
        if result.job_id:
            console.print(f"  job:          {result.job_id}")
        for line in result.errors:
            console.print(f"  [red]error:[/red] {line}")
        for line in result.warnings:
            console.print(f"  [yellow]warning:[/yellow] {line}")
    if not result.valid:
        raise typer.Exit(1)


@watermark_app.command("detect")
def watermark_detect(
    file: Annotated[Path, typer.Argument(help="an audio file (any length ≥ 4.2 s, any excerpt)")],
    job: Annotated[
        str | None, typer.Option(help="also say whether the payload is this job's")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Look for the tunesmith watermark and print its payload (first 32 bits of sha256(job)).

    Exit code 0: found; 1: not found (or not `--job`'s); 2: unreadable or too short.
    """
    key = watermark_key()
    try:
        samples, rate = read_audio(file)
        det = wm.detect(samples, rate, key.secret)
    except (sf.LibsndfileError, OSError) as exc:
        err.print(f"[red]error:[/red] cannot read {file}: {exc}")
        raise typer.Exit(2) from None
    except wm.WatermarkError as exc:
        err.print(f"[red]error:[/red] {file}: {exc}")
        raise typer.Exit(2) from None
    matches = None if job is None else det.found and det.payload == wm.payload_for_job(job)
    if json_out:
        out: dict[str, Any] = {
            "file": str(file),
            "found": det.found,
            "payload": None if det.payload is None else f"{det.payload:08x}",
            "confidence": det.confidence,
            "sync_z": det.sync_z,
            "crc_ok": det.crc_ok,
            "weak_bits": det.weak_bits,
            "offset_s": det.offset_s,
            "scheme": wm.WATERMARK_SCHEME,
            "key_id": key.key_id,
            "key_source": key.source,
        }
        if job is not None:
            out["job"] = job
            out["matches_job"] = matches
        console.print_json(json.dumps(out))
    elif det.found:
        console.print(
            f"{file}: [green]watermark found[/green] payload {det.payload:08x} "
            f"(confidence {det.confidence:.4f}, sync z {det.sync_z:.1f})"
        )
        if job is not None:
            console.print(
                f"  job {job}: {'[green]matches[/green]' if matches else '[red]no match[/red]'}"
            )
    else:
        console.print(f"{file}: [yellow]no watermark found[/yellow] (sync z {det.sync_z:.1f})")
    if not json_out:
        console.print(f"  key:          {key.key_id} ({key.source})")
    if not det.found or matches is False:
        raise typer.Exit(1)


def eval_watermark(
    clips: Annotated[int, typer.Option(help="watermarked clips")] = 20,
    duration: Annotated[float, typer.Option(help="clip length, seconds")] = 20.0,
    null_excerpts: Annotated[
        int, typer.Option(help="unwatermarked 10 s excerpts per clip (plus the whole clip)")
    ] = 5,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="synthetic clips, not the draft backend")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Watermark bit accuracy after MP3 128k, resampling, gain, 10 s excerpts; SNR; false
    detections on unwatermarked audio. Targets: accuracy ≥ 0.95, SNR ≥ 35 dB, false ≤ 1 %."""
    from activities.evaluation.watermark import evaluate

    report = evaluate(
        clips=clips,
        duration_s=duration,
        null_excerpts_per_clip=null_excerpts,
        use_draft=not synthetic,
        progress=None if json_out else (lambda msg: err.print(msg)),
    )
    snr_min = min(report.snr_db) if report.snr_db else float("nan")
    snr_mean = sum(report.snr_db) / len(report.snr_db) if report.snr_db else float("nan")
    if json_out:
        console.print_json(json.dumps({
            "source": report.source, "clips": report.clips, "scheme": wm.WATERMARK_SCHEME,
            "transforms": [
                {"name": r.name, "trials": r.trials, "bit_accuracy": r.bit_accuracy,
                 "detection_rate": r.detection_rate, "seconds": r.seconds}
                for r in report.rows
            ],
            "snr_db": {"min": snr_min, "mean": snr_mean},
            "false_detections": report.false_detections, "null_trials": report.null_trials,
            "false_detection_rate": report.false_detection_rate,
            "null_max_sync_z": report.null_max_sync_z, "detection_z": report.detection_z,
            "null_over_threshold": report.null_over_threshold,
        }))  # fmt: skip
        return
    console.print(f"clips: {report.clips} × {duration:g} s ({report.source}), "
                  f"scheme {wm.WATERMARK_SCHEME}")  # fmt: skip
    table = Table("transform", "trials", "bit accuracy", "detected (payload ok)", "s/detect")
    for r in report.rows:
        table.add_row(r.name, str(r.trials), f"{r.bit_accuracy:.4f}", f"{r.detection_rate:.3f}",
                      f"{r.seconds / max(r.trials, 1):.2f}")  # fmt: skip
    console.print(table)
    console.print(f"SNR: min {snr_min:.1f} dB, mean {snr_mean:.1f} dB (target ≥ 35)")
    console.print(
        f"false detections: {report.false_detections}/{report.null_trials} unwatermarked "
        f"= {report.false_detection_rate:.4f} (target ≤ 0.01); highest null sync z "
        f"{report.null_max_sync_z:.2f} vs threshold {report.detection_z:g} "
        f"({report.null_over_threshold} passed it; a detection also needs the CRC-8 to match)"
    )


def provenance(
    job_id: Annotated[str, typer.Argument(help="a published job")],
    export: Annotated[
        Path | None, typer.Option(help="write the record as canonical JSON (for audits)")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="print the whole record as JSON")
    ] = False,
) -> None:
    """The provenance record of a published asset: request, controls, template, model (version,
    weights hash, card), postprocess version, seed, input/output hashes, watermark, C2PA,
    fingerprint and review."""
    import asyncio

    from activities.models.cards import get_card
    from activities.publish.provenance import canonical_json
    from infra.db import Database

    async def load() -> dict[str, Any] | None:
        db = await Database.open(get_settings(), max_size=1)
        try:
            return await db.get_provenance(job_id)
        finally:
            await db.close()

    row = asyncio.run(load())
    if row is None:
        err.print(f"[red]error:[/red] no provenance for {job_id} (not published, or unknown job)")
        raise typer.Exit(2)
    record = row["record"] if isinstance(row["record"], dict) else json.loads(row["record"])
    if export is not None:
        export.write_bytes(canonical_json(record))
        console.print(f"wrote {export} (sha256 {row['sha256']})")
    if json_out:
        console.print_json(json.dumps(record))
        return
    model = record.get("model", {})
    controls = record.get("controls", {})
    console.print(f"[bold]{job_id}[/bold]  published {record.get('published_at')}")
    console.print(f"record sha256:  {row['sha256']}  ({row.get('uri')})")
    console.print(f"prompt:         {controls.get('prompt')}")
    console.print(f"controls:       {controls.get('controls_version')}: {controls.get('product')}, "
                  f"{controls.get('tempo_bpm')} BPM, {controls.get('key_name')}, "
                  f"{controls.get('beats_per_bar')}/{controls.get('beat_unit')}, seed "
                  f"{record.get('seed')}")  # fmt: skip
    if record.get("template"):
        console.print(f"template:       {record['template']['id']}@{record['template']['version']}")
    try:
        card = get_card(str(model.get("id")))
        licence = f"{card.licence}; training data: {card.training_data[:120]}"
    except KeyError:
        licence = "no card"
    console.print(f"model:          {model.get('id')} {model.get('version')} "
                  f"(weights {model.get('weights_sha256') or 'none: weight-free'})")  # fmt: skip
    console.print(f"model card:     {licence}")
    console.print(f"postprocess:    {record.get('postprocess_version')} "
                  f"({record.get('delivery_profile')})")  # fmt: skip
    disclosure = record.get("disclosure") or {}
    console.print(f"watermark:      {disclosure.get('watermark')}")
    console.print(
        f"C2PA signed:    {', '.join(disclosure.get('c2pa_signed_formats') or []) or '-'}"
    )
    fp = record.get("fingerprint", {})
    console.print(f"fingerprint:    {fp.get('algorithm')} sha256 {fp.get('sha256')}")
    review = record.get("review", {})
    console.print(f"review:         {review.get('state')} ({review.get('policy_version')})")
    for kind, out in (record.get("outputs") or {}).items():
        console.print(f"output:         {kind:<28} {out.get('sha256', '')[:16]}  {out.get('uri')}")

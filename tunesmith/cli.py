"""The `tunesmith` command line: the local stack, jobs, reviews and workers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from infra.db import Database, jsonable
from infra.settings import Settings, get_settings
from infra.stack import LocalStack
from infra.store import ObjectStore, split_uri
from schemas.errors import TunesmithError
from schemas.jobs import TERMINAL_STAGES, JobStatus, Stage
from schemas.music import key_name, normalize_instrument, parse_key
from schemas.request import DEFAULT_PROFILE, Product, ReviewMode, Tier
from tunesmith.cli_common import console, err, print_result
from tunesmith.cli_common import run as _run
from tunesmith.cli_common import table as _table
from tunesmith.cli_common import with_db as _with_db
from tunesmith.client import Client, JobHandle
from tunesmith.jobs import read_job
from tunesmith.preflight import check_request

app = typer.Typer(help="tunesmith: durable AI music generation on Temporal.", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs recorded in the metadata DB.", no_args_is_help=True)
worker_app = typer.Typer(help="Run one worker in the foreground.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(worker_app, name="worker")

# Never wrap URIs and ids; when piped, rich would assume 80 columns and squash the tables.
T = TypeVar("T")


# --- the local stack ------------------------------------------------------------------------
@app.command()
def up() -> None:
    """Start the embedded stack (idempotent): Temporal, PostgreSQL, S3 store, CPU + GPU workers."""
    settings = get_settings()
    LocalStack(settings).up(log=console.print)
    console.print(f"Web UI: {settings.ui_url}   state dir: {settings.resolved_home}")


@app.command()
def down() -> None:
    """Stop what `tunesmith up` started. State stays in the state dir."""
    LocalStack(get_settings()).down(log=console.print)


@app.command()
def setup() -> None:
    """Prepare the configured services without starting anything: apply DB migrations, create
    the buckets, register the search attributes (a deployment's one-shot setup job)."""
    settings = get_settings()
    _run(LocalStack(settings).prepare())
    console.print(f"prepared: {settings.db_target}, {settings.s3_target}, "
                  f"{settings.temporal_target} ({settings.temporal_namespace})")  # fmt: skip


@app.command()
def destroy(
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Stop the local stack and delete its state: every job, artifact, history and secret."""
    settings = get_settings()
    if not yes:
        typer.confirm(f"Delete {settings.resolved_home} and everything in it?", abort=True)
    LocalStack(settings).destroy(log=console.print)


@app.command()
def status() -> None:
    """Health of each part of the local stack."""
    table = _table("service", "state", "pid", "detail")
    services = LocalStack(get_settings()).status()
    for s in services:
        colour = {"running": "green", "stopped": "red"}.get(s.state, "yellow")
        table.add_row(s.name, f"[{colour}]{s.state}[/{colour}]", str(s.pid or ""), s.detail)
    console.print(table)
    if any(s.state in ("stopped", "unhealthy") for s in services):
        raise typer.Exit(1)


# --- generation -----------------------------------------------------------------------------
async def _follow(handle: JobHandle) -> JobStatus:
    """Print each stage (and generation progress) until the job ends or awaits review."""
    printed = 0
    last_progress = -1.0
    preview_shown = False
    while True:
        status = await handle.status()
        if "draft_preview" in status.artifacts and not preview_shown:
            console.print(f"  … draft preview ready: {status.artifacts['draft_preview']}")
            preview_shown = True
        # Stages passed between two polls are still printed, in order.
        for stage in status.stages_seen[printed:]:
            console.print(f"  … {stage.value}")
        printed = len(status.stages_seen)
        progressed = status.progress > 0 and status.progress - last_progress >= 0.1
        if status.stage is Stage.GENERATING and progressed:
            console.print(f"  … generating {status.progress:.0%}")
            last_progress = status.progress
        if status.stage in TERMINAL_STAGES or status.stage is Stage.AWAITING_REVIEW:
            return status
        await asyncio.sleep(0.25)


def _download(settings: Settings, artifacts: dict[str, str], out: Path) -> list[Path]:
    store = ObjectStore(settings)
    paths = []
    for uri in artifacts.values():
        _, key = split_uri(uri)
        paths.append(store.download(uri, out / Path(key).name))
    return paths


@app.command()
def generate(
    prompt: Annotated[str | None, typer.Argument(help="What the music should be")] = None,
    template: Annotated[
        str | None, typer.Option(help="Prompt template id or id@version (see `templates list`)")
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="Template variable NAME=VALUE (repeat)")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Length in seconds [30]")] = None,
    tempo: Annotated[
        float | None, typer.Option(help="Quarter notes per minute, 30-300 [120]")
    ] = None,
    key: Annotated[str | None, typer.Option(help='Key, e.g. "A minor" [C major]')] = None,
    meter: Annotated[
        str | None, typer.Option(help='Time signature, e.g. "3/4", "6/8" [4/4]')
    ] = None,
    instruments: Annotated[
        str | None, typer.Option(help="Comma-separated instruments/families [piano,bass,drums]")
    ] = None,
    mood: Annotated[str | None, typer.Option(help="e.g. calm, happy, dark, tense, epic")] = None,
    energy: Annotated[float | None, typer.Option(help="0 sparse .. 1 dense")] = None,
    structure: Annotated[
        str | None, typer.Option(help="Comma-separated sections, e.g. intro,verse,chorus,outro")
    ] = None,
    midi: Annotated[Path | None, typer.Option(help="A .mid melody to play")] = None,
    transpose_melody: Annotated[
        bool, typer.Option("--transpose-melody", help="Move the MIDI melody into --key")
    ] = False,
    reference: Annotated[
        Path | None, typer.Option(help="Reference audio: fills tempo/key left open")
    ] = None,
    layers: Annotated[
        str | None, typer.Option(help="layers product: e.g. calm,tense,combat")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same music)")] = 0,
    tier: Annotated[Tier, typer.Option(help="Quality tier (configured to a model)")] = Tier.DRAFT,
    model: Annotated[
        str | None, typer.Option(help="A model id, overriding the tier (`models list`)")
    ] = None,
    draft_first: Annotated[
        bool, typer.Option("--draft-first", help="Render a quick draft preview first")
    ] = False,
    product: Annotated[
        Product | None, typer.Option(help="track | loop | stems | layers [track]")
    ] = None,
    review: Annotated[
        ReviewMode, typer.Option(help="auto: the policy decides; required: a human must")
    ] = ReviewMode.AUTO,
    tenant: Annotated[str, typer.Option(help="Tenant the job is billed to")] = "default",
    profile: Annotated[
        str, typer.Option(help="Delivery profile: streaming|apple|podcast|broadcast")
    ] = DEFAULT_PROFILE,
    formats: Annotated[
        str, typer.Option("--formats", help="Comma-separated: wav24,wav16,flac,mp3,opus")
    ] = "wav24,mp3",
    callback_url: Annotated[
        str | None, typer.Option(help="POST job events (published, rejected...) here")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Download the published files here (implies --wait)")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same job")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:  # fmt: skip
    """Submit one generation job; prints the job id at once.

    Controls left out are filled by the template, the MIDI melody or the reference audio,
    else by the defaults in brackets.
    """
    variables = {}
    for item in var or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            err.print(f"[red]error:[/red] --var must be NAME=VALUE, not {item!r}")
            raise typer.Exit(2)
        variables[name.strip()] = value

    def split(text: str | None) -> list[str] | None:
        return None if text is None else [x.strip() for x in text.split(",") if x.strip()]

    request_data = {
        "prompt": prompt, "template": template, "variables": variables, "duration_s": duration,
        "tempo_bpm": tempo, "key": key, "meter": meter, "instruments": split(instruments),
        "mood": mood, "energy": energy, "structure": split(structure), "layers": split(layers),
        "transpose_melody": transpose_melody, "seed": seed, "tier": tier, "model": model,
        "draft_first": draft_first, "product": product,
        "review": review, "tenant": tenant, "profile": profile, "formats": split(formats),
        "callback_url": callback_url,
    }  # fmt: skip

    async def main() -> None:
        settings = get_settings()
        # Fail before connecting to anything (no network unless the request names stored inputs).
        checked = check_request(request_data, midi=midi, reference=reference, settings=settings)
        client = await Client.connect(settings)
        handle = await client.submit(checked, idempotency_key=idempotency_key)
        console.print(f"job {handle.job_id}  ({handle.web_url})")
        if not (wait or out):
            return
        status = await _follow(handle)
        if status.stage is Stage.AWAITING_REVIEW:
            console.print(f"awaiting review: {'; '.join(status.review_reasons)}")
            console.print(
                f"  approve with: tunesmith review approve {handle.job_id} --reviewer NAME"
            )
            return
        result = await handle.result()
        if as_json:
            console.print_json(result.model_dump_json())
        else:
            print_result(settings, result)
        if out and result.artifacts:
            for path in await asyncio.to_thread(_download, settings, result.artifacts, out):
                console.print(f"downloaded:   {path}")

    _run(main())


# --- jobs -----------------------------------------------------------------------------------
@jobs_app.command("list")
def jobs_list(
    stage: Annotated[Stage | None, typer.Option(help="Only jobs in this stage")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """Recent jobs, newest first."""
    rows = _run(
        _with_db(
            lambda db: db.list_jobs(
                stage=stage.value if stage else None, tenant=tenant, limit=limit
            )
        )
    )
    table = _table("job", "stage", "review", "model", "dur s", "created", "prompt")
    for r in rows:
        table.add_row(r["job_id"], r["stage"], r["review_state"], r["model_id"] or "",
                      f"{r['duration_s']:g}", r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                      r["prompt"][:40])  # fmt: skip
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """Everything the metadata DB knows about one job (JSON)."""
    url = get_settings().workflow_url(job_id)
    view = _run(_with_db(lambda db: read_job(db, job_id, web_ui=url)))
    console.print_json(json.dumps(view.record(), default=str))


# --- search ---------------------------------------------------------------------------------
def _range(text: str | None, what: str) -> tuple[float, float] | None:
    """ "120-130" → (120, 130); "120" → (120, 120); negative bounds allowed ("-16--14")."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:-\s*(-?\d+(?:\.\d+)?))?\s*", text)
    if not m:
        raise TunesmithError(f"--{what} takes a number or a range like 120-130, not {text!r}")
    low, high = float(m.group(1)), float(m.group(2) or m.group(1))
    return (min(low, high), max(low, high))


@app.command()
def search(
    tempo: Annotated[str | None, typer.Option(help="Detected BPM or range, e.g. 120-130")] = None,
    key: Annotated[str | None, typer.Option(help='Detected key, e.g. "A minor"')] = None,
    lufs: Annotated[
        str | None, typer.Option(help="Integrated loudness range, e.g. -16--14")
    ] = None,
    duration: Annotated[str | None, typer.Option(help="Seconds or range, e.g. 20-40")] = None,
    instrument: Annotated[str | None, typer.Option(help="Has this instrument")] = None,
    similar_to: Annotated[str | None, typer.Option(help="Nearest to this job's embedding")] = None,
    published: Annotated[bool, typer.Option("--published", help="Published jobs only")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Find generated audio by its stored features (no audio is downloaded)."""

    async def main() -> list[dict[str, Any]]:
        try:
            canonical_key = key_name(*parse_key(key)) if key else None
            inst = normalize_instrument(instrument) if instrument else None
        except ValueError as exc:
            raise TunesmithError(str(exc)) from None
        filters = {"tempo": _range(tempo, "tempo"), "lufs": _range(lufs, "lufs"),
                   "duration": _range(duration, "duration")}  # fmt: skip

        async def query(db: Database) -> list[dict[str, Any]]:
            try:
                return await db.search_masters(key=canonical_key, instrument=inst,
                                               similar_to=similar_to, published_only=published,
                                               limit=limit, **filters)  # fmt: skip
            except LookupError as exc:
                raise TunesmithError(str(exc)) from None

        return await _with_db(query)

    rows = _run(main())
    if as_json:
        console.print_json(json.dumps([jsonable(r) for r in rows], default=str))
        return
    table = _table("job", "stage", "bpm", "key", "LUFS", "LRA", "dur s", "distance", "prompt")
    for r in rows:
        dist = "" if r["distance"] is None else f"{r['distance']:.4f}"
        table.add_row(r["job_id"], r["stage"], f"{r['tempo_bpm']:.1f}", r["musical_key"],
                      f"{r['integrated_lufs']:.1f}", f"{r['loudness_range_lu']:.1f}",
                      f"{r['duration_s']:g}", dist, r["prompt"][:40])  # fmt: skip
    console.print(table)


# --- workers --------------------------------------------------------------------------------
def _worker(kind: str) -> None:
    from workers.runtime import run_worker

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import asyncpg

    from activities.postprocess.embedding import EmbeddingExtractorError

    settings = get_settings()
    ready = settings.resolved_home / "run" / f"worker-{kind}.ready"
    # A worker that cannot start says why once and exits (2: its configuration, 3: a service
    # it needs is unreachable), so an orchestrator's restart loop shows the cause, not a trace.
    try:
        asyncio.run(run_worker(kind, settings, ready_file=ready))
    except (EmbeddingExtractorError, TunesmithError) as exc:
        err.print(f"[red]error:[/red] worker {kind} cannot start: {exc}")
        raise typer.Exit(2) from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        err.print(f"[red]error:[/red] worker {kind} cannot start: the database refused the "
                  f"credentials for {settings.db_target} ({exc})")  # fmt: skip
        raise typer.Exit(2) from None
    except (OSError, asyncpg.PostgresError) as exc:
        err.print(f"[red]error:[/red] worker {kind} cannot start: the database at "
                  f"{settings.db_target} is unreachable ({exc})")  # fmt: skip
        raise typer.Exit(3) from None
    except RuntimeError as exc:
        if "connect" not in str(exc).lower():
            raise
        err.print(f"[red]error:[/red] worker {kind} cannot start: Temporal at "
                  f"{settings.temporal_target} is unreachable ({exc})")  # fmt: skip
        raise typer.Exit(3) from None


@worker_app.command("cpu")
def worker_cpu() -> None:
    """The CPU worker: the GenerateTrack workflow and every CPU activity (tunesmith-cpu)."""
    _worker("cpu")


@worker_app.command("gpu")
def worker_gpu() -> None:
    """The GPU worker: model inference (tunesmith-gpu); keeps its models warm."""
    _worker("gpu")


from tunesmith.cli_codec import codec_app  # noqa: E402
from tunesmith.cli_controls import eval_controls, templates_app  # noqa: E402
from tunesmith.cli_experiments import experiments_app, promote  # noqa: E402
from tunesmith.cli_models import models_app  # noqa: E402
from tunesmith.cli_provenance import (  # noqa: E402
    eval_watermark,
    provenance,
    verify,
    watermark_app,
)
from tunesmith.cli_review import review_app, reviewers_app  # noqa: E402
from tunesmith.cli_rollout import rollout_app  # noqa: E402
from tunesmith.cli_similarity import catalog_app, eval_app, similarity_app  # noqa: E402
from tunesmith.cli_takedown import takedown_app  # noqa: E402

eval_app.command("controls")(eval_controls)
app.add_typer(templates_app, name="templates")
models_app.command("promote")(promote)
app.add_typer(models_app, name="models")
app.add_typer(experiments_app, name="experiments")
app.add_typer(watermark_app, name="watermark")
app.add_typer(codec_app, name="codec")
app.command("verify")(verify)
app.command("provenance")(provenance)
eval_app.command("watermark")(eval_watermark)

app.add_typer(catalog_app, name="catalog")
app.add_typer(similarity_app, name="similarity")
app.add_typer(eval_app, name="eval")
app.add_typer(review_app, name="review")


@review_app.command("serve")
def review_serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: any free port")] = 8765,
    reviewer: Annotated[str, typer.Option(help="Pre-filled reviewer name")] = "",
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser")] = False,
) -> None:
    """A local review page on 127.0.0.1: listen, see the spectrogram, approve/reject, annotate."""
    from tunesmith.review_page import serve

    try:
        serve(get_settings(), port=port, reviewer=reviewer, open_browser=open_browser)
    except (ConnectionError, OSError) as exc:
        err.print(f"[red]error:[/red] cannot serve the review page ({exc})")
        raise typer.Exit(3) from None


app.add_typer(rollout_app, name="rollout")
app.add_typer(reviewers_app, name="reviewers")
app.add_typer(takedown_app, name="takedown")


def main() -> None:
    """Console entry point: run the CLI, then leave without interpreter teardown.

    The Temporal client's Rust runtime keeps threads that can call into Python while a
    short-lived process finalizes, which aborts it with "PyGILState_Release ... finalizing"
    (temporalio/sdk-python#300) even though the command itself succeeded. Flushing and
    `os._exit` after the command has fully finished sidesteps that teardown.
    """
    import os
    import traceback

    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

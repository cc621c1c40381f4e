"""CLI for the control layer: `tunesmith templates list/show` and `tunesmith eval controls`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from activities.controls.templates import get_template, list_templates
from activities.evaluation.controls import ControlResult, as_rows, run_grid, summarize
from activities.inference.draft import DraftBackend
from schemas.errors import TunesmithError
from tunesmith.cli_common import console, err

templates_app = typer.Typer(help="Versioned prompt templates.", no_args_is_help=True)


@templates_app.command("list")
def templates_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The templates (latest version of each)."""
    templates = list_templates()
    if as_json:
        console.print_json(json.dumps([t.model_dump(mode="json") for t in templates]))
        return
    table = Table("id", "version", "title", "variables", "product")
    for t in templates:
        variables = ", ".join(
            name + ("" if v.default is not None else "*") for name, v in t.variables.items()
        )
        table.add_row(t.id, str(t.version), t.title, variables,
                      str(t.defaults.get("product", "track")))  # fmt: skip
    console.print(table)
    console.print("* required; use: tunesmith generate --template ID --var NAME=VALUE")


@templates_app.command("show")
def templates_show(
    ref: Annotated[str, typer.Argument(help="id or id@version")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """One template: prompt, variables and default controls."""
    try:
        t = get_template(ref)
    except TunesmithError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(t.model_dump_json())
        return
    console.print(f"[bold]{t.id}@{t.version}[/bold]  {t.title}\n{t.description}\n")
    console.print(f"prompt:   {t.prompt}")
    for name, v in t.variables.items():
        default = "required" if v.default is None else f"default {v.default!r}"
        console.print(f"  {{{name}}}  {v.description} ({default})")
    for name, value in t.defaults.items():
        console.print(f"default {name}: {value}")


def eval_controls(
    n: Annotated[int, typer.Option("--n", help="Requests in the grid", min=1, max=400)] = 24,
    seed: Annotated[int, typer.Option(help="First seed of the grid")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print every result as JSON")] = False,
) -> None:
    """Render a grid of requests (tempos 60-180, keys, meters, every product) with the draft
    backend and measure tempo, key, duration, loop seams and stem sums; print pass rates."""
    backend = DraftBackend()

    def show(r: ControlResult) -> None:
        if as_json:
            return
        seam = "" if r.seam_ok is None else f" seam {'ok' if r.seam_ok else 'BAD'}"
        stems = "" if r.stems_ok is None else f" stems {r.stems_error_db} dB"
        console.print(
            f"{r.product:<7} {r.meter:>4} {r.tempo_bpm:5.0f} BPM → {r.detected_tempo:6.1f} "
            f"{'ok ' if r.tempo_ok else 'BAD'}  {r.key:<9} → {r.detected_key:<9} "
            f"{'ok ' if r.key_ok else 'BAD'}  frames {'ok' if r.duration_ok else 'BAD'}"
            f"{seam}{stems}"
        )

    results = run_grid(backend, n, seed, on_result=show)
    summary = summarize(results)
    if as_json:
        console.print_json(json.dumps({"summary": summary, "results": as_rows(results)}))
        return
    console.print_json(json.dumps(summary))

"""CLI for model cards: `models list` and `models show ID` (wired into `tunesmith` as `models`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from activities.models.cards import get_card, list_cards
from activities.models.settings import get_model_settings
from tunesmith.cli_common import console, err

models_app = typer.Typer(
    help="Model cards: what each model is, can do and costs.", no_args_is_help=True
)


@models_app.command("list")
def models_list(
    debug: Annotated[bool, typer.Option(help="include tiny test models")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the known models, and which of them this machine's worker serves."""
    served = set(get_model_settings().served_model_ids)
    cards = list_cards(include_debug=debug)
    if as_json:
        rows = [c.model_dump() | {"served": c.id in served} for c in cards]
        console.print_json(json.dumps(rows))
        return
    table = Table("id", "version", "family", "rate", "ch", "max s", "controls", "¢/s", "licence",
                  "served")  # fmt: skip
    for c in cards:
        licence = c.licence.split(" (")[0].split(";")[0]
        table.add_row(c.id, c.version, c.family, f"{c.sample_rate}", f"{c.channels}",
                      f"{c.max_duration_s:g}", ",".join(c.controls), f"{c.cost_cents_per_second:g}",
                      licence, "yes" if c.id in served else "")  # fmt: skip
    console.print(table)


@models_app.command("show")
def models_show(
    model_id: Annotated[str, typer.Argument(help="model id, e.g. musicgen-small")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show one model's full card."""
    try:
        card = get_card(model_id)
    except KeyError as exc:
        err.print(f"[red]error:[/red] {exc.args[0]}")
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(card.model_dump_json())
        return
    for key, value in card.model_dump().items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        console.print(f"[bold]{key}[/bold]: {value}")

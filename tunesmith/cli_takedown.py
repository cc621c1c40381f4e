"""CLI for takedowns: `takedown file/list/show/dispute/decide` (the Typer sub-app `takedown_app`).

Exit codes: 0 ok, 2 refused or bad input (one line saying why), 3 platform unreachable.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.table import Table

from activities.takedown.store import TakedownDB
from infra.db import jsonable
from infra.settings import get_settings
from schemas.errors import TunesmithError
from schemas.takedown import TakedownStatus
from tunesmith import takedowns
from tunesmith.cli_common import console, err, run, with_db
from tunesmith.client import Client

takedown_app = typer.Typer(
    help="Takedown claims: quarantine, dispute, decide.", no_args_is_help=True
)
T = TypeVar("T")


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run `fn()` with the CLI's exit codes (see `cli_common.run`)."""
    return run(fn())


async def _with_client(fn: Callable[[Client], Awaitable[T]]) -> T:
    return await fn(await Client.connect(get_settings()))


async def _with_db(fn: Callable[[TakedownDB], Awaitable[T]]) -> T:
    return await with_db(lambda db: fn(TakedownDB(db)))


def _print_status(
    status: TakedownStatus, json_out: bool, extra: dict[str, Any] | None = None
) -> None:
    if json_out:
        console.print_json(json.dumps(status.model_dump(mode="json") | (extra or {})))
        return
    console.print(f"takedown:  {status.takedown_id}  (job {status.job_id})")
    console.print(
        f"state:     {status.state.value}" + ("  [escalated]" if status.escalated else "")
    )
    console.print(f"claimant:  {status.claimant}")
    console.print(f"owner:     {status.owner or ''}")
    if status.dispute_deadline is not None:
        console.print(f"disputes:  until {status.dispute_deadline.isoformat()}")
    if status.dispute is not None:
        console.print(f"disputed:  by {status.dispute.by}: {status.dispute.reason}")
    if status.decision is not None:
        d = status.decision
        console.print(
            f"decision:  {d.decision} by {d.reviewer}" + (f": {d.note}" if d.note else "")
        )
    if status.recording_id:
        console.print(f"catalog:   {status.recording_id}")
    for key in status.objects:
        console.print(f"object:    {key}")


@takedown_app.command("file")
def file(
    job_id: Annotated[str, typer.Argument(help="the published job (asset) id")],
    claimant: Annotated[str, typer.Option(help="who claims the content")],
    evidence: Annotated[str, typer.Option(help="the claim's evidence (text)")],
    contact: Annotated[str, typer.Option(help="the claimant's contact email")],
    evidence_url: Annotated[str | None, typer.Option(help="link to evidence")] = None,
    callback_url: Annotated[
        str | None,
        typer.Option(help="the claimant's webhook (http/https): signed takedown events"),
    ] = None,
    dispute_window_s: Annotated[
        float | None, typer.Option(help="owner's dispute window (default: 14 days)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """File a claim: the asset is quarantined at once and both parties are notified.

    Filing again for an asset under an open takedown returns that takedown. With
    --callback-url the claimant's webhook receives `takedown.filed` and then the outcome.
    """
    try:  # bad input fails before connecting to anything
        takedowns.validate_claim(job_id, claimant=claimant, evidence=evidence,
                                 contact_email=contact, evidence_url=evidence_url,
                                 callback_url=callback_url)  # fmt: skip
    except TunesmithError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    filed = _run(lambda: _with_client(lambda c: takedowns.file_takedown(
        c, job_id, claimant=claimant, evidence=evidence, contact_email=contact,
        evidence_url=evidence_url, callback_url=callback_url,
        dispute_window_s=dispute_window_s,
    )))  # fmt: skip
    extra = {"workflow_id": filed.workflow_id, "created": filed.created}
    if not json_out:
        what = "filed" if filed.created else "already filed (existing takedown)"
        console.print(f"{what}: {filed.workflow_id}")
    _print_status(filed.status, json_out, extra)


@takedown_app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="quarantined|disputed|restored|removed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Takedowns, newest first."""
    rows = _run(lambda: _with_db(lambda t: t.list_takedowns(state=state, limit=limit)))
    if json_out:
        console.print_json(json.dumps([jsonable(r) for r in rows]))
        return
    table = Table("takedown", "job", "state", "claimant", "owner", "filed", "dispute until")
    for r in rows:
        table.add_row(r["takedown_id"], r["job_id"], r["state"], r["claimant"], r["owner"],
                      r["filed_at"].strftime("%Y-%m-%d %H:%M:%S"),
                      r["dispute_deadline"].strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    console.print(table)


@takedown_app.command("show")
def show(job_id: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The takedown of a job: state, dispute, decision and its audit log."""

    async def main() -> tuple[TakedownStatus, list[dict[str, Any]]]:
        status = await _with_client(lambda c: takedowns.get_takedown(c, job_id))
        events = await _with_db(lambda t: t.events(status.takedown_id))
        return status, events

    status, events = _run(main)
    if json_out:
        _print_status(status, True, {"events": [jsonable(e) for e in events]})
        return
    _print_status(status, False)
    table = Table("at", "actor", "action", "detail")
    for e in events:
        table.add_row(e["at"].strftime("%Y-%m-%d %H:%M:%S"), e["actor"], e["action"],
                      _event_summary(e))  # fmt: skip
    console.print(table)


def _event_summary(event: dict[str, Any]) -> str:
    """One line of an audit event's detail; a catalog entry per part reads `bass: added`."""
    detail = event["detail"]
    if event["action"] == "cataloged":
        return ", ".join(f"{r['part']}: {r['status']}" for r in detail.get("recordings", []))
    return json.dumps(detail)[:120]


@takedown_app.command("dispute")
def dispute_cmd(
    job_id: str,
    by: Annotated[str, typer.Option(help="the asset's owner (its tenant)")],
    reason: Annotated[str, typer.Option()],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dispute a takedown as the asset's owner (refused after the dispute window)."""
    status = _run(lambda: _with_client(
        lambda c: takedowns.dispute(c, job_id, by=by, reason=reason)
    ))  # fmt: skip
    _print_status(status, json_out)


@takedown_app.command("decide")
def decide_cmd(
    job_id: str,
    decision: Annotated[Literal["restore", "remove"], typer.Argument(help="restore | remove")],
    reviewer: Annotated[str, typer.Option()],
    note: Annotated[str | None, typer.Option()] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decide a takedown: `restore` publishes the asset again; `remove` deletes it for good and
    adds its content to the similarity catalog (owner: the claimant)."""
    status = _run(lambda: _with_client(lambda c: takedowns.decide(
        c, job_id, decision=decision, reviewer=reviewer, note=note
    )))  # fmt: skip
    _print_status(status, json_out)


if __name__ == "__main__":  # `python -m tunesmith.cli_takedown` until wired into the main CLI
    takedown_app()

"""CLI for the human review queue (`tunesmith review ...`) and its reviewers (`reviewers ...`)."""

from __future__ import annotations

import json
import re
import webbrowser
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from activities.policy.review import parse_duration
from activities.review import store as review_db
from activities.review.annotations import annotate_job
from activities.review.proof import review_proof
from infra.db import Database, jsonable
from infra.settings import get_settings
from infra.store import ObjectStore
from schemas.errors import TunesmithError
from schemas.jobs import JobStatus, Stage
from tunesmith.cli_common import console, err, print_result
from tunesmith.cli_common import run as _run
from tunesmith.cli_common import table as _table
from tunesmith.cli_common import with_db as _with_db

if TYPE_CHECKING:
    from tunesmith.client import JobHandle
    from tunesmith.jobs import JobView

review_app = typer.Typer(help="The human review queue.", no_args_is_help=True)
reviewers_app = typer.Typer(help="Who may review, by role and tenant.", no_args_is_help=True)

T = TypeVar("T")


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class Role(StrEnum):
    REVIEWER = "reviewer"
    SENIOR = "senior"
    ADMIN = "admin"


def _age(since: datetime) -> str:
    seconds = max(0.0, (datetime.now(since.tzinfo) - since).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


# --- reviewers ------------------------------------------------------------------------------
@reviewers_app.command("add")
def reviewers_add(
    name: str,
    role: Annotated[Role, typer.Option(help="reviewer < senior < admin")] = Role.REVIEWER,
    tenant: Annotated[
        list[str] | None, typer.Option(help="May review this tenant (repeat; default: all)")
    ] = None,
) -> None:
    """Add (or update and reactivate) a reviewer. The first one switches authorization on.

    A new reviewer gets a token, printed once: give it to them privately; they set it as
    TUNESMITH_REVIEWER_TOKEN and every decision they send is signed with it.
    """
    token = _run(
        _with_db(lambda db: review_db.add_reviewer(db, name, role=role.value, tenants=tenant))
    )
    console.print(
        f"reviewer {name}: {role.value}, tenants {', '.join(tenant) if tenant else 'all'}"
    )
    if token:
        _print_token(name, token)


def _print_token(name: str, token: str) -> None:
    console.print(f"token:    {token}")
    console.print(
        f"  (shown once: give it to {name} privately; they set TUNESMITH_REVIEWER_TOKEN to it. "
        f"Lost or leaked: `tunesmith reviewers rotate {name}`)"
    )


@reviewers_app.command("rotate")
def reviewers_rotate(name: str) -> None:
    """Issue the reviewer a new token; the old one stops working at once."""
    token = _run(_with_db(lambda db: review_db.rotate_token(db, name)))
    if token is None:
        err.print(f"[red]error:[/red] no reviewer {name!r}")
        raise typer.Exit(2)
    console.print(f"reviewer {name}: new token issued")
    _print_token(name, token)


@reviewers_app.command("list")
def reviewers_list() -> None:
    """Every reviewer, active or not."""
    rows = _run(_with_db(review_db.list_reviewers))
    if not rows:
        console.print("no reviewers: review authorization is off until one is added")
        return
    table = _table("name", "role", "tenants", "active")
    for r in rows:
        table.add_row(
            r["name"],
            r["role"],
            ", ".join(r["tenants"]) if r["tenants"] else "all",
            "yes" if r["active"] else "no",
        )
    console.print(table)


@reviewers_app.command("remove")
def reviewers_remove(
    name: str,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete the row instead of deactivating it")
    ] = False,
) -> None:
    """Deactivate a reviewer (their past decisions stay in the audit log)."""

    async def main(db: Database) -> None:
        if not await review_db.remove_reviewer(db, name, purge=purge):
            raise TunesmithError(f"no reviewer {name!r}")

    _run(_with_db(main))
    console.print(f"reviewer {name}: {'deleted' if purge else 'deactivated'}")


# --- the queue ------------------------------------------------------------------------------
@review_app.command("list")
def review_list(
    risk: Annotated[
        Literal["block", "review"] | None, typer.Option(help="Only this similarity risk")
    ] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only jobs older than this, e.g. 30m, 2h, 1d")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Jobs waiting for a human decision, oldest first."""
    try:
        older_s = parse_duration(older_than) if older_than else None
    except ValueError as exc:
        err.print(f"[red]error:[/red] --older-than: {exc}")
        raise typer.Exit(2) from None
    rows = _run(
        _with_db(
            lambda db: review_db.review_queue(
                db, risk=risk, tenant=tenant, older_than_s=older_s, limit=limit
            )
        )
    )
    if as_json:
        console.print_json(json.dumps([jsonable(r) for r in rows], default=str))
        return
    table = _table("job", "tenant", "risk", "approvals", "age", "model", "dur s", "prompt")
    for r in rows:
        table.add_row(
            r["job_id"],
            r["tenant"],
            r["risk"],
            f"{r['approvals']}/{r['required_approvals']}",
            _age(r["created_at"]),
            r["model_id"] or "",
            f"{r['duration_s']:g}",
            r["prompt"][:50],
        )
    console.print(table)


@review_app.command("show")
def review_show(job_id: str) -> None:
    """Controls, quality score and reasons, similarity matches, links to listen and look."""
    from tunesmith.client import Client

    settings = get_settings()

    async def main() -> JobView:
        client = await Client.connect(settings)
        return await client.job(job_id)

    view = _run(main())
    job, c = view.job, view.controls
    console.print(
        f"job:      {job_id}  tenant {job['tenant']}  product {job['product']}  "
        f"stage {job['stage']}  review {job['review_state']}"
    )
    console.print(f"web ui:   {view.web_ui}")
    console.print(f"prompt:   {job['prompt']}")
    controls = {
        k: c.get(k)
        for k in (
            "tempo_bpm",
            "key",
            "meter",
            "duration_s",
            "mood",
            "energy",
            "seed",
            "model_id",
            "template_id",
        )
    }
    instruments = [i.get("name", i) if isinstance(i, dict) else i for i in c.get("instruments", [])]
    console.print(
        "controls: "
        + ", ".join(f"{k} {v}" for k, v in controls.items() if v is not None)
        + (f", instruments {', '.join(map(str, instruments))}" if instruments else "")
    )
    console.print(f"reasons:  {'; '.join(job['review_reasons']) or '-'}")
    store = ObjectStore(settings)
    if (a := view.master) is not None:
        quality = (a["features"] or {}).get("quality", {})
        console.print(
            f"quality:  {quality.get('score', '?')}"
            + "".join(f"\n  - {f}" for f in quality.get("findings", []))
        )
        console.print(
            f"measured: {a['integrated_lufs']:.2f} LUFS, LRA {a['loudness_range_lu']} LU, "
            f"true peak {a['true_peak_dbtp']:.2f} dBTP, {a['duration_s']:.2f} s, "
            f"tempo {a['tempo_bpm']} BPM, key {a['musical_key']}"
        )
    if (sim := view.similarity) is not None:
        console.print(
            f"similarity: risk {sim.risk}, {len(sim.matches)} match(es)"
            + "".join(f"\n  - {r}" for r in sim.risk_reasons)
        )
        for m in sim.matches:
            extra = f", BER {m.bit_error_rate:.3f}" if m.bit_error_rate is not None else ""
            if m.semitones is not None:
                extra += f", {m.semitones:+d} semitones"
            console.print(
                f"  {m.title or m.recording_id} ({m.method}, score {m.score:.2f}, "
                f"{m.risk}): here {m.query_offset_s:.1f} s, theirs "
                f"{m.recording_offset_s:.1f} s, {m.duration_s:.1f} s long{extra}"
            )
        console.print(
            f"policy:   {sim.recommendation.policy_version}, needs "
            f"{sim.recommendation.required_approvals} approval(s)"
        )
    for kind, uri in view.listen.items():
        console.print(f"listen:   {kind:<17} {store.presigned_get(uri)}")
    if view.overview_uri is not None:
        console.print(f"overview: {'overview_png':<17} {store.presigned_get(view.overview_uri)}")
    for row in view.audit:
        verdict = "accepted" if row["accepted"] else "refused"
        console.print(
            f"audit:    {row['at']:%Y-%m-%d %H:%M:%S} {row['action']} "
            f"{row['decision'] or ''} by {row['reviewer'] or '-'}: {verdict}"
            + (f" ({row['reason']})" if row["reason"] else "")
        )


# --- decisions ------------------------------------------------------------------------------
def _decide(
    job_id: str,
    call: Callable[[JobHandle], Awaitable[JobStatus]],
    *,
    wait: bool,
) -> None:
    from tunesmith.client import Client

    async def main() -> None:
        settings = get_settings()
        client = await Client.connect(settings)
        handle = client.get_handle(job_id)
        # A refusal raises ReviewNotAllowedError/JobNotFoundError, audited by the SDK.
        status = await call(handle)
        if status.stage is Stage.AWAITING_REVIEW:
            console.print(
                f"job {job_id}: {len(status.approvals)} of "
                f"{status.required_approvals} approvals ({', '.join(status.approvals)});"
                " waiting for another reviewer"
            )
            return
        console.print(f"job {job_id}: {status.stage.value} (review: {status.review_state.value})")
        if wait and status.stage not in (
            Stage.PUBLISHED,
            Stage.REJECTED,
            Stage.EXPIRED,
            Stage.FAILED,
            Stage.CANCELLED,
        ):
            print_result(settings, await handle.result())

    _run(main())


@review_app.command("approve")
def review_approve(
    job_id: str,
    reviewer: Annotated[str, typer.Option(help="Who decides (a registered reviewer)")],
    note: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option(help="Wait until it is published")] = True,
) -> None:
    """Approve a job awaiting review: it is published (once the policy's approvals are in)."""
    _decide(job_id, lambda h: h.approve(reviewer=reviewer, note=note), wait=wait)


@review_app.command("proof")
def review_proof_cmd(
    job_id: str,
    reviewer: Annotated[str, typer.Option(help="Who decides (a registered reviewer)")],
    decision: Annotated[Decision, typer.Option(help="approve or reject")],
) -> None:
    """Print the proof a decision by REVIEWER on JOB_ID must carry (signed with
    TUNESMITH_REVIEWER_TOKEN), for sending it with the stock `temporal workflow signal`."""
    token = get_settings().reviewer_token
    if not token:
        err.print("[red]error:[/red] set TUNESMITH_REVIEWER_TOKEN to the reviewer's token")
        raise typer.Exit(2)
    proof = review_proof(token, job_id=job_id, reviewer=reviewer, decision=decision.value)
    console.print(proof)
    body = json.dumps({"decision": decision.value, "reviewer": reviewer, "proof": proof})
    err.print(f"temporal workflow signal --workflow-id {job_id} --name review --input '{body}'")


@review_app.command("reject")
def review_reject(
    job_id: str,
    reviewer: Annotated[str, typer.Option(help="Who decides (a registered reviewer)")],
    reason: Annotated[str, typer.Option(help="Why it is rejected")],
) -> None:
    """Reject a job awaiting review: nothing is published or charged."""
    _decide(job_id, lambda h: h.reject(reviewer=reviewer, reason=reason), wait=False)


# --- annotations, revisions, metrics --------------------------------------------------------
@review_app.command("annotate")
def review_annotate(
    job_id: str,
    reviewer: Annotated[str, typer.Option(help="Who annotates (a registered reviewer)")],
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeat)")] = None,
    rating: Annotated[int | None, typer.Option(min=1, max=5, help="1 (bad) .. 5 (great)")] = None,
    note: Annotated[str | None, typer.Option()] = None,
    post_edit: Annotated[
        bool, typer.Option("--post-edit", help="Published after an edit (feeds the post-edit rate)")
    ] = False,
) -> None:
    """Annotate a job (any stage): tags, a rating, a note, whether it needed an edit."""
    if not (tag or rating or note or post_edit):
        err.print("[red]error:[/red] give at least one of --tag, --rating, --note, --post-edit")
        raise typer.Exit(2)

    tags = tag or []
    _run(
        _with_db(
            lambda db: annotate_job(
                db,
                job_id,
                reviewer=reviewer,
                tags=tags,
                rating=rating,
                note=note,
                post_edit=post_edit,
            )
        )
    )
    console.print(f"job {job_id}: annotated by {reviewer}")


_LIST_FIELDS = {"instruments", "structure", "layers", "formats"}
_SET_RE = re.compile(r"^([a-z_]+)=(.*)$", re.S)


def parse_changes(items: list[str]) -> dict[str, Any]:
    """`["tempo_bpm=100", "key=A minor", "instruments=piano,bass"]` → request changes."""
    changes: dict[str, Any] = {}
    for item in items:
        m = _SET_RE.match(item)
        if not m:
            raise TunesmithError(f"--set takes FIELD=VALUE, not {item!r}")
        name, text = m.groups()
        value: Any
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if name in _LIST_FIELDS and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        changes[name] = value
    return changes


@review_app.command("revise")
def review_revise(
    job_id: str,
    set_: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE request change (repeat)")],
) -> None:
    """Re-generate with changed controls: a new job with the original request plus the changes,
    linked to the original (`revision_of`). The original is left as it is."""
    from tunesmith.client import Client
    from tunesmith.review import revise

    async def main() -> str:
        changes = parse_changes(set_)
        client = await Client.connect(get_settings())
        return (await revise(client, job_id, changes)).job_id

    new_id = _run(main())
    console.print(f"{new_id} (revision of {job_id})")


@review_app.command("open")
def review_open(
    job_id: str,
    browser: Annotated[bool, typer.Option("--browser", help="Open it in a web browser")] = False,
) -> None:
    """The job's run in the Temporal Web UI."""
    url = get_settings().workflow_url(job_id)
    console.print(url)
    if browser:
        webbrowser.open(url)


@review_app.command("stats")
def review_stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Per tenant: approval rate, post-edit rate and mean rating."""
    rows = _run(_with_db(review_db.review_stats))
    if as_json:
        console.print_json(json.dumps([jsonable(r) for r in rows], default=str))
        return

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    table = _table(
        "tenant",
        "reviewed",
        "approved",
        "approval rate",
        "auto-approved",
        "post-edit rate",
        "mean rating",
        "annotations",
    )
    for r in rows:
        rating = "-" if r["mean_rating"] is None else f"{r['mean_rating']:.2f}"
        table.add_row(
            r["tenant"],
            str(r["reviewed"]),
            str(r["approved"]),
            pct(r["approval_rate"]),
            str(r["auto_approved"]),
            pct(r["post_edit_rate"]),
            rating,
            str(r["annotations"]),
        )
    console.print(table)

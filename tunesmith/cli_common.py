"""What every `tunesmith` command module shares: consoles, running a coroutine with the CLI's
exit codes (2: refused input, 3: platform unreachable), a DB session, tables, and a job's
result."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

from infra.db import Database
from infra.settings import Settings, get_settings
from schemas.errors import TunesmithError
from schemas.jobs import GenerationResult, Stage

T = TypeVar("T")
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine; tunesmith errors become a one-line message and exit code 2, an
    unreachable platform exit code 3."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except TunesmithError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except (ConnectionError, OSError, RuntimeError) as exc:
        if isinstance(exc, ConnectionError) or "connect" in str(exc).lower():
            err.print(
                f"[red]error:[/red] cannot reach the platform ({exc}); is `tunesmith up` running?"
            )
            raise typer.Exit(3) from None
        raise


async def with_db(fn: Callable[[Database], Awaitable[T]], max_size: int = 2) -> T:
    """Call `fn` with a short-lived metadata DB pool of up to `max_size` connections."""
    db = await Database.open(get_settings(), max_size=max_size)
    try:
        return await fn(db)
    finally:
        await db.close()


def run_with_db(fn: Callable[[Database], Awaitable[T]]) -> T:
    """`run(with_db(fn))`: the usual shape of a command that only reads or writes the DB."""
    return run(with_db(fn))


def table(*columns: str) -> Table:
    """A table whose id-like columns never wrap (they get copied into other commands)."""
    out = Table()
    for name in columns:
        out.add_column(name, no_wrap=name != "prompt", overflow="fold")
    return out


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error; return the Exit to raise."""
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def print_result(settings: Settings, result: GenerationResult) -> None:
    """A finished job's result, one line per fact (`generate --wait`, `review approve`)."""
    console.print(f"job:          {result.job_id}")
    console.print(f"web ui:       {settings.workflow_url(result.job_id)}")
    console.print(f"stage:        {result.stage.value} (review: {result.review_state.value})")
    console.print(f"model:        {result.model_id} {result.model_version} seed {result.seed}")
    if result.measurements:
        m = result.measurements
        console.print(
            f"measured:     {m.integrated_lufs:.2f} LUFS, true peak {m.true_peak_dbtp:.2f} dBTP, "
            f"{m.duration_s:.3f} s at {m.sample_rate} Hz"
        )
    for kind, uri in result.artifacts.items():
        console.print(f"artifact:     {kind:<14} {uri}")
    if result.stage is Stage.PUBLISHED:
        console.print(f"charged:      {result.charge_cents} cents")

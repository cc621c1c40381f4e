"""CLI for worker rollouts (`tunesmith rollout status/ramp/promote/build-id`).

A new build's CPU workers join the Worker Deployment next to the running ones; `ramp` sends a
stable share of workflows to it, `promote` makes it current, and `status` shows when an old
build has drained (no running workflow left on it) so its workers can be stopped.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from infra.settings import get_settings
from infra.temporal import connect_temporal
from tunesmith.cli_common import console
from tunesmith.cli_common import run as _run
from tunesmith.cli_common import table as _table
from workers import versioning

rollout_app = typer.Typer(
    help="Roll out new worker code with Temporal Worker Versioning.", no_args_is_help=True
)


@rollout_app.command("build-id")
def build_id() -> None:
    """Print the build id this code's workers register as."""
    console.print(versioning.build_id(get_settings()))


@rollout_app.command()
def status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the deployment's current and ramping builds and every known build."""

    async def main() -> versioning.DeploymentState:
        settings = get_settings()
        return await versioning.describe(await connect_temporal(settings), settings)

    state = _run(main())
    if json_out:
        console.print_json(
            json.dumps(
                {
                    "deployment": state.name,
                    "current": state.current,
                    "ramping": state.ramping,
                    "ramp_percent": state.ramp_percent,
                    "versions": [
                        {
                            "build_id": v.build_id,
                            "status": v.status,
                            "created": v.created.isoformat() if v.created else None,
                            "running_workflows": v.running_workflows,
                        }
                        for v in state.versions
                    ],
                }
            )
        )
        return
    ramp = f", ramping {state.ramping} at {state.ramp_percent:g}%" if state.ramping else ""
    console.print(f"deployment {state.name}: current {state.current or '-'}{ramp}")
    table = _table("build id", "status", "running workflows", "created")
    for v in state.versions:
        created = f"{v.created:%Y-%m-%d %H:%M:%S}" if v.created else "-"
        table.add_row(v.build_id, v.status, str(v.running_workflows), created)
    console.print(table)


@rollout_app.command()
def ramp(
    build: Annotated[str, typer.Argument(help="build id to ramp (see `rollout status`)")],
    percent: Annotated[float, typer.Option("--percent", help="share of workflows, 0-100")],
) -> None:
    """Send a stable share of workflows (by workflow id) to a new build."""

    async def main() -> None:
        settings = get_settings()
        await versioning.ramp(await connect_temporal(settings), settings, build, percent)

    _run(main())
    console.print(f"ramping {build} at {percent:g}%")


@rollout_app.command("unramp")
def unramp() -> None:
    """Remove the ramp: all workflows go to the current build again."""

    async def main() -> None:
        settings = get_settings()
        await versioning.ramp(await connect_temporal(settings), settings, None, 0)

    _run(main())
    console.print("ramp removed")


@rollout_app.command()
def promote(
    build: Annotated[str, typer.Argument(help="build id to make current")],
) -> None:
    """Make a build current; running workflows move to it at their next step."""

    async def main() -> None:
        settings = get_settings()
        await versioning.promote(await connect_temporal(settings), settings, build)

    _run(main())
    console.print(f"{build} is now current")

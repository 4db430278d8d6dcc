"""``autoops replay``: what another policy would have decided over a live recording."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoops.model import Action
from autoops.policy.loader import load_policy
from autoops.regions.loader import load_catalogue
from autoops.sim.replay import RecordingError, ReplayMode, ReplayReport, read_recording, replay
from autoops.yamlio import ConfigError


def _actions(actions: tuple[Action, ...]) -> str:
    if not actions:
        return "(nothing)"
    return "\n".join(_describe(a) for a in actions)


def _describe(action: Action) -> str:
    fields = {k: v for k, v in vars_of(action).items() if k != "kind" and v not in (None, "", ())}
    inner = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"{action.kind.value}({inner})"


def vars_of(action: Action) -> dict[str, object]:
    """An action's fields by name (slots dataclasses have no __dict__)."""
    return {name: getattr(action, name) for name in action.__dataclass_fields__}


def print_report(report: ReplayReport, console: Console) -> None:
    """The differences as a table, with the reasons of each side."""
    console.print(
        f"Replayed [bold]{report.passes}[/] passes recorded under policy "
        f"[bold]{escape(report.recorded_policy)}[/] with [bold]{escape(report.replayed_policy)}"
        f"[/] ({report.mode} mode): [bold]{len(report.differences)}[/] would differ."
    )
    if not report.differences:
        return
    table = Table(title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("recorded", overflow="fold")
    table.add_column("would have done", overflow="fold")
    table.add_column("why (replayed policy)", overflow="fold")
    for diff in report.differences:
        table.add_row(
            str(diff.line),
            escape(_actions(diff.recorded)),
            escape(_actions(diff.replayed)),
            escape("; ".join(diff.replayed_reasons) or "-"),
        )
    console.print(table)


def replay_command(
    recording: Annotated[
        Path, typer.Argument(help="A recording made by `autoops run --record FILE`.")
    ],
    policy: Annotated[
        Path, typer.Option("--policy", "-p", help="The policy to replay the recording with.")
    ],
    mode: Annotated[
        str,
        typer.Option(
            help="step: each pass from the live controller's recorded state; rolling: the "
            "replayed policy's own state, carried from pass to pass."
        ),
    ] = "step",
    regions: Annotated[
        list[Path] | None,
        typer.Option(
            "--regions", help="Extra region catalogue file (repeatable).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Run a policy over a live recording in dry-run and list what it would have done
    differently, and why."""
    if mode not in ("step", "rolling"):
        typer.echo(f"--mode: {mode!r} is not one of step, rolling", err=True)
        raise typer.Exit(2)
    try:
        catalogue = load_catalogue(regions or [])
        loaded = load_policy(policy, catalogue)
    except ConfigError as err:
        for issue in err.issues:
            print(issue.format(), file=sys.stderr)
        raise typer.Exit(1) from None
    try:
        passes = read_recording(recording)
    except RecordingError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    chosen: ReplayMode = "step" if mode == "step" else "rolling"
    report = replay(passes, loaded, catalogue, chosen)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2, allow_nan=True))
        return
    print_report(report, Console())

"""``autoops demo``: a local Ray Serve app, load, incidents, and the controller healing them."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from autoops.demo.story import STORIES, Demo, DemoResult
from autoops.demo.view import HeadlessView, LiveView
from autoops.logging import configure_logging


def print_summary(result: DemoResult, console: Console) -> None:
    """Every chapter, every action with its evidence, the load counts and where things are."""
    console.print("\n[bold]What happened[/bold]")
    for chapter in result.chapters:
        took = f" in {chapter.took_s:.0f} s" if chapter.took_s is not None else ""
        mark = "[green]✔[/green]" if chapter.outcome == "healed" else "[red]✘[/red]"
        console.print(f"  {mark} {chapter.name}: {chapter.outcome}{took}")
    applied = Counter(a["action"] for a in result.actions if a["outcome"] == "updated")
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(applied.items())) or "none"
    console.print(
        f"\n[bold]Actions applied[/bold] (from the audit log): {sum(applied.values())} ({counts})"
    )
    for action in result.actions:
        if action["outcome"] == "unchanged":
            continue
        console.print(f"  - {action['action']}: {action['outcome']} — {action['detail']}")
    load = result.load
    console.print(
        f"\n[bold]Load[/bold]: {load.sent} requests sent, {load.ok} answered, "
        f"{load.failed} failed, {load.feedback_sent} labelled feedback"
    )
    console.print(
        f"[bold]Audit[/bold]: {result.audit_records} records, chain "
        + ("[green]verified[/green]" if result.audit_ok else "[red]BROKEN[/red]")
        + f" — {result.store} (autoops audit --store {result.store})"
    )
    console.print(f"[bold]Report[/bold]: {result.report}")
    console.print(f"[bold]Metrics source[/bold]: {result.source}")


def demo_command(
    duration: Annotated[
        float, typer.Option(help="Seconds the whole story may take (it stops early when done).")
    ] = 300.0,
    no_fault: Annotated[
        bool, typer.Option("--no-fault", help="Roll out a healthy canary instead of a bad one.")
    ] = False,
    story: Annotated[
        list[str] | None,
        typer.Option(help=f"Incidents to play (repeatable): {', '.join(STORIES)}."),
    ] = None,
    headless: Annotated[
        bool, typer.Option(help="Plain log lines instead of the live view (for CI).")
    ] = False,
    report_dir: Annotated[
        Path | None, typer.Option(help="Where to write the summary (default: a temp folder).")
    ] = None,
    scraper: Annotated[
        bool, typer.Option(help="Use the built-in scraper even when Prometheus is installed.")
    ] = False,
) -> None:
    """Start a local Ray Serve app and watch AutoOps heal a bad canary, a ramp, a carbon spike
    and an input drift."""
    chosen = story or list(STORIES)
    unknown = [s for s in chosen if s not in STORIES]
    if unknown:
        typer.echo(f"--story: unknown {unknown}; choose from {', '.join(STORIES)}", err=True)
        raise typer.Exit(2)
    configure_logging(level="warning")
    console = Console()
    demo = Demo(chosen, fault=not no_fault, report_dir=report_dir, prefer_prometheus=not scraper)
    console.print("Starting a local Ray, the serving app and the controller (about a minute)…")
    result: DemoResult | None = None
    try:
        demo.start()
        console.print(
            "Metrics from "
            + (
                "a real Prometheus (installed)"
                if demo.stack and demo.stack.source == "prometheus"
                else "the built-in scraper (Prometheus is not installed: "
                "apt-get install prometheus)"
            )
        )
        view: Any = HeadlessView(sys.stdout) if headless else LiveView(console)
        with view:
            result = demo.play(view, duration)
    except KeyboardInterrupt:
        console.print("Interrupted: shutting everything down…")
    finally:
        demo.close()
    if result is None:
        raise typer.Exit(1)
    print_summary(result, console)
    raise typer.Exit(0 if result.healed and result.audit_ok else 1)

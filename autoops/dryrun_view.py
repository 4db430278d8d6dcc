"""Terminal output of ``autoops dryrun``: the synthetic incident, pass by pass, and a summary."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autoops.model import (
    Action,
    Promote,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)
from autoops.policy.loader import load_policy
from autoops.regions.loader import load_catalogue
from autoops.sim.incident import IncidentRun, IncidentScript, Tick, run_incident
from autoops.yamlio import ConfigError


def describe(action: Action) -> str:
    """One short line for an action."""
    if isinstance(action, SetTraffic):
        split = ", ".join(f"{v} {w:.0%}" for v, w in sorted(action.weights.items()))
        mirror = (
            f" (mirror {action.shadow_fraction:.0%} to {action.shadow_version})"
            if (action.shadow_version)
            else ""
        )
        return f"traffic {split}{mirror}"
    if isinstance(action, SetReplicas):
        where = ", ".join(f"{r}={n}" for r, n in sorted(action.replicas.items()) if n)
        return f"replicas {action.total} ({where})"
    if isinstance(action, SetRegionWeights):
        return "regions " + ", ".join(
            f"{r} {w:.0%}" for r, w in sorted(action.weights.items()) if w > 0
        )
    if isinstance(action, SetCascadeThreshold):
        return f"cascade threshold {action.threshold:.2f}"
    if isinstance(action, Rollback):
        return f"ROLLBACK {action.from_version} -> {action.to_version}"
    if isinstance(action, Promote):
        return f"PROMOTE {action.version}"
    return action.kind.value


def _print_tick(console: Console, tick: Tick, verbose: bool, slo_ms: float) -> None:
    acts = tick.decision.mutating
    if not acts and not verbose:
        return
    p99 = "n/a" if tick.p99_ms is None else f"{tick.p99_ms:,.0f} ms"
    if tick.p99_ms is not None and tick.p99_ms > slo_ms:
        p99 = f"[red]{p99}[/]"
    console.print(
        f"[bold]+{tick.time:>4.0f}s[/] {tick.rate:>5.0f} rps  p99 {p99}  replicas {tick.replicas}",
        highlight=False,
    )
    for action in acts:
        console.print(f"        [cyan]{describe(action)}[/]", highlight=False)
    for reason in tick.decision.reasons:
        console.print(f"          why: {reason}", highlight=False, soft_wrap=True)
    for change in tick.decision.guard_changes:
        console.print(
            f"          guard {change.guard}: {change.before} -> {change.after} ({change.reason})",
            highlight=False,
            soft_wrap=True,
        )


def summarise(run: IncidentRun, script: IncidentScript) -> list[tuple[str, str, str, bool]]:
    """(incident, what the controller did, when, healed?) for each incident of the story."""
    rows: list[tuple[str, str, str, bool]] = []
    rollback = run.first(Rollback)
    rows.append(
        (
            f"canary v2 answers wrongly (+{script.canary_at:.0f}s)",
            describe(rollback[1]) if rollback else "no rollback",
            f"+{rollback[0]:.0f}s" if rollback else "-",
            rollback is not None,
        )
    )
    ups = [(t, a) for t, a in run.actions() if isinstance(a, SetReplicas) and t >= script.ramp_at]
    late = [
        t.time
        for t in run.ticks
        if t.time >= script.ramp_at
        and t.p99_ms is not None
        and t.p99_ms > run.policy.slo.latency_p99_ms
    ]
    rows.append(
        (
            f"traffic ramp (+{script.ramp_at:.0f}s)",
            f"scaled out to {ups[-1][1].total if isinstance(ups[-1][1], SetReplicas) else '?'} "
            f"replicas; p99 over the SLO for {len(late) * run.policy.tick_interval_s:.0f}s"
            if ups
            else "no scale-out",
            f"+{ups[0][0]:.0f}s" if ups else "-",
            bool(ups),
        )
    )
    before = next((t for t in run.ticks if t.time >= script.carbon_spike_at), None)
    spiked = max(before.region_weights, key=lambda r: before.region_weights[r]) if before else None
    final = run.ticks[-1].region_weights
    moved = [
        (t, a)
        for t, a in run.actions()
        if isinstance(a, SetRegionWeights) and t >= script.carbon_spike_at
    ]
    rows.append(
        (
            f"carbon spike in {spiked} (+{script.carbon_spike_at:.0f}s)",
            "traffic now " + ", ".join(f"{r} {w:.0%}" for r, w in sorted(final.items()) if w > 0),
            f"+{moved[0][0]:.0f}s" if moved else "-",
            bool(moved) and final.get(spiked or "", 0.0) == 0.0,
        )
    )
    return rows


def run_dryrun(policy_path: Path, regions: list[Path], verbose: bool) -> int:
    """Run the synthetic incident under a policy and print it; return the exit code."""
    console = Console()
    try:
        catalogue = load_catalogue(regions)
        policy = load_policy(policy_path, catalogue)
    except ConfigError as err:
        for issue in err.issues:
            print(issue.format(), file=sys.stderr)
        return 1
    script = IncidentScript()
    console.print(
        f"[bold]AutoOps dry run[/] - policy [bold]{policy.metadata.name}[/] ({policy_path})\n"
        f"A synthetic incident in a small simulated world: canary v2 answers wrongly at "
        f"+{script.canary_at:.0f}s, traffic ramps up at +{script.ramp_at:.0f}s, the serving "
        f"region's grid carbon spikes at +{script.carbon_spike_at:.0f}s.\n"
        f"decide() runs every {policy.tick_interval_s:g}s; nothing touches a real cluster.\n",
        highlight=False,
    )
    slo = policy.slo.latency_p99_ms
    run = run_incident(
        policy, catalogue, script, on_tick=lambda t: _print_tick(console, t, verbose, slo)
    )
    table = Table(title="What the controller did")
    for column in ("incident", "action", "at", "healed"):
        table.add_column(column)
    rows = summarise(run, script)
    for incident, action, at, healed in rows:
        table.add_row(incident, action, at, "[green]yes[/]" if healed else "[red]no[/]")
    console.print()
    console.print(table)
    console.print(
        f"{len(run.ticks)} passes, {len(run.actions())} actions, "
        f"p99 over the SLO ({slo:g} ms) for {run.slo_violation_s():.0f}s in all.",
        highlight=False,
    )
    return 0 if all(row[3] for row in rows) else 1

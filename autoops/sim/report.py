"""Simulation reports: one table (controller vs each baseline) as JSON, and HTML with plots."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoops.policy.schema import Policy
from autoops.sim.api import SimResult, TickRecord
from autoops.sim.engine import FleetResult, JobRun

FLAP_WINDOW_S = 600.0
"""A change of scaling direction within this long of the previous change is a flap."""


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def flaps(ticks: list[TickRecord]) -> int:
    """Scaling direction reversals within ``FLAP_WINDOW_S`` of the previous change."""
    count = 0
    last_direction = 0
    last_change: float | None = None
    previous: int | None = None
    for tick in ticks:
        total = sum(tick.replicas.values())
        if previous is not None and total != previous:
            direction = 1 if total > previous else -1
            if (
                last_direction
                and direction != last_direction
                and last_change is not None
                and tick.time - last_change <= FLAP_WINDOW_S
            ):
                count += 1
            last_direction = direction
            last_change = tick.time
        previous = total
    return count


def recovery_times(ticks: list[TickRecord], slo_ms: float) -> list[float]:
    """Length of each stretch with p99 over the SLO (time to recover per incident), seconds."""
    out: list[float] = []
    start: float | None = None
    for tick in ticks:
        bad = tick.p99_ms is None or tick.p99_ms > slo_ms
        if bad and start is None:
            start = tick.time
        elif not bad and start is not None:
            out.append(tick.time - start)
            start = None
    if start is not None and ticks:
        out.append(ticks[-1].time - start)
    return out


def summary(result: SimResult, policy: Policy) -> dict[str, Any]:
    """The table row of one controller."""
    t = result.totals
    p50s = [x.p50_ms for x in result.ticks if x.p50_ms is not None]
    p99s = [x.p99_ms for x in result.ticks if x.p99_ms is not None]
    recoveries = recovery_times(result.ticks, policy.slo.latency_p99_ms)
    return {
        "slo_violation_minutes": round(t.get("slo_violation_minutes", 0.0), 3),
        "p50_ms": _round(_percentile(p50s, 0.5)),
        "p99_ms": _round(_percentile(p99s, 0.99)),
        "requests": round(t.get("offered", 0.0)),
        "failed_requests": round(t.get("failed", 0.0)),
        "dropped_requests": round(t.get("dropped", 0.0)),
        "replica_hours": round(t.get("replica_hours", 0.0), 3),
        "cost_usd": round(t.get("cost_usd", 0.0), 4),
        "co2_kg": round(t.get("co2_kg", 0.0), 5),
        "co2_g_per_1k_requests": round(t.get("co2_g_per_1k_requests", 0.0), 5),
        "incidents": len(recoveries),
        "median_recovery_s": _round(_percentile(recoveries, 0.5)),
        "actions": int(t.get("actions", 0.0)),
        "flaps": flaps(result.ticks),
        **_job_summary(result),
    }


def job_runs(result: SimResult) -> list[JobRun]:
    """The deferrable jobs a run ran (none for a plain ``SimResult``)."""
    return list(result.jobs) if isinstance(result, FleetResult) else []


def _job_summary(result: SimResult) -> dict[str, Any]:
    """The jobs' columns of the table row, only where the run had jobs."""
    if not job_runs(result):
        return {}
    t = result.totals
    return {
        "job_energy_kwh": round(t.get("job_energy_kwh", 0.0), 4),
        "job_co2_kg": round(t.get("job_co2_kg", 0.0), 5),
        "job_cost_usd": round(t.get("job_cost_usd", 0.0), 4),
        "jobs_deadline_missed": int(t.get("jobs_deadline_missed", 0.0)),
    }


def job_lines(result: SimResult) -> list[dict[str, Any]]:
    """One line per deferrable job: when and where it ran, its footprint, deadline met."""
    return [
        {
            "job": run.name,
            "release_s": round(run.release_s, 3),
            "deadline_s": round(run.deadline_s, 3),
            "start_s": round(run.start_s, 3),
            "end_s": round(run.end_s, 3),
            "region": run.region,
            "energy_kwh": round(run.energy_kwh, 4),
            "co2_kg": round(run.co2_g / 1000, 5),
            "cost_usd": round(run.cost_usd, 4),
            "deadline_met": run.deadline_met,
            "reason": run.reason,
        }
        for run in job_runs(result)
    ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report_json(
    scenario: str, policy: Policy, results: Mapping[str, SimResult], config: Mapping[str, Any]
) -> dict[str, Any]:
    """The report as data: scenario, config and one summary per controller."""
    return {
        "scenario": scenario,
        "policy": policy.metadata.name,
        "slo_p99_ms": policy.slo.latency_p99_ms,
        "config": dict(config),
        "controllers": {name: summary(r, policy) for name, r in results.items()},
        **_jobs_json(results),
    }


def _jobs_json(results: Mapping[str, SimResult]) -> dict[str, Any]:
    """``jobs``: per controller, one line per deferrable job (absent when there are none)."""
    if not any(job_runs(r) for r in results.values()):
        return {}
    return {"jobs": {name: job_lines(r) for name, r in results.items()}}


def _jobs_html(data: Mapping[str, Any]) -> str:
    """A table of every controller's deferrable jobs (empty when there are none)."""
    jobs = data.get("jobs")
    if not jobs:
        return ""
    columns = ["job", "region", "start_s", "end_s", "deadline_s", "deadline_met", "energy_kwh"]
    columns += ["co2_kg", "cost_usd", "reason"]
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        "<tr><th>"
        + html.escape(name)
        + "</th>"
        + "".join(f"<td>{html.escape(str(line[c]))}</td>" for c in columns)
        + "</tr>"
        for name, lines in jobs.items()
        for line in lines
    )
    note = (
        "<p>Deferrable jobs: baselines run each job at its release; the controller picks the "
        "greenest slot before the deadline by a forecast from past signals; the oracle picks "
        "the slot of least true carbon. Their energy, carbon and cost are in the totals.</p>"
    )
    return (
        f"<h2>Deferrable jobs</h2>{note}<table><tr><th>controller</th>{header}</tr>{rows}</table>"
    )


def _plots(results: Mapping[str, SimResult], policy: Policy) -> list[tuple[str, str]]:
    """(title, base64 PNG) for each plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def panel(title: str, draw: Any) -> tuple[str, str]:
        fig, ax = plt.subplots(figsize=(9, 2.6))
        draw(ax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hours")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        return title, base64.b64encode(buffer.getvalue()).decode()

    def series(name: str, value: Any) -> tuple[list[float], list[float]]:
        ticks = results[name].ticks
        return [t.time / 3600 for t in ticks], [value(t) for t in ticks]

    names = list(results)
    first = names[0]
    plots = [
        panel("offered traffic (rps)", lambda ax: ax.plot(*series(first, lambda t: t.offered_rps))),
    ]

    def each(ax: Any, value: Any) -> None:
        for name in names:
            ax.plot(*series(name, value), label=name, linewidth=1)

    plots.append(panel("replicas", lambda ax: each(ax, lambda t: sum(t.replicas.values()))))

    def p99(ax: Any) -> None:
        each(ax, lambda t: t.p99_ms if t.p99_ms is not None else float("nan"))
        ax.axhline(policy.slo.latency_p99_ms, color="red", linestyle="--", label="SLO")
        ax.set_yscale("log")

    plots.append(panel("p99 latency (ms) against the SLO", p99))
    versions = sorted({v for t in results[first].ticks for v in t.traffic})
    regions = sorted({r for t in results[first].ticks for r in t.region_weights})

    def stack(ax: Any, keys: list[str], value: Any) -> None:
        xs = [t.time / 3600 for t in results[first].ticks]
        ys = [[value(t).get(k, 0.0) for t in results[first].ticks] for k in keys]
        if keys:
            ax.stackplot(xs, ys, labels=keys)

    plots.append(
        panel(f"version split ({first})", lambda ax: stack(ax, versions, lambda t: t.traffic))
    )
    plots.append(
        panel(
            f"region weights ({first})", lambda ax: stack(ax, regions, lambda t: t.region_weights)
        )
    )

    def carbon(ax: Any) -> None:
        for region in regions:
            ax.plot(
                *series(first, lambda t, r=region: t.carbon_g_per_kwh.get(r) or float("nan")),
                label=region,
                linewidth=1,
            )

    plots.append(panel("grid carbon intensity (gCO2e/kWh)", carbon))
    plots.append(panel("cost ($/h)", lambda ax: each(ax, lambda t: t.cost_usd_per_hour)))
    return plots


def write_report(
    out_dir: Path,
    scenario: str,
    policy: Policy,
    results: Mapping[str, SimResult],
    config: Mapping[str, Any],
) -> tuple[Path, Path]:
    """Write report.json and report.html (with plots) into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report_json(scenario, policy, results, config)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    columns = list(next(iter(data["controllers"].values())).keys()) if results else []
    rows = "".join(
        "<tr><th>"
        + html.escape(name)
        + "</th>"
        + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in columns)
        + "</tr>"
        for name, row in data["controllers"].items()
    )
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    images = "".join(
        f"<h3>{html.escape(title)}</h3><img src='data:image/png;base64,{png}'/>"
        for title, png in _plots(results, policy)
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>AutoOps simulation: {html.escape(scenario)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(scenario)}</h1><p>policy {html.escape(policy.metadata.name)}, "
        f"p99 SLO {policy.slo.latency_p99_ms:g} ms</p>"
        f"<table><tr><th>controller</th>{header}</tr>{rows}</table>{_jobs_html(data)}{images}"
        "</body></html>"
    )
    html_path = out_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return json_path, html_path

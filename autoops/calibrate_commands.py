"""``autoops calibrate``: fit the simulator to a live recording and compare its prediction."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoops.policy.loader import load_policy
from autoops.regions.loader import load_catalogue
from autoops.sim.calibrate import (
    DEFAULT_SLOTS,
    MIN_RPS,
    Calibration,
    CalibrationError,
    Comparison,
    Estimate,
    P99Summary,
    RollbackTiming,
    compare,
    fit,
)
from autoops.sim.replay import RecordingError, read_recording
from autoops.yamlio import ConfigError


def _num(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}{unit}"


def _estimate_row(name: str, est: Estimate, unit: str, scale: float) -> tuple[str, ...]:
    spread = "" if est.spread is None else f" (IQR {_num(est.spread, unit, scale)})"
    return (name, _num(est.value, unit, scale) + spread, str(est.points), est.method)


def print_calibration(calibration: Calibration, console: Console) -> None:
    """The fitted parameters, what each rests on, and how well the p99 model fits."""
    table = Table(title="Fitted simulator parameters", title_justify="left")
    for column in ("parameter", "value", "points", "method"):
        table.add_column(column, justify="right" if column == "points" else "left")
    table.add_row(*_estimate_row("service time", calibration.service_s, " ms", 1000))
    table.add_row(
        *_estimate_row("service time (p50 check)", calibration.service_s_p50, " ms", 1000)
    )
    table.add_row(*_estimate_row("cold start", calibration.cold_start_s, " s", 1))
    table.add_row("replica slots", str(calibration.replica_slots), "-", "given")
    console.print(table)
    p99 = calibration.p99_fit()
    console.print(
        f"{calibration.passes} passes ({calibration.outage_passes} in a metrics outage), "
        f"{calibration.censored_scale_ups} scale-up(s) not seen through. Queueing-model p99 vs "
        f"recorded over {p99['points']} points: median error {_num(p99['median_abs'], '%', 100)}, "
        f"worst {_num(p99['worst_abs'], '%', 100)}, bias {_num(p99['bias'], '%', 100)}."
    )


def _rollback(timing: RollbackTiming | None) -> str:
    if timing is None:
        return "no rollback"
    seconds = "-" if timing.seconds is None else f"{timing.seconds:.0f} s"
    return (
        f"{seconds} ({escape(timing.from_version)} -> {escape(timing.to_version)} at "
        f"{timing.rollback_at:.0f} s, failing from {_num(timing.failing_at, ' s', digits=0)})"
    )


def _p99(summary: P99Summary, which: str) -> str:
    value = summary.median_ms if which == "median" else summary.worst_ms
    return _num(value, " ms")


def print_comparison(comparison: Comparison, console: Console) -> None:
    """Prediction beside recording: p99 and time to rollback, then what was inferred."""
    table = Table(
        title=f"Simulator vs recording ({comparison.duration_s:.0f} s)", title_justify="left"
    )
    table.add_column("measure")
    table.add_column("recorded", overflow="fold")
    table.add_column("simulated", overflow="fold")
    rec, sim = comparison.recorded_p99, comparison.predicted_p99
    table.add_row("p99 median", _p99(rec, "median"), _p99(sim, "median"))
    table.add_row("p99 worst", _p99(rec, "worst"), _p99(sim, "worst"))
    table.add_row(
        "time to rollback",
        _rollback(comparison.recorded_rollback),
        _rollback(comparison.predicted_rollback),
    )
    console.print(table)
    console.print(
        f"Simulated with service time {comparison.service_s * 1000:.1f} ms, cold start "
        f"{comparison.cold_start_s:.1f} s, {comparison.replica_slots} slots per replica; "
        f"{len(comparison.faults)} fault interval(s) inferred from the canary's metrics, "
        f"{comparison.outages} metrics outage(s) replayed."
    )
    for note in comparison.notes:
        console.print(f"note: {escape(note)}")


def calibrate_command(
    recording: Annotated[
        Path, typer.Argument(help="A recording made by `autoops run --record FILE`.")
    ],
    policy: Annotated[
        Path, typer.Option("--policy", "-p", help="The policy the simulated controller runs.")
    ],
    slots: Annotated[
        int, typer.Option("--slots", min=1, help="Requests one replica serves at once.")
    ] = DEFAULT_SLOTS,
    min_rps: Annotated[
        float,
        typer.Option("--min-rps", min=0.0, help="Passes with less traffic are not used to fit."),
    ] = MIN_RPS,
    regions: Annotated[
        list[Path] | None,
        typer.Option(
            "--regions", help="Extra region catalogue file (repeatable).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Fit the simulator's service time and cold start to a live recording, then compare the
    simulator's p99 and time to rollback with the recorded run."""
    try:
        catalogue = load_catalogue(regions or [])
        loaded = load_policy(policy, catalogue)
    except ConfigError as err:
        print("; ".join(issue.format() for issue in err.issues), file=sys.stderr)
        raise typer.Exit(1) from None
    try:
        passes = read_recording(recording)
        calibration = fit(passes, slots, min_rps)
        comparison = compare(passes, calibration, loaded, catalogue)
    except RecordingError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except CalibrationError as exc:
        typer.echo(f"{recording}: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        data = {"calibration": calibration.to_json(), "comparison": comparison.to_json()}
        typer.echo(json.dumps(data, indent=2, allow_nan=True))
        return
    console = Console()
    print_calibration(calibration, console)
    print_comparison(comparison, console)

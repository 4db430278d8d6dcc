"""``autoops detect drift`` and ``autoops bench drift``: thin typer commands over the drift test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["bench_drift_command", "drift_command"]


def drift_command(
    reference: Annotated[
        Path, typer.Option("--reference", help="CSV of reference samples (header row first).")
    ],
    current: Annotated[
        Path, typer.Option("--current", help="CSV of current samples, same columns.")
    ],
    alpha: Annotated[
        float,
        typer.Option("--alpha", min=0.0, max=1.0, help="Overall false-alarm rate (0 < alpha < 1)."),
    ] = 0.01,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the JSON report to this file.")
    ] = None,
) -> None:
    """Test whether current samples drifted from the reference; print the verdict as JSON.

    Exits 0 whether or not there is drift, 1 with one line on stderr when an input is unusable.
    """
    from autoops.drift_io import DriftInputError, detect_drift_csv

    if not 0.0 < alpha < 1.0:
        typer.echo(f"--alpha must be in (0, 1), got {alpha}", err=True)
        raise typer.Exit(1)
    try:
        report = detect_drift_csv(reference, current, alpha=alpha, output=output)
    except DriftInputError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"{output}: cannot write: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(report.to_dict(), indent=2))


def bench_drift_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the JSON result to this file."),
    ] = None,
    runs: Annotated[
        int, typer.Option(min=1, help="Seeded pairs per shifted cell (x10 for no-shift cells).")
    ] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the whole run.")] = 0,
) -> None:
    """False alarms and power of the drift test beside Alibi Detect's and Evidently's defaults."""
    from autoops.bench.common import write_result
    from autoops.bench.drift import run_drift_bench

    def progress(cell: str) -> None:
        typer.echo(f"done {cell}", err=True)

    write_result(run_drift_bench(runs=runs, seed=seed, progress=progress), output)

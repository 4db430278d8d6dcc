"""``autoops detect ...`` commands, and ``autoops bench nab`` (registered by the CLI).

Each detect command is a function on ``detect_app``: add new ones (drift, canary) below the
existing ones with ``@detect_app.command("name")``. Bad input exits 1 with a one-line message
on stderr, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from autoops.detect_io import DetectInputError, detect_anomalies_csv

__all__ = ["NAB_PROFILES", "bench_nab_command", "default_data_dir", "detect_app"]

REPO_ROOT = Path(__file__).resolve().parent.parent
NAB_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

detect_app = typer.Typer(
    name="detect",
    help="Detectors on files: anomalies in a metric series, drift between samples, canary judge.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    """Print a one-line error on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@detect_app.command("anomalies")
def anomalies(
    input_csv: Annotated[
        Path, typer.Option("--input", "-i", help="CSV with a timestamp and a value column.")
    ],
    output_csv: Annotated[
        Path,
        typer.Option("--output", "-o", help="CSV to write: timestamp,value,anomaly_score,alarm."),
    ],
    timestamp_column: Annotated[
        str, typer.Option("--timestamp-column", help="Name of the timestamp column.")
    ] = "timestamp",
    value_column: Annotated[
        str, typer.Option("--value-column", help="Name of the value column.")
    ] = "value",
) -> None:
    """Score every row with the default detector; alarm is 1 where it fires (frozen threshold)."""
    try:
        rows = detect_anomalies_csv(input_csv, output_csv, timestamp_column, value_column)
    except DetectInputError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{rows} rows scored -> {output_csv}", err=True)


def default_data_dir() -> Path:
    """The shared data folder: AUTOOPS_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("AUTOOPS_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def bench_nab_command(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Data folder holding nab/data and nab/labels (default: AUTOOPS_DATA_DIR, "
            "else ../shared/data beside the repository).",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Windows file (default: nab/labels/combined_windows.json in the data folder).",
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help="NAB profile to score (repeatable): standard, reward_low_FP_rate, "
            "reward_low_FN_rate (default: all three).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the JSON result here.")
    ] = None,
) -> None:
    """Score the default anomaly detector on the NAB corpus, overall and per folder."""
    from autoops.bench.common import write_result
    from autoops.bench.nab import run_nab
    from autoops.progress import passes_progress

    profiles = list(profile) if profile else list(NAB_PROFILES)
    unknown = [p for p in profiles if p not in NAB_PROFILES]
    if unknown:
        raise _fail(f"unknown profile {', '.join(unknown)} (choose from {', '.join(NAB_PROFILES)})")
    root = data_dir if data_dir is not None else default_data_dir()
    try:
        with passes_progress("NAB series") as advance:
            result = run_nab(root, labels, profiles, lambda done, total, _: advance(done, total))
    except (FileNotFoundError, DetectInputError, ValueError) as exc:
        raise _fail(str(exc)) from None
    write_result(result, output)

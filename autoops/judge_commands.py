"""``autoops detect canary`` and ``autoops bench canary``: the canary judge from the shell.

Input handling, documented once here (``detect canary``):

- Each CSV needs a header row naming its columns; ``--metric`` must name a column in both.
- A file that is missing, unreadable, not UTF-8, or without a header row is an error (exit 1).
- A cell that is empty, ``NaN`` or infinite is a missing value: dropped and counted
  (``baseline_dropped`` / ``canary_dropped`` in the statistics). Any other non-numeric cell is an
  error naming the file, the column and the line.
- Too few values left (fewer than ``--min-samples`` on either side, zero rows included) is not an
  error: the verdict is NODATA, because missing data is never a pass.
- With ``--test proportion`` the column holds one outcome per row (0 or 1: an error, a correct
  answer); any other value is an error naming the line.

Every verdict (PASS, FAIL, INCONCLUSIVE, NODATA) exits 0: the command is a report. Bad input exits
1 with one line on stderr.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from autoops.core.detect.judge import (
    Counts,
    Direction,
    MetricConfig,
    MetricResult,
    classify_proportions,
    classify_samples,
    judge,
)
from autoops.tabular import parse_number

__all__ = ["CanaryInputError", "bench_canary_command", "canary_command", "read_column"]


class CanaryInputError(ValueError):
    """A CSV the canary judge cannot read: the message names the file and the column."""


def read_column(path: Path, column: str) -> tuple[list[float], int]:
    """Read one numeric column of a CSV: the finite values and how many were missing."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CanaryInputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise CanaryInputError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise CanaryInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise CanaryInputError(f"{path}: empty file (no header row)")
    names = [h.strip() for h in header]
    if column not in names:
        shown = ", ".join(n for n in names if n) or "none"
        raise CanaryInputError(f"{path}: no column {column!r} (columns: {shown})")
    index = names.index(column)
    values: list[float] = []
    missing = 0
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        cell = row[index].strip() if index < len(row) else ""
        try:
            value = parse_number(cell)
        except ValueError:
            raise CanaryInputError(
                f"{path}:{line}: column {column!r}: {cell!r} is not a number"
            ) from None
        if value is None:
            missing += 1
            continue
        values.append(value)
    return values, missing


def _outcomes(path: Path, column: str, values: list[float]) -> Counts:
    """Counts from a column of 0/1 outcomes."""
    bad = next((v for v in values if v not in (0.0, 1.0)), None)
    if bad is not None:
        raise CanaryInputError(
            f"{path}: column {column!r}: {bad!r} is not 0 or 1 (--test proportion)"
        )
    return Counts(int(sum(values)), len(values))


def _plain(value: float) -> float | str | None:
    """A JSON-safe number: infinities as strings, NaN as null."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _report(result: MetricResult, verdict: str, baseline: Path, canary: Path) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "classification": result.classification.value,
        "metric": result.name,
        "test": result.test,
        "direction": result.direction.value,
        "reason": result.reason,
        "baseline": str(baseline),
        "canary": str(canary),
        "statistics": {k: _plain(v) for k, v in result.statistics.items()},
    }


def canary_command(
    baseline: Annotated[
        Path, typer.Option("--baseline", help="CSV of the baseline's samples.", show_default=False)
    ],
    canary: Annotated[
        Path, typer.Option("--canary", help="CSV of the canary's samples.", show_default=False)
    ],
    metric: Annotated[
        str,
        typer.Option("--metric", help="Column to compare (in both files).", show_default=False),
    ],
    direction: Annotated[
        str, typer.Option("--direction", help="Regression direction: increase|decrease|either.")
    ] = "either",
    confidence: Annotated[
        float, typer.Option("--confidence", help="Confidence level of the test.")
    ] = 0.99,
    test: Annotated[
        str,
        typer.Option(
            "--test", help="mann-whitney (samples) or proportion (one 0/1 outcome per row)."
        ),
    ] = "mann-whitney",
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Kayenta margin: CI must clear tol x |shift|.")
    ] = 0.25,
    allowed_increase: Annotated[
        float, typer.Option("--allowed-increase", help="Largest canary/baseline ratio allowed.")
    ] = 1.0,
    allowed_decrease: Annotated[
        float, typer.Option("--allowed-decrease", help="Smallest canary/baseline ratio allowed.")
    ] = 1.0,
    min_samples: Annotated[
        int, typer.Option("--min-samples", help="Fewer values on a side gives NODATA.")
    ] = 5,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of text.")
    ] = False,
) -> None:
    """Judge a canary against its baseline on one metric and print the verdict."""

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(1)

    try:
        way = Direction(direction.strip().lower())
    except ValueError:
        raise fail(f"--direction must be increase, decrease or either, not {direction!r}") from None
    if test not in ("mann-whitney", "proportion"):
        raise fail(f"--test must be mann-whitney or proportion, not {test!r}")
    if not 0.0 < confidence < 1.0:
        raise fail(f"--confidence must be between 0 and 1, not {confidence}")
    try:
        config = MetricConfig(
            metric,
            way,
            tolerance=tolerance,
            allowed_increase=allowed_increase,
            allowed_decrease=allowed_decrease,
            min_samples=min_samples,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        base_values, base_missing = read_column(baseline, metric)
        can_values, can_missing = read_column(canary, metric)
        if test == "proportion":
            result = classify_proportions(
                config,
                _outcomes(baseline, metric, base_values),
                _outcomes(canary, metric, can_values),
                confidence,
            )
        else:
            result = classify_samples(config, base_values, can_values, confidence)
    except CanaryInputError as exc:
        raise fail(str(exc)) from None
    stats_ = dict(result.statistics)
    stats_["baseline_dropped"] = float(base_missing)
    stats_["canary_dropped"] = float(can_missing)
    result = MetricResult(
        result.name,
        result.classification,
        result.test,
        result.direction,
        result.critical,
        result.reason,
        stats_,
    )
    verdict = judge([result]).verdict.value.upper()
    report = _report(result, verdict, baseline, canary)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{verdict}: {metric} is {result.classification.value} ({result.test})")
    typer.echo(f"  {result.reason}")
    for key, value in report["statistics"].items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        typer.echo(f"  {key}: {shown}")


def bench_canary_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the JSON result to this file."),
    ] = None,
    rollouts: Annotated[
        int, typer.Option("--rollouts", min=1, help="Seeded rollouts per scenario.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the whole run.")] = 0,
) -> None:
    """Count A/A false rollbacks and time to detect bad canaries, beside a Flagger-style check."""
    from autoops.bench.canary import run_canary_bench
    from autoops.bench.common import write_result
    from autoops.progress import passes_progress

    with passes_progress("canary rollouts") as advance:
        result = run_canary_bench(rollouts, seed, advance)
    write_result(result, output)

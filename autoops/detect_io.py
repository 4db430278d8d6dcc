"""CSV in and out for ``autoops detect anomalies``: the I/O shell around the pure detectors.

Input handling, documented once:

- the file must have a header row naming ``timestamp_column`` and ``value_column``;
- a value that is empty, ``nan``, ``na``, ``null``, ``none`` or infinite is a missing point
  (passed to the detector as ``None``, scored 0, never an alarm); any other non-numeric value is
  an error naming the file, column and line;
- timestamps are ISO 8601 (``2014-04-10 07:15:00``) or numbers (epoch seconds) and must never
  go backwards: an unsorted file is an error naming both lines, because a streaming detector's
  scores depend on the order and silently re-sorting would hide that; a duplicate timestamp (a
  repeated scrape, as in some NAB series) is kept as its own row, in file order;
- an empty file, or one with a header and no rows, is an error.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from autoops.core.detect.anomaly import DefaultDetector
from autoops.tabular import parse_number

__all__ = ["DetectInputError", "detect_anomalies_csv", "parse_timestamp", "read_series_csv"]


class DetectInputError(Exception):
    """Bad detector input: the message is one line naming the file, column and line."""


def parse_timestamp(text: str) -> datetime | float:
    """Parse an ISO 8601 timestamp or a number of epoch seconds; raise ValueError otherwise."""
    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        pass
    return datetime.fromisoformat(stripped)


def read_series_csv(
    path: Path, timestamp_column: str = "timestamp", value_column: str = "value"
) -> tuple[list[str], list[float]]:
    """Read one series: timestamps as written, values as floats (NaN where missing)."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DetectInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DetectInputError(f"{path}: empty file (no header row)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DetectInputError(f"{path}: not a readable CSV file: {exc}") from None
        columns = [name.strip() for name in header]
        indices: list[int] = []
        for column in (timestamp_column, value_column):
            if column not in columns:
                found = ", ".join(columns) or "none"
                raise DetectInputError(
                    f"{path}: missing column {column!r} (columns found: {found})"
                )
            indices.append(columns.index(column))
        ts_index, value_index = indices
        timestamps: list[str] = []
        values: list[float] = []
        previous: tuple[datetime | float, int] | None = None
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) <= max(ts_index, value_index):
                    raise DetectInputError(
                        f"{path}: line {line}: {len(row)} fields, expected {len(columns)}"
                    )
                raw_ts = row[ts_index]
                try:
                    stamp = parse_timestamp(raw_ts)
                except ValueError:
                    raise DetectInputError(
                        f"{path}: column {timestamp_column!r}, line {line}: "
                        f"not a timestamp: {raw_ts.strip()!r}"
                    ) from None
                if previous is not None:
                    _check_order(path, timestamp_column, previous, stamp, line)
                previous = (stamp, line)
                raw_value = row[value_index]
                try:
                    value = parse_number(raw_value)
                except ValueError:
                    raise DetectInputError(
                        f"{path}: column {value_column!r}, line {line}: "
                        f"not a number: {raw_value.strip()!r}"
                    ) from None
                timestamps.append(raw_ts.strip())
                values.append(math.nan if value is None else value)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DetectInputError(f"{path}: not a readable CSV file: {exc}") from None
    if not values:
        raise DetectInputError(f"{path}: no data rows after the header")
    return timestamps, values


def _check_order(
    path: Path,
    column: str,
    previous: tuple[datetime | float, int],
    stamp: datetime | float,
    line: int,
) -> None:
    """Raise when ``stamp`` comes before the previous timestamp (equal ones are kept)."""
    before, before_line = previous
    try:
        ordered = before <= stamp  # type: ignore[operator]
    except TypeError:
        raise DetectInputError(
            f"{path}: column {column!r}, line {line}: timestamp format differs from line "
            f"{before_line}"
        ) from None
    if not ordered:
        raise DetectInputError(
            f"{path}: column {column!r}, line {line}: timestamp earlier than line "
            f"{before_line}; timestamps must be sorted (increasing)"
        )


def detect_anomalies_csv(
    input_path: Path,
    output_path: Path,
    timestamp_column: str = "timestamp",
    value_column: str = "value",
    detector_factory: Callable[[], DefaultDetector] = DefaultDetector,
) -> int:
    """Score a series with the default detector; write timestamp,value,anomaly_score,alarm."""
    timestamps, values = read_series_csv(input_path, timestamp_column, value_column)
    detector = detector_factory()
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        handle = output_path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise DetectInputError(f"{output_path}: cannot write: {exc.strerror or exc}") from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value", "anomaly_score", "alarm"])
        for stamp, value in zip(timestamps, values, strict=True):
            missing = math.isnan(value)
            detector.update(None if missing else value)
            writer.writerow(
                [
                    stamp,
                    "" if missing else repr(value),
                    f"{detector.score:.6f}",
                    int(detector.alarm),
                ]
            )
    return len(values)

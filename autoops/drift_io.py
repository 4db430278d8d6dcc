"""Read drift samples from CSV files and run the drift test on them (the I/O side of drift).

CSV rules, documented once here:

- The first row is the header; every other row is one sample. A file with no header or no data
  rows is an error naming the file.
- Empty cells and ``nan`` / ``NaN`` / ``NA`` / ``null`` / ``None`` are missing values; rows with a
  missing value are dropped by the test and counted (see :mod:`autoops.core.detect.drift`). A
  column with no value at all is an error naming it.
- A column whose non-missing cells all parse as numbers is numeric. A column that is non-numeric
  in both files is treated as categorical (chi-squared test). A column numeric in one file and
  not in the other is an error naming the column and the file where it is not numeric.
- Reference and current must have the same column names (any order); the error names the
  columns missing from each file.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from autoops.core.detect.drift import DriftDataError, DriftReport, drift_test
from autoops.tabular import MISSING_TOKENS, is_missing

__all__ = ["MISSING_TOKENS", "DriftInputError", "Table", "detect_drift_csv", "read_table_csv"]


Table = tuple[list[str], dict[str, list[str]]]


class DriftInputError(ValueError):
    """A drift input file is unusable; the message is one line naming the file and column."""


def read_table_csv(path: Path) -> Table:
    """Read a CSV with a header row into (column names, raw cell texts per column)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DriftInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DriftInputError(f"{path}: cannot read: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DriftInputError(f"{path}: empty file (no header, no rows)")
    header = [h.strip() for h in rows[0]]
    if any(not h for h in header):
        raise DriftInputError(f"{path}: header has an empty column name")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise DriftInputError(f"{path}: duplicate columns {duplicates}")
    body = rows[1:]
    if not body:
        raise DriftInputError(f"{path}: no data rows under the header")
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DriftInputError(
                f"{path}: line {number} has {len(row)} cells, the header has {len(header)}"
            )
    columns = {name: [row[i].strip() for row in body] for i, name in enumerate(header)}
    return header, columns


def _first_non_number(cells: list[str]) -> str | None:
    """The first non-missing cell that is not a finite-or-infinite number, or None."""
    for cell in cells:
        if is_missing(cell):
            continue
        try:
            float(cell)
        except ValueError:
            return cell
    return None


def _as_floats(cells: list[str]) -> list[float]:
    """Numeric cells as floats, missing ones as NaN."""
    return [math.nan if is_missing(c) else float(c) for c in cells]


def _as_labels(cells: list[str]) -> list[str | None]:
    """Categorical cells as labels, missing ones as None."""
    return [None if is_missing(c) else c for c in cells]


def detect_drift_csv(
    reference: Path,
    current: Path,
    alpha: float = 0.01,
    output: Path | None = None,
    *,
    seed: int = 0,
) -> DriftReport:
    """Run the drift test on two CSV files; write the JSON report to ``output`` if given."""
    ref_names, ref_cols = read_table_csv(reference)
    cur_names, cur_cols = read_table_csv(current)
    only_ref = [n for n in ref_names if n not in cur_cols]
    only_cur = [n for n in cur_names if n not in ref_cols]
    if only_ref or only_cur:
        parts = []
        if only_ref:
            parts.append(f"columns {only_ref} are in {reference} but not in {current}")
        if only_cur:
            parts.append(f"columns {only_cur} are in {current} but not in {reference}")
        raise DriftInputError("; ".join(parts))
    categorical: set[str] = set()
    ref_data: dict[str, list[float] | list[str | None]] = {}
    cur_data: dict[str, list[float] | list[str | None]] = {}
    for name in ref_names:
        for path, cols in ((reference, ref_cols), (current, cur_cols)):
            if all(is_missing(cell) for cell in cols[name]):
                raise DriftInputError(f"{path}: column {name!r} has no values (all missing)")
        bad_ref = _first_non_number(ref_cols[name])
        bad_cur = _first_non_number(cur_cols[name])
        if (bad_ref is None) != (bad_cur is None):
            where, value = (reference, bad_ref) if bad_ref is not None else (current, bad_cur)
            raise DriftInputError(
                f"{where}: column {name!r} is not numeric (value {value!r}) but is numeric "
                "in the other file"
            )
        if bad_ref is None:
            ref_data[name] = _as_floats(ref_cols[name])
            cur_data[name] = _as_floats(cur_cols[name])
        else:
            categorical.add(name)
            ref_data[name] = _as_labels(ref_cols[name])
            cur_data[name] = _as_labels(cur_cols[name])
    try:
        report = drift_test(ref_data, cur_data, alpha=alpha, categorical=categorical, seed=seed)
    except DriftDataError as exc:
        message = str(exc)
        for side, path in (("reference", reference), ("current", current)):
            if message.startswith(f"{side}:"):
                message = f"{path}:{message.removeprefix(side + ':')}"
        raise DriftInputError(message) from None
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report

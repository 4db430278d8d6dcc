"""The one rule for reading a CSV cell as a number, shared by every command that reads CSVs."""

from __future__ import annotations

import math

MISSING_TOKENS = frozenset({"", "nan", "+nan", "-nan", "na", "n/a", "null", "none"})
"""Cell texts (stripped, case-insensitive) that mean "no value"."""


def is_missing(cell: str) -> bool:
    """True for an empty cell or a missing-value token."""
    return cell.strip().lower() in MISSING_TOKENS


def parse_number(cell: str) -> float | None:
    """A finite number, or None for a missing or non-finite cell; ValueError for anything else."""
    if is_missing(cell):
        return None
    value = float(cell.strip())
    return value if math.isfinite(value) else None

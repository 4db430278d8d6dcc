"""The NAB scoring method (pure functions): windows, probation, sigmoid weights, normalisation.

Follows the semantics of numenta/NAB v1.1 (``nab/sweeper.py`` and ``nab/runner.py``):

- rows before the probationary length ``min(floor(0.15 * n), 750)`` are ignored;
- a detection at row ``i`` inside a window ``[s, e]`` (width ``W = e - s + 1``) is worth
  ``tp * sigmoid_scaled(-(e - i + 1) / W) / sigmoid_scaled(-1)``, so the first row of a window
  is worth exactly ``tp`` (NAB v1.1 divides by the maximum, ``2·sigmoid(5) - 1 = 0.98661``;
  NAB v1.0's ``scorer.py`` did not, which left a 1.3% shortfall on a perfect detector); only
  the best (earliest) detection of a window counts;
- a window with no detection costs ``fn``; a window that lies wholly in the probationary
  period is not scored at all;
- a detection outside every window costs ``fp * sigmoid_scaled(d)``, where ``d`` is its
  distance after the end of the previous window divided by that window's ``W - 1`` (before
  any window: the full ``-fp``);
- the corpus is normalised once: ``100 · (raw - null) / (perfect - null)`` with raw and null
  summed over every series, null the never-firing detector and perfect ``tp`` per window.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "PROFILES",
    "CostProfile",
    "SeriesScore",
    "normalized_score",
    "probationary_length",
    "scaled_sigmoid",
    "score_series",
    "window_indices",
]


@dataclass(frozen=True, slots=True)
class CostProfile:
    """The weights of one NAB application profile."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostProfile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostProfile(tp=1.0, fp=0.11, fn=2.0),
}

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750  # 0.15 * 5000, as in NAB


@dataclass(frozen=True, slots=True)
class SeriesScore:
    """The raw NAB score of one series under one profile, with its counts."""

    raw: float
    null: float
    perfect: float
    windows: int
    detected_windows: int
    false_positives: int


def scaled_sigmoid(relative_position: float) -> float:
    """NAB's ``2·sigmoid(-5·x) - 1``: ~1 at the left edge of a window (x = -1), 0 at its end."""
    if relative_position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * relative_position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probationary_length(rows: int) -> int:
    """Rows at the start of a series whose detections NAB ignores: 15%, at most 750."""
    return min(math.floor(PROBATION_FRACTION * rows), PROBATION_MAX_ROWS)


def window_indices(
    timestamps: Sequence[datetime], windows: Iterable[tuple[datetime, datetime]]
) -> list[tuple[int, int]]:
    """Map windows given as timestamps to inclusive row ranges (timestamps sorted, ties kept)."""
    out: list[tuple[int, int]] = []
    for start, end in windows:
        lo = bisect.bisect_left(timestamps, start)
        hi = bisect.bisect_left(timestamps, end)  # NAB: the first row stamped ``end``
        if hi >= len(timestamps) or timestamps[hi] != end:
            hi -= 1
        if lo <= hi:
            out.append((lo, hi))
    return out


def score_series(
    detections: Iterable[int], rows: int, windows: Sequence[tuple[int, int]], profile: CostProfile
) -> SeriesScore:
    """Score the rows where a detector fired, against windows given as inclusive row ranges."""
    probation = probationary_length(rows)
    ordered = sorted((s, e) for s, e in windows)
    starts = [s for s, _ in ordered]
    ends = [e for _, e in ordered]
    scored = [e >= probation for _, e in ordered]  # a window wholly in probation is not scored
    best: list[float | None] = [None] * len(ordered)
    fp_total = 0.0
    fp_count = 0
    for i in sorted(set(detections)):
        if i < probation or i >= rows:
            continue
        k = bisect.bisect_right(starts, i) - 1  # last window starting at or before i
        if k >= 0 and i <= ends[k]:
            width = ends[k] - starts[k] + 1
            gain = scaled_sigmoid(-(ends[k] - i + 1) / width) * profile.tp / _MAX_TP
            current = best[k]
            best[k] = gain if current is None else max(current, gain)
            continue
        fp_count += 1
        if k < 0:
            position = 3.0  # before any window: the full FP cost
        else:
            prev_width = ends[k] - starts[k] + 1
            position = (i - ends[k]) / (prev_width - 1) if prev_width > 1 else 3.0
        fp_total += scaled_sigmoid(position) * profile.fp
    tp_total = 0.0
    missed = 0
    detected = 0
    for k, window_best in enumerate(best):
        if not scored[k]:
            continue
        if window_best is None:
            missed += 1
        else:
            detected += 1
            tp_total += window_best
    n_scored = sum(scored)
    return SeriesScore(
        raw=tp_total + fp_total - missed * profile.fn,
        null=-n_scored * profile.fn,
        perfect=len(ordered) * profile.tp,
        windows=len(ordered),
        detected_windows=detected,
        false_positives=fp_count,
    )


def normalized_score(scores: Iterable[SeriesScore]) -> float:
    """NAB's corpus score ``100·(raw - null)/(perfect - null)``, sums taken over all series."""
    raw = null = perfect = 0.0
    for s in scores:
        raw += s.raw
        null += s.null
        perfect += s.perfect
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)

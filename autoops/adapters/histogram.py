"""Quantiles from cumulative histogram buckets, interpolated as Prometheus's histogram_quantile."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate

__all__ = ["bucket_quantile", "bucket_quantiles"]


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q``-quantile of cumulative ``(upper_bound, count)`` buckets, or None without data.

    The same rules as Prometheus's ``histogram_quantile`` (promql/quantile.go): buckets sorted by
    bound and those with the same bound merged, counts made monotonic, linear interpolation inside
    the bucket that holds the rank (the first bucket starts at 0), and a rank in the ``+Inf``
    bucket answers the highest finite bound. Prometheus answers NaN where this answers None: no
    ``+Inf`` bucket, fewer than two buckets, or no observations.
    """
    return bucket_quantiles((q,), buckets)[0]


def bucket_quantiles(
    qs: Sequence[float], buckets: Iterable[tuple[float, float]]
) -> list[float | None]:
    """``bucket_quantile`` for several quantiles of the same buckets, sorting them once."""
    ordered = sorted(_merged(buckets).items())
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return [_out_of_range(q) for q in qs]
    bounds = [b for b, _ in ordered]
    counts = list(accumulate((c for _, c in ordered), max, initial=-math.inf))[1:]
    return [_interpolate(q, bounds, counts) for q in qs]


def _merged(buckets: Iterable[tuple[float, float]]) -> dict[float, float]:
    """Counts per bound, those of buckets with the same bound added up."""
    pairs = buckets if isinstance(buckets, list | tuple) else list(buckets)
    merged = dict(pairs)
    if len(merged) == len(pairs):  # the common case: no bound twice
        return merged
    merged.clear()
    for bound, count in pairs:
        merged[bound] = merged.get(bound, 0.0) + count
    return merged


def _out_of_range(q: float) -> float | None:
    """What Prometheus answers for ``q`` outside [0, 1] whatever the buckets (None for NaN)."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    return None


def _interpolate(q: float, bounds: list[float], counts: list[float]) -> float | None:
    if math.isnan(q) or q < 0 or q > 1:
        return _out_of_range(q)
    observations = counts[-1]
    if not observations > 0:
        return None
    rank = q * observations
    last = len(counts) - 1
    b = bisect_left(counts, rank, 0, last)  # the first bucket holding the rank (Go's sort.Search)
    if b == last:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0
    end = bounds[b]
    count = counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count <= 0:  # only for q == 0 with an empty first bucket: Prometheus answers NaN
        return None
    return start + (end - start) * (rank / count)

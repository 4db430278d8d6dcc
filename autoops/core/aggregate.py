"""Summaries of a snapshot the rules share: per-version totals, load, degraded regions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autoops.model import RegionSignals, Snapshot, VersionMetrics


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Metrics of one version summed (rates) or rate-weighted (ratios) over some regions."""

    request_rate: float | None
    error_ratio: float | None
    latency_p99_ms: float | None
    accuracy: float | None
    shadow_disagreement: float | None
    request_count: float | None
    burn_windows: Mapping[int, float | None]


def _weighted(pairs: list[tuple[float, float]]) -> float | None:
    """Mean of values weighted by rate; plain mean when every weight is zero."""
    if not pairs:
        return None
    total = sum(w for _, w in pairs)
    if total <= 0:
        return sum(v for v, _ in pairs) / len(pairs)
    return sum(v * w for v, w in pairs) / total


def aggregate_version(rows: Iterable[VersionMetrics]) -> Aggregate:
    """Combine one version's rows across regions; any missing component stays None."""
    rows = list(rows)
    if not rows:
        return Aggregate(None, None, None, None, None, None, {})
    rates = [r.request_rate for r in rows]
    rate = None if any(x is None for x in rates) else sum(x for x in rates if x is not None)

    def combine(attr: str) -> float | None:
        pairs: list[tuple[float, float]] = []
        for r in rows:
            value = getattr(r, attr)
            if value is None:
                continue
            pairs.append((float(value), r.request_rate or 0.0))
        return _weighted(pairs)

    counts = [r.request_count for r in rows]
    count = None if all(c is None for c in counts) else sum(c or 0.0 for c in counts)
    windows: dict[int, float | None] = {}
    for window in {w for r in rows for w in r.error_ratio_by_window}:
        pairs = [
            (float(v), r.request_rate or 0.0)
            for r in rows
            if (v := r.error_ratio_by_window.get(window)) is not None
        ]
        windows[window] = _weighted(pairs)
    error_ratio = None if any(r.error_ratio is None for r in rows) else combine("error_ratio")
    return Aggregate(
        request_rate=rate,
        error_ratio=error_ratio,
        latency_p99_ms=combine("latency_p99_ms"),
        accuracy=combine("accuracy"),
        shadow_disagreement=combine("shadow_disagreement"),
        request_count=count,
        burn_windows=windows,
    )


def rows_by_version(
    snapshot: Snapshot, exclude_regions: frozenset[str] = frozenset()
) -> dict[str, list[VersionMetrics]]:
    """Group the snapshot's rows by version, leaving out the given regions."""
    grouped: dict[str, list[VersionMetrics]] = {}
    for row in snapshot.metrics:
        if row.region in exclude_regions:
            continue
        grouped.setdefault(row.version, []).append(row)
    return grouped


def total_load(snapshot: Snapshot) -> tuple[float | None, bool]:
    """Requests in flight over every row, and whether every row reported it.

    Returns (None, False) when no row reported load at all.
    """
    total = 0.0
    seen = False
    complete = True
    for row in snapshot.metrics:
        if row.ongoing_requests is None:
            complete = False
            continue
        seen = True
        total += row.ongoing_requests
    if not seen:
        return None, False
    return total, complete


def total_rate(snapshot: Snapshot) -> float | None:
    """Request rate over every row, or None if any row is missing it."""
    total = 0.0
    for row in snapshot.metrics:
        if row.request_rate is None:
            return None
        total += row.request_rate
    return total if snapshot.metrics else None


def degraded_regions(
    snapshot: Snapshot, error_limit: float, signals: Mapping[str, RegionSignals]
) -> dict[str, str]:
    """Regions that are failing, with why: marked unhealthy, or every version there erring.

    A region counts as erring only when other regions are not, so a fleet-wide fault is not
    blamed on a region.
    """
    reasons: dict[str, str] = {}
    for name, sig in signals.items():
        if sig.healthy is False:
            reasons[name] = "region marked unhealthy by the health signal"
    by_region: dict[str, list[VersionMetrics]] = {}
    for row in snapshot.metrics:
        by_region.setdefault(row.region, []).append(row)
    if len(by_region) < 2:
        return reasons
    erring: dict[str, float] = {}
    for region, rows in by_region.items():
        agg = aggregate_version(rows)
        if agg.error_ratio is not None and agg.error_ratio > error_limit:
            erring[region] = agg.error_ratio
    if erring and len(erring) < len(by_region):
        for region, ratio in erring.items():
            reasons.setdefault(
                region,
                f"every version in the region errs ({ratio:.1%} > {error_limit:.1%}) "
                "while other regions do not",
            )
    return reasons

"""Summaries of a snapshot the rules share: per-version totals, load, degraded regions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autoops.core.frozen import builder
from autoops.core.placement import unhealthy_regions
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


_aggregate = builder(Aggregate)
_SEQUENCES = (list, tuple)
_EMPTY = Aggregate(None, None, None, None, None, None, {})
_INF = float("inf")


def valid(value: float | None) -> bool:
    """A usable metric value: present, finite and not negative (NaN fails every comparison)."""
    return value is not None and 0.0 <= value < _INF


def aggregate_version(rows: Iterable[VersionMetrics]) -> Aggregate:
    """Combine one version's rows across regions; any missing component stays None.

    Rates and counts add up; ratios and latencies are means weighted by request rate (a plain
    mean when every rate is zero). A missing rate or error ratio in any row makes the total
    missing: a partial sum would look like a healthy drop.
    """
    rows = rows if isinstance(rows, _SEQUENCES) else tuple(rows)
    if not rows:
        return _EMPTY
    rate = 0.0
    rate_missing = False
    err_missing = False
    count: float | None = None
    # (sum of value*weight, sum of weight, whether any value) per weighted metric; the plain
    # mean behind a zero weight is summed again only when needed (_plain_mean).
    e_vw = e_w = l_vw = l_w = a_vw = a_w = s_vw = s_w = 0.0
    e_any = l_any = a_any = s_any = False
    windows: dict[int, list[float]] | None = None
    for r in rows:
        w = r.request_rate
        if w is None or not 0.0 <= w < _INF:
            rate_missing = True
            w = 0.0
        else:
            rate += w
        c = r.request_count
        if c is not None and 0.0 <= c < _INF:
            count = (count or 0.0) + (c or 0.0)
        v = r.error_ratio
        if v is None or not 0.0 <= v < _INF:
            err_missing = True
        else:
            e_vw += v * w
            e_w += w
            e_any = True
        v = r.latency_p99_ms
        if v is not None and 0.0 <= v < _INF:
            l_vw += v * w
            l_w += w
            l_any = True
        v = r.accuracy
        if v is not None and 0.0 <= v < _INF:
            a_vw += v * w
            a_w += w
            a_any = True
        v = r.shadow_disagreement
        if v is not None and 0.0 <= v < _INF:
            s_vw += v * w
            s_w += w
            s_any = True
        if r.error_ratio_by_window:
            if windows is None:
                windows = {}
            for window, ratio in r.error_ratio_by_window.items():
                if ratio is not None and 0.0 <= ratio < _INF:
                    acc = windows.setdefault(window, [0.0, 0.0, 0.0, 0.0])
                    acc[0] += ratio * w
                    acc[1] += w
                    acc[2] += ratio
                    acc[3] += 1
    burn: dict[int, float | None] = {}
    if windows:
        for window, (vw, ww, vs, n) in windows.items():
            burn[window] = vw / ww if ww > 0 else vs / n
    return _aggregate(
        None if rate_missing else rate,
        None
        if err_missing or not e_any
        else (e_vw / e_w if e_w > 0 else _plain_mean([r.error_ratio for r in rows])),
        None
        if not l_any
        else (l_vw / l_w if l_w > 0 else _plain_mean([r.latency_p99_ms for r in rows])),
        None if not a_any else (a_vw / a_w if a_w > 0 else _plain_mean([r.accuracy for r in rows])),
        None
        if not s_any
        else (s_vw / s_w if s_w > 0 else _plain_mean([r.shadow_disagreement for r in rows])),
        count,
        burn,
    )


def _plain_mean(values: list[float | None]) -> float:
    """The plain mean of the valid values, summed in order (the weighted mean's fallback)."""
    total = 0.0
    n = 0
    for v in values:
        if v is not None and 0.0 <= v < _INF:
            total += v
            n += 1
    return total / n


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
    """Requests in flight over every row, and whether every row reported a valid value.

    Returns (None, False) when no row reported load at all. Invalid values (NaN, infinite,
    negative) count as missing: partial load is a lower bound that may only scale up.
    """
    total = 0.0
    seen = False
    complete = True
    for row in snapshot.metrics:
        value = row.ongoing_requests
        if value is None or not 0.0 <= value < _INF:
            complete = False
            continue
        seen = True
        total += value
    if not seen:
        return None, False
    return total, complete


def total_rate(snapshot: Snapshot) -> float | None:
    """Request rate over every row, or None if any row is missing it."""
    total = 0.0
    for row in snapshot.metrics:
        value = row.request_rate
        if value is None or not 0.0 <= value < _INF:
            return None
        total += value
    return total if snapshot.metrics else None


NOISE_Z = 3.0
"""Standard errors of sampling noise that one version's or region's excess errors must clear
before it is blamed for errors the others show too: a few dozen requests must not roll back a
canary, or empty a region, for a fault of the whole fleet."""


def error_noise(
    cand_ratio: float, cand_count: float | None, base_ratio: float, base_count: float | None
) -> float:
    """How far apart two error ratios may be by sampling noise alone (0 without counts)."""
    if not cand_count or not base_count or cand_count <= 0 or base_count <= 0:
        return 0.0
    pooled = (cand_ratio * cand_count + base_ratio * base_count) / (cand_count + base_count)
    pooled = min(max(pooled, 0.0), 1.0)
    variance = pooled * (1.0 - pooled) * (1.0 / cand_count + 1.0 / base_count)
    return float(NOISE_Z * variance**0.5)


def _any_over(rows: tuple[VersionMetrics, ...], error_limit: float) -> bool:
    """Whether any row's error ratio is over the limit."""
    for row in rows:
        ratio = row.error_ratio
        if ratio is not None and ratio > error_limit:
            return True
    return False


def degraded_regions(
    snapshot: Snapshot, error_limit: float, signals: Mapping[str, RegionSignals]
) -> dict[str, str]:
    """Regions that are failing, with why: marked unhealthy, or every version there erring.

    A region counts as erring only when other regions are not, and when its error ratio is above
    theirs by more than sampling noise: a fleet-wide fault, which crosses the limit in one
    region a pass before another, is not blamed on a region.
    """
    unhealthy = unhealthy_regions(signals)
    reasons: dict[str, str] = (
        dict.fromkeys(unhealthy, "region marked unhealthy by the health signal")
        if unhealthy
        else {}
    )
    if not _any_over(snapshot.metrics, error_limit):
        return reasons
    by_region: dict[str, list[VersionMetrics]] = {}
    for row in snapshot.metrics:
        by_region.setdefault(row.region, []).append(row)
    if len(by_region) < 2:
        return reasons
    aggregates = {region: aggregate_version(rows) for region, rows in by_region.items()}
    erring = {
        region: agg
        for region, agg in aggregates.items()
        if agg.error_ratio is not None and agg.error_ratio > error_limit
    }
    if not erring or len(erring) == len(by_region):
        return reasons
    others = aggregate_version(
        row for region, rows in by_region.items() if region not in erring for row in rows
    )
    for region, agg in erring.items():
        ratio = agg.error_ratio
        assert ratio is not None
        if others.error_ratio is not None:
            noise = error_noise(ratio, agg.request_count, others.error_ratio, others.request_count)
            if ratio - others.error_ratio <= noise:
                continue
        reasons.setdefault(
            region,
            f"every version in the region errs ({ratio:.1%} > {error_limit:.1%}) "
            "while other regions do not",
        )
    return reasons

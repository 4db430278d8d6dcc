"""Signals for replays: hourly carbon and price per region from CSV, fixed values, overrides.

Every source implements :class:`autoops.sim.api.SignalSource`: ``at(t)`` returns one
:class:`~autoops.model.RegionSignals` per region, knowing only the past (the current hour's value
at most). ``future(t, hours)`` also exists, for the oracle baseline only: it sees ahead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from autoops.model import RegionSignals
from autoops.regions.model import Region
from autoops.sim.api import SignalSource
from autoops.sim.traffic import TraceError, _cell, _number, _open_rows

__all__ = [
    "CARBON_COLUMN",
    "HOURS",
    "PRICE_COLUMN",
    "TIME_COLUMN",
    "YEAR",
    "CarbonSpike",
    "CsvSignals",
    "FutureSignals",
    "Override",
    "Overrides",
    "PriceSpike",
    "RegionOutage",
    "StaticSignals",
    "read_hourly",
]

YEAR = 2023
"""The data year of the shared carbon and price files."""
HOURS = 8760
"""Hours in the data year (2023 is not a leap year)."""
TIME_COLUMN = "Datetime (UTC)"
CARBON_COLUMN = "Carbon Intensity gCO\u2082eq/kWh (LCA)"
"""Life-cycle carbon intensity (note the Unicode subscript two)."""
PRICE_COLUMN = "Price (USD/MWh)"


@runtime_checkable
class FutureSignals(SignalSource, Protocol):
    """A signal source that can also look ahead (for the oracle baseline only)."""

    def future(self, t: float, hours: int) -> tuple[tuple[RegionSignals, ...], ...]:
        """Signals for ``hours`` hours from the one holding ``t`` (index 0 is ``at(t)``)."""
        ...


# --------------------------------------------------------------------------- CSV replay


_CACHE: dict[tuple[str, int, int, str], tuple[float, ...]] = {}


def read_hourly(path: Path, column: str) -> tuple[float, ...]:
    """One value per UTC hour of 2023 (index 0 = 2023-01-01 00:00 UTC) from ``column`` of ``path``.

    A row belongs to the UTC hour it starts in (``00:30`` counts for hour 0); rows outside 2023
    are ignored, and of two rows for one hour the first wins. An hour without a row takes the
    value of the nearest earlier hour (wrapping from the year's end for leading hours), so a gap
    never shows a future value. Raises :class:`TraceError` (file, line, column) on a missing
    column or a bad value, or when no row falls in 2023.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, column)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    header, rows = _open_rows(path, (TIME_COLUMN, column))
    it, iv = header.index(TIME_COLUMN), header.index(column)
    origin = datetime(YEAR, 1, 1)
    values: list[float | None] = [None] * HOURS
    for line, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        text = _cell(path, line, row, it, TIME_COLUMN)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise TraceError(
                f"{path}: line {line}: column {TIME_COLUMN!r}: not a timestamp: {text!r}"
            ) from None
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        value = _number(path, line, column, _cell(path, line, row, iv, column))
        hour = math.floor((stamp - origin).total_seconds() / 3600.0)
        if 0 <= hour < HOURS and values[hour] is None:
            values[hour] = value
    known = [i for i, v in enumerate(values) if v is not None]
    if not known:
        raise TraceError(f"{path}: column {column!r}: no row falls in {YEAR}")
    last = values[known[-1]]
    filled: list[float] = []
    for v in values:
        if v is not None:
            last = v
        assert last is not None
        filled.append(last)
    result = tuple(filled)
    _CACHE[key] = result
    return result


class CsvSignals:
    """Hourly carbon intensity and electricity price per region, replayed from the 2023 CSVs.

    * Carbon: ``<data_dir>/carbon/<carbon_zone>_2023_hourly.csv``, column
      ``Carbon Intensity gCO₂eq/kWh (LCA)``; price:
      ``<data_dir>/electricity_prices/<price_zone>_2023.csv``, column ``Price (USD/MWh)``;
      both keyed by ``Datetime (UTC)`` (see :func:`read_hourly`).
    * Clock offset: simulated time 0 is hour ``start_hour`` of 2023 (0 = 1 January, 00:00 UTC).
      ``at(t)`` gives the values of hour ``floor(t / 3600) + start_hour``, the hour holding
      ``t``, never a later one; past the end of the year it wraps to January.
    * Every region is ``healthy=True`` (outages come from :class:`Overrides`).
    * A region whose zone file is missing gets ``None`` for that signal (missing data, never
      0), and a line in ``missing`` says which file was not found. A file that exists but is
      malformed raises :class:`TraceError`.
    """

    def __init__(
        self,
        regions: Sequence[str],
        carbon: Mapping[str, Sequence[float] | None],
        price: Mapping[str, Sequence[float] | None],
        start_hour: int = 0,
        missing: Sequence[str] = (),
    ) -> None:
        if not 0 <= start_hour < HOURS:
            raise ValueError(f"start_hour must be in [0, {HOURS}), got {start_hour}")
        if len(set(regions)) != len(regions):
            raise ValueError(f"duplicate region names in {list(regions)}")
        for name, series in (*carbon.items(), *price.items()):
            if series is not None and len(series) != HOURS:
                raise ValueError(f"{name}: expected {HOURS} hourly values, got {len(series)}")
        self._regions = tuple(regions)
        self._carbon = {r: carbon.get(r) for r in self._regions}
        self._price = {r: price.get(r) for r in self._regions}
        self.start_hour = start_hour
        self.missing: tuple[str, ...] = tuple(missing)
        """Warnings: one line per zone file that was not found (that signal is None)."""
        self._memo: dict[int, tuple[RegionSignals, ...]] = {}

    @classmethod
    def load(
        cls, data_dir: str | Path, regions: Sequence[Region], start_hour: int = 0
    ) -> CsvSignals:
        """Read each region's carbon and price zone files from ``data_dir``."""
        root = Path(data_dir)
        carbon: dict[str, Sequence[float] | None] = {}
        price: dict[str, Sequence[float] | None] = {}
        missing: list[str] = []
        for region in regions:
            carbon_path = root / "carbon" / f"{region.carbon_zone}_{YEAR}_hourly.csv"
            price_path = root / "electricity_prices" / f"{region.price_zone}_{YEAR}.csv"
            for path, column, out, what in (
                (carbon_path, CARBON_COLUMN, carbon, "carbon intensity"),
                (price_path, PRICE_COLUMN, price, "electricity price"),
            ):
                if path.is_file():
                    out[region.name] = read_hourly(path, column)
                else:
                    out[region.name] = None
                    missing.append(f"{region.name}: no {what} data ({path} not found): None")
        return cls([r.name for r in regions], carbon, price, start_hour, missing)

    @property
    def regions(self) -> tuple[str, ...]:
        """Region names, in the order ``at`` returns them."""
        return self._regions

    def hour_of_year(self, t: float) -> int:
        """The data hour (0..8759) that holds simulated time ``t``."""
        return (math.floor(t / 3600.0) + self.start_hour) % HOURS

    def _hour(self, hour: int) -> tuple[RegionSignals, ...]:
        memo = self._memo.get(hour)
        if memo is None:
            memo = tuple(
                RegionSignals(
                    region=r,
                    carbon_intensity=_value(self._carbon[r], hour),
                    price_usd_per_mwh=_value(self._price[r], hour),
                    healthy=True,
                )
                for r in self._regions
            )
            self._memo[hour] = memo
        return memo

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """Signals of the hour holding ``t`` (never a later hour)."""
        return self._hour(self.hour_of_year(t))

    def future(self, t: float, hours: int) -> tuple[tuple[RegionSignals, ...], ...]:
        """ORACLE ONLY: the hour holding ``t`` and the ``hours - 1`` after it (sees the future)."""
        first = self.hour_of_year(t)
        return tuple(self._hour((first + k) % HOURS) for k in range(max(hours, 0)))


def _value(series: Sequence[float] | None, hour: int) -> float | None:
    return None if series is None else float(series[hour])


# --------------------------------------------------------------------------- fixed values


class StaticSignals:
    """The same signals at every time (for tests, and the synthetic default)."""

    def __init__(self, mapping: Mapping[str, RegionSignals]) -> None:
        for name, signals in mapping.items():
            if signals.region != name:
                raise ValueError(f"key {name!r} holds signals of region {signals.region!r}")
        self._signals = tuple(mapping.values())

    @classmethod
    def uniform(
        cls,
        regions: Sequence[str],
        carbon_intensity: float | None = None,
        price_usd_per_mwh: float | None = None,
    ) -> StaticSignals:
        """Every region with the same carbon intensity and price, healthy."""
        return cls(
            {r: RegionSignals(r, carbon_intensity, price_usd_per_mwh, True) for r in regions}
        )

    @property
    def regions(self) -> tuple[str, ...]:
        """Region names, in the order ``at`` returns them."""
        return tuple(s.region for s in self._signals)

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """The fixed signals."""
        return self._signals

    def future(self, t: float, hours: int) -> tuple[tuple[RegionSignals, ...], ...]:
        """The fixed signals, ``hours`` times (oracle only)."""
        return tuple(self._signals for _ in range(max(hours, 0)))


# --------------------------------------------------------------------------- overrides


@dataclass(frozen=True, slots=True)
class _Window:
    """Something that holds in ``region`` during [start_s, start_s + duration_s)."""

    region: str
    start_s: float
    duration_s: float

    def active(self, t: float) -> bool:
        """Whether ``t`` falls inside the window."""
        return self.start_s <= t < self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class CarbonSpike(_Window):
    """``region``'s carbon intensity is ``value`` gCO2e/kWh in [start_s, start_s + duration_s)."""

    value: float


@dataclass(frozen=True, slots=True)
class PriceSpike(_Window):
    """``region``'s electricity price is ``value`` USD/MWh in [start_s, start_s + duration_s)."""

    value: float


@dataclass(frozen=True, slots=True)
class RegionOutage(_Window):
    """``region`` is unhealthy (``healthy=False``) during [start_s, start_s + duration_s)."""


Override = CarbonSpike | PriceSpike | RegionOutage


class Overrides:
    """Any signal source with scheduled spikes and outages laid over it.

    Inside its window an override replaces the value (spikes set an absolute value; an outage
    sets ``healthy=False``); outside it the inner source shows through unchanged. When two
    overrides of one kind overlap, the later one in the list wins.
    """

    def __init__(self, inner: SignalSource, overrides: Sequence[Override]) -> None:
        for o in overrides:
            if o.duration_s < 0:
                raise ValueError(f"{o}: duration_s must be >= 0")
        known = getattr(inner, "regions", None)
        if isinstance(known, tuple):
            unknown = sorted({o.region for o in overrides} - set(known))
            if unknown:
                raise ValueError(f"overrides name unknown region(s) {unknown}; known: {known}")
        self.inner = inner
        self.overrides = tuple(overrides)

    @property
    def regions(self) -> tuple[str, ...] | None:
        """The inner source's region names, when it says."""
        known = getattr(self.inner, "regions", None)
        return known if isinstance(known, tuple) else None

    def _apply(self, t: float, signals: tuple[RegionSignals, ...]) -> tuple[RegionSignals, ...]:
        active = [o for o in self.overrides if o.active(t)]
        if not active:
            return signals
        out: list[RegionSignals] = []
        for s in signals:
            for o in active:
                if o.region != s.region:
                    continue
                if isinstance(o, CarbonSpike):
                    s = replace(s, carbon_intensity=o.value)
                elif isinstance(o, PriceSpike):
                    s = replace(s, price_usd_per_mwh=o.value)
                else:
                    s = replace(s, healthy=False)
            out.append(s)
        return tuple(out)

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """The inner signals at ``t`` with the overrides active at ``t`` applied."""
        return self._apply(t, self.inner.at(t))

    def future(self, t: float, hours: int) -> tuple[tuple[RegionSignals, ...], ...]:
        """ORACLE ONLY: the inner source's future, hour ``k`` overridden as at ``t + k h``."""
        if not isinstance(self.inner, FutureSignals):
            raise TypeError(f"{type(self.inner).__name__} cannot look ahead")
        ahead = self.inner.future(t, hours)
        return tuple(self._apply(t + 3600.0 * k, s) for k, s in enumerate(ahead))

"""Live signals for the controller: carbon intensity, electricity price and health per region.

Three providers behind :class:`autoops.ports.SignalsProvider` (``at(t)``, ``t`` = wall time):

* :class:`CsvReplaySignals` replays the 2023 hourly CSVs (the simulator's loader,
  :class:`autoops.sim.signals.CsvSignals`), mapping wall time to an hour of the data year;
* :class:`ElectricityMapsSignals` asks an Electricity-Maps-style HTTP API, caching per zone;
  a failed or malformed answer gives ``None`` for that signal and never raises;
* :class:`OverrideFileSignals` lays a YAML/JSON file (edited by a test or the demo) over another
  provider, re-read when it changes.

:func:`build_signals` wires one of them (plus an optional override file) from a
:class:`SignalsSpec`.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, Protocol

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoops.logging import get_logger
from autoops.model import RegionSignals
from autoops.ports import SignalsProvider
from autoops.regions.model import Region, RegionCatalogue
from autoops.sim.signals import YEAR, CsvSignals, StaticSignals
from autoops.yamlio import (
    ConfigError,
    ConfigIssue,
    format_path,
    issues_from_validation,
    parse_yaml,
    read_bounded,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_KEY_ENV",
    "CsvReplaySignals",
    "ElectricityMapsSignals",
    "OverrideFileSignals",
    "RegionalSignals",
    "SignalsSpec",
    "build_signals",
    "write_overrides",
]

DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
"""Electricity Maps' v3 API."""
DEFAULT_KEY_ENV = "ELECTRICITYMAPS_API_KEY"
"""Environment variable holding the API key (sent as the ``auth-token`` header)."""

_LOGGER = "autoops.adapters.carbon"
"""Looked up at each use, so that a reconfigured (or captured) structlog sees these lines."""
_DATA_ORIGIN = datetime(YEAR, 1, 1, tzinfo=UTC)


class RegionalSignals(SignalsProvider, Protocol):
    """A signals provider that also says which regions it answers for."""

    @property
    def regions(self) -> tuple[str, ...]:
        """Region names, in the order ``at`` returns them."""
        ...


def _regions(catalogue: RegionCatalogue, names: Sequence[str]) -> list[Region]:
    """The catalogue's regions named ``names``; an unknown or repeated name is a ValueError."""
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise ValueError(
            f"unknown region(s) {unknown}; the catalogue has: {', '.join(catalogue.names())}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate region names in {list(names)}")
    return [catalogue[n] for n in names]


# --------------------------------------------------------------------------- CSV replay


def _data_time(start: datetime | str) -> datetime:
    """``start`` as an aware UTC datetime inside the data year (naive means UTC)."""
    try:
        stamp = datetime.fromisoformat(start) if isinstance(start, str) else start
    except ValueError:
        raise ValueError(f"start_hour {start!r} is not an ISO date and time") from None
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    if stamp.year != YEAR:
        raise ValueError(
            f"start_hour {stamp.isoformat()} is outside the data year {YEAR} "
            f"(the carbon and price files hold {YEAR} only)"
        )
    return stamp


class CsvReplaySignals:
    """Carbon and price replayed from the shared 2023 CSVs, wall time mapped onto the data year.

    Wall time ``clock_origin`` is data time ``start_hour``; from there data time runs
    ``speedup`` times as fast as the wall clock, and wraps from the end of 2023 to January
    (times before the origin wrap backwards the same way). ``at(t)`` gives the values of the data
    hour holding the mapped time, never a later one. Regions are healthy; a zone without a file
    gives ``None`` for that signal and a line in ``missing``.
    """

    def __init__(
        self,
        catalogue: RegionCatalogue,
        data_dir: str | Path,
        regions: Sequence[str],
        start_hour: datetime | str,
        clock_origin: float,
        speedup: float = 1.0,
    ) -> None:
        if not (math.isfinite(speedup) and speedup > 0):
            raise ValueError(f"speedup must be a positive number, got {speedup}")
        if not math.isfinite(clock_origin):
            raise ValueError(f"clock_origin must be a finite unix time, got {clock_origin}")
        start = _data_time(start_hour)
        self._offset_s = (start - _DATA_ORIGIN).total_seconds()
        self.clock_origin = clock_origin
        self.speedup = speedup
        self._csv = CsvSignals.load(data_dir, _regions(catalogue, regions))

    @property
    def regions(self) -> tuple[str, ...]:
        """Region names, in the order ``at`` returns them."""
        return self._csv.regions

    @property
    def missing(self) -> tuple[str, ...]:
        """One line per zone file that was not found (that signal is None)."""
        return self._csv.missing

    def _data_seconds(self, t: float) -> float:
        return self._offset_s + (t - self.clock_origin) * self.speedup

    def data_hour(self, t: float) -> datetime:
        """The start of the data hour (UTC, in the data year) that wall time ``t`` maps to."""
        return _DATA_ORIGIN + timedelta(hours=self._csv.hour_of_year(self._data_seconds(t)))

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """Signals of the data hour that wall time ``t`` maps to."""
        return self._csv.at(self._data_seconds(t))


# --------------------------------------------------------------------------- live HTTP


_Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    zone: str | None = None
    stamp: datetime | None = Field(default=None, alias="datetime")


class _CarbonReply(_Reply):
    carbon_intensity: _Finite = Field(alias="carbonIntensity", ge=0)


class _PriceReply(_Reply):
    price: _Finite
    unit: str


@dataclass(frozen=True, slots=True)
class _Entry:
    """One zone's last answer: its value (None on failure) and when it was fetched."""

    value: float | None
    fetched_at: float
    ok: bool


class _UnusableAnswerError(Exception):
    """An answer that cannot be used (said once in the log, then the value is None)."""


class ElectricityMapsSignals:
    """Carbon intensity and day-ahead price per region from an Electricity-Maps-style API.

    ``GET {base_url}/carbon-intensity/latest?zone=Z`` (``{"zone", "carbonIntensity",
    "datetime"}``) per carbon zone and ``GET {base_url}/price-day-ahead/latest?zone=Z``
    (``{"price", "unit"}``, EUR/MWh converted at ``usd_per_eur``) per price zone, with the key
    from ``$api_key_env`` in an ``auth-token`` header (no header when ``api_key_env`` is None).
    Answers are cached per zone for ``cache_s`` seconds of the ``t`` passed to ``at``; a timeout,
    an HTTP error, a malformed body, a zone mismatch or a value dated more than ``max_age_s``
    before ``t`` gives ``None`` for that signal (retried after ``retry_s``), never an exception.
    Health is not known here: ``healthy`` is None.
    """

    def __init__(
        self,
        catalogue: RegionCatalogue,
        regions: Sequence[str],
        base_url: str = DEFAULT_BASE_URL,
        api_key_env: str | None = DEFAULT_KEY_ENV,
        timeout_s: float = 5.0,
        cache_s: float = 300.0,
        *,
        retry_s: float = 30.0,
        max_age_s: float = 3 * 3600.0,
        usd_per_eur: float = 1.08,
    ) -> None:
        for name, value in (("timeout_s", timeout_s), ("cache_s", cache_s), ("retry_s", retry_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value}")
        if not (timeout_s > 0 and max_age_s > 0 and usd_per_eur > 0):
            raise ValueError("timeout_s, max_age_s and usd_per_eur must be positive")
        headers: dict[str, str] = {}
        if api_key_env is not None:
            key = os.environ.get(api_key_env, "").strip()
            if not key:
                raise ValueError(
                    f"{api_key_env} is not set: the live signals provider needs an API key"
                )
            headers["auth-token"] = key
        self._zones = {r.name: (r.carbon_zone, r.price_zone) for r in _regions(catalogue, regions)}
        self.base_url = base_url.rstrip("/")
        self.cache_s = cache_s
        self.retry_s = retry_s
        self.max_age_s = max_age_s
        self.usd_per_eur = usd_per_eur
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._errors: dict[tuple[str, str], str] = {}

    @property
    def regions(self) -> tuple[str, ...]:
        """Region names, in the order ``at`` returns them."""
        return tuple(self._zones)

    @property
    def errors(self) -> Mapping[str, str]:
        """Why each failing signal is None now, keyed ``carbon-intensity:ZONE`` or similar."""
        return {f"{kind}:{zone}": why for (kind, zone), why in self._errors.items()}

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """The latest carbon intensity and price of each region's zones (cached); never raises."""
        return tuple(
            RegionSignals(
                region=name,
                carbon_intensity=self._value("carbon-intensity", carbon, t),
                price_usd_per_mwh=self._value("price-day-ahead", price, t),
                healthy=None,
            )
            for name, (carbon, price) in self._zones.items()
        )

    def _value(self, kind: str, zone: str, t: float) -> float | None:
        key = (kind, zone)
        entry = self._cache.get(key)
        if entry is not None:
            age = t - entry.fetched_at
            if 0 <= age < (self.cache_s if entry.ok else self.retry_s):
                return entry.value
        try:
            value: float | None = self._fetch(kind, zone, t)
            ok = True
        except Exception as exc:  # the loop must never see an exception from a signal
            value, ok = None, False
            why = (
                str(exc)
                if isinstance(exc, _UnusableAnswerError)
                else f"{type(exc).__name__}: {exc}"
            )
            if self._errors.get(key) != why:
                get_logger(_LOGGER).warning("signal unavailable", kind=kind, zone=zone, error=why)
            self._errors[key] = why
        else:
            if self._errors.pop(key, None) is not None:
                get_logger(_LOGGER).info("signal available again", kind=kind, zone=zone)
        self._cache[key] = _Entry(value, t, ok)
        return value

    def _fetch(self, kind: str, zone: str, t: float) -> float:
        path = f"/{kind}/latest"
        url = f"GET {self.base_url}{path}?zone={zone}"
        response = self._client.get(path, params={"zone": zone})
        if response.status_code != 200:
            raise _UnusableAnswerError(f"{url}: HTTP {response.status_code}")
        model: type[_Reply] = _CarbonReply if kind == "carbon-intensity" else _PriceReply
        try:
            reply = model.model_validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise _UnusableAnswerError(f"{url}: unusable answer: {where}: {first['msg']}") from None
        if reply.zone is not None and reply.zone != zone:
            raise _UnusableAnswerError(f"{url}: answer is for zone {reply.zone!r}")
        if reply.stamp is not None:
            stamp = reply.stamp
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
            if t - stamp.timestamp() > self.max_age_s:
                raise _UnusableAnswerError(f"{url}: stale value from {stamp.isoformat()}")
        if isinstance(reply, _CarbonReply):
            return reply.carbon_intensity
        assert isinstance(reply, _PriceReply)
        unit = reply.unit.strip().upper().replace(" ", "")
        if unit == "USD/MWH":
            return reply.price
        if unit == "EUR/MWH":
            return reply.price * self.usd_per_eur
        raise _UnusableAnswerError(f"{url}: unsupported price unit {reply.unit!r}")


# --------------------------------------------------------------------------- override file


class _RegionOverride(BaseModel):
    """One region's entry in the override file; a field given (even as null) replaces it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    carbon_intensity: _Finite | None = Field(default=None, ge=0, description="gCO2e/kWh.")
    price_usd_per_mwh: _Finite | None = Field(default=None, description="USD/MWh.")
    healthy: bool | None = Field(default=None, description="False marks the region down.")

    def apply(self, signals: RegionSignals) -> RegionSignals:
        """``signals`` with the fields this entry gives replaced."""
        return replace(signals, **{f: getattr(self, f) for f in self.model_fields_set})


def _blank(raw: bytes) -> bool:
    """Whether a file holds only blank lines and comments (no overrides)."""
    text = raw.decode("utf-8-sig", errors="replace")
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def _parse_overrides(raw: bytes, file: str, known: Sequence[str]) -> dict[str, _RegionOverride]:
    """The overrides in one file's bytes; a ConfigError (file, line, field) says what is wrong."""
    if _blank(raw):
        return {}
    data, lines = parse_yaml(raw, file)
    issues: list[ConfigIssue] = []
    out: dict[str, _RegionOverride] = {}
    for name, body in data.items():
        where = lines.line_of((name,))
        if name not in known:
            guess = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean {guess[0]!r}?" if guess else f"known: {', '.join(known)}"
            issues.append(ConfigIssue(file, where, str(name), f"unknown region ({hint})"))
            continue
        try:
            out[name] = _RegionOverride.model_validate({} if body is None else body)
        except ValidationError as exc:
            sub = lines.sub((name,))
            for issue in issues_from_validation(exc, _RegionOverride, body, sub, file):
                path = format_path((name,)) + (f".{issue.path}" if issue.path else "")
                issues.append(ConfigIssue(file, issue.line or where, path, issue.message))
    if issues:
        raise ConfigError(sorted(issues, key=lambda i: i.line or 0))
    return out


def write_overrides(path: Path, regions: Mapping[str, Mapping[str, object]]) -> None:
    """Replace the override file at ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        yaml.safe_dump({region: dict(values) for region, values in regions.items()}),
        encoding="utf-8",
    )
    tmp.replace(path)


_Stamp = tuple[int, int] | None


class OverrideFileSignals:
    """Another provider's signals with per-region values from a YAML/JSON file laid over them.

    The file maps a region to ``{carbon_intensity?, price_usd_per_mwh?, healthy?}``; a field
    given replaces the base value (``null`` makes it missing), others show through. The file is
    re-read when its modification time or size changes; a missing (or emptied) file means no
    overrides. A malformed file, or one naming an unknown region, raises :class:`ConfigError` at
    construction; later, it keeps the last good overrides and reports the error once (the log
    and ``error``), with file and line.
    """

    def __init__(
        self, base: SignalsProvider, path: Path, *, regions: Sequence[str] | None = None
    ) -> None:
        known = regions if regions is not None else getattr(base, "regions", None)
        if known is None:
            raise ValueError(
                f"{type(base).__name__} does not say its regions: pass regions= to check the file"
            )
        self.base = base
        self.path = Path(path)
        self._known = tuple(known)
        self._overrides: dict[str, _RegionOverride] = {}
        self._stamp: _Stamp = None
        self.error: ConfigError | None = None
        """The last rejected version of the file, until a good one replaces it."""
        self._reload(strict=True)

    @property
    def regions(self) -> tuple[str, ...]:
        """The region names the file may name."""
        return self._known

    def _stat(self) -> _Stamp:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self, strict: bool) -> None:
        file = str(self.path)
        stamp: _Stamp = None
        try:
            stamp = self._stat()
            overrides = (
                {} if stamp is None else _parse_overrides(read_bounded(file), file, self._known)
            )
        except OSError as exc:
            error = ConfigError.single(file, None, f"cannot read: {exc.strerror or exc}")
        except ConfigError as exc:
            error = exc
        else:
            self._stamp, self._overrides, self.error = stamp, overrides, None
            event = "override file absent: no overrides" if stamp is None else "override file read"
            get_logger(_LOGGER).info(event, file=file, regions=sorted(overrides))
            return
        if strict:
            raise error
        self._stamp = stamp
        if self.error is None or str(self.error) != str(error):
            get_logger(_LOGGER).error(
                "override file rejected; keeping the last good overrides",
                file=file,
                error=str(error),
            )
        self.error = error

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """The base signals at ``t`` with the file's overrides (re-read if it changed)."""
        try:
            changed = self._stat() != self._stamp
        except OSError:
            changed = True
        if changed:
            self._reload(strict=False)
        signals = self.base.at(t)
        if not self._overrides:
            return signals
        return tuple(
            self._overrides[s.region].apply(s) if s.region in self._overrides else s
            for s in signals
        )


# --------------------------------------------------------------------------- factory

SignalsSource = Literal["csv", "electricitymaps", "static"]


@dataclass(frozen=True, slots=True)
class SignalsSpec:
    """Which signals provider the controller reads, with its settings (built by the CLI)."""

    source: SignalsSource
    """csv: replay the data year; electricitymaps: the live API; static: no carbon or price."""
    regions: tuple[str, ...]
    data_dir: Path | None = None
    """The shared data folder (csv only)."""
    start_hour: datetime | str = f"{YEAR}-01-01T00:00"
    """The data time that the clock origin maps to (csv only)."""
    speedup: float = 1.0
    """Data seconds per wall second (csv only)."""
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str | None = DEFAULT_KEY_ENV
    timeout_s: float = 5.0
    cache_s: float = 300.0
    override_file: Path | None = None
    """A YAML/JSON file of per-region overrides laid over the source, when given."""


def build_signals(
    spec: SignalsSpec, catalogue: RegionCatalogue, clock_origin: float
) -> RegionalSignals:
    """The provider ``spec`` asks for, with its override file on top; ValueError if unusable."""
    provider: RegionalSignals
    if spec.source == "csv":
        if spec.data_dir is None:
            raise ValueError(
                "csv signals need the public data: pass --data-dir or set AUTOOPS_DATA_DIR"
            )
        provider = CsvReplaySignals(
            catalogue, spec.data_dir, spec.regions, spec.start_hour, clock_origin, spec.speedup
        )
    elif spec.source == "electricitymaps":
        provider = ElectricityMapsSignals(
            catalogue,
            spec.regions,
            spec.base_url,
            spec.api_key_env,
            spec.timeout_s,
            spec.cache_s,
        )
    elif spec.source == "static":
        _regions(catalogue, spec.regions)
        provider = StaticSignals.uniform(spec.regions)
    else:
        raise ValueError(f"unknown signals source {spec.source!r}")
    if spec.override_file is not None:
        provider = OverrideFileSignals(provider, spec.override_file)
    return provider

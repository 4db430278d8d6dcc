"""Serving metrics without Prometheus: scrape Ray's metrics endpoints directly (``MetricsSource``).

The embedded default for a newcomer. Each scrape fetches the text exposition of every target
(from Ray's service-discovery file, or given), parses it with prometheus_client's parser, and
turns every counter into a running, reset-corrected total per (application, version, region,
value key) — the same keys as ``promql`` — kept in a bounded ring buffer: every scrape for the
last minutes, one every ``coarse_every_s`` for the hours before. A read takes two entries of the
buffer, divides their difference by the time between them, and builds the same rows as the
Prometheus source with ``build_rows``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
from prometheus_client.parser import text_string_to_metric_families

from autoops.adapters.prometheus import WarnOnce
from autoops.adapters.promql import (
    AGREED_TAG,
    APPLICATION_TAG,
    BOOLEAN_VALUES,
    BREAKER_METRIC,
    CORRECT_TAG,
    DEPLOYMENT_TAG,
    FEEDBACK_METRIC,
    HEALTHY_METRIC,
    IN_FLIGHT_METRIC,
    LATENCY_BUCKET_METRIC,
    OUTCOME_TAG,
    OUTCOMES,
    REQUESTS_METRIC,
    SHADOW_METRIC,
    MetricsUnavailableError,
    build_rows,
    value_problem,
)
from autoops.contract import NAME_SEPARATOR, TAG_REGION, TAG_VERSION, parse_deployment_name
from autoops.logging import get_logger
from autoops.ports import MetricsQuery, MetricsReading

__all__ = ["BuiltinScraper", "Fetch", "http_fetch", "targets_from_sd_file"]

log = get_logger("autoops.adapters.scrape")

Fetch = Callable[[str], str]
"""Returns the text exposition of one target (``host:port``); raises when it cannot."""
Array = npt.NDArray[np.float64]

_COUNTER, _GAUGE_SUM, _GAUGE_MAX = 0, 1, 2
_WANTED = frozenset(
    {
        REQUESTS_METRIC,
        LATENCY_BUCKET_METRIC,
        FEEDBACK_METRIC,
        SHADOW_METRIC,
        IN_FLIGHT_METRIC,
        BREAKER_METRIC,
        HEALTHY_METRIC,
    }
)
_SPLIT_BY = {
    REQUESTS_METRIC: ("requests", OUTCOME_TAG, OUTCOMES),
    FEEDBACK_METRIC: ("feedback", CORRECT_TAG, BOOLEAN_VALUES),
    SHADOW_METRIC: ("shadow", AGREED_TAG, BOOLEAN_VALUES),
}


def targets_from_sd_file(path: str | Path) -> list[str]:
    """The ``host:port`` targets listed in a Prometheus file-based service-discovery file."""
    try:
        groups = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MetricsUnavailableError(
            f"cannot read Ray's service-discovery file {path}: {exc.strerror or exc}"
        ) from None
    except ValueError:
        raise MetricsUnavailableError(f"{path} is not a service-discovery JSON file") from None
    targets: list[str] = []
    for group in groups if isinstance(groups, list) else ():
        for target in group.get("targets", ()) if isinstance(group, dict) else ():
            if isinstance(target, str) and target not in targets:
                targets.append(target)
    return targets


def http_fetch(timeout_s: float = 2.0) -> Fetch:
    """A ``Fetch`` that GETs ``http://<target>/metrics`` with a timeout."""
    client = httpx.Client(timeout=timeout_s)

    def fetch(target: str) -> str:
        response = client.get(f"http://{target}/metrics")
        response.raise_for_status()
        return response.text

    return fetch


@dataclass(frozen=True, slots=True)
class _Column:
    """One aggregated value: (application, version, region, value key), and how it sums."""

    application: str
    version: str
    region: str
    key: str
    kind: int
    model: str = ""
    """The model of a healthy-replica column (from the deployment's name)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One scrape in the ring buffer: running counter totals and gauge values, by column."""

    time: float
    values: Array
    present: npt.NDArray[np.bool_]
    """Columns that some target reported in this scrape."""


class BuiltinScraper:
    """``MetricsSource`` that scrapes Ray's metrics endpoints itself (no Prometheus needed)."""

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        sd_file: str | Path | None = None,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        fine_capacity: int = 600,
        coarse_every_s: float = 30.0,
        coarse_capacity: int = 240,
        outage_after: int = 3,
        max_pairs: int = 500,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not targets and sd_file is None:
            raise ValueError("give targets or Ray's service-discovery file")
        if interval_s <= 0 or timeout_s <= 0 or coarse_every_s <= 0:
            raise ValueError("interval_s, timeout_s and coarse_every_s must be positive")
        if fine_capacity < 2 or coarse_capacity < 1 or outage_after < 1 or max_pairs < 1:
            raise ValueError(
                "fine_capacity >= 2, coarse_capacity >= 1, outage_after >= 1, max_pairs >= 1"
            )
        self.static_targets = tuple(targets)
        self.sd_file = Path(sd_file) if sd_file is not None else None
        self.interval_s = interval_s
        self.coarse_every_s = coarse_every_s
        self.outage_after = outage_after
        self.max_pairs = max_pairs
        self._fetch = fetch if fetch is not None else http_fetch(timeout_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._fine: deque[_Entry] = deque(maxlen=fine_capacity)
        self._coarse: deque[_Entry] = deque(maxlen=coarse_capacity)
        self._columns: list[_Column] = []
        self._index: dict[_Column, int] = {}
        self._by_app: dict[str, list[int]] = {}
        self._totals: list[float] = []
        self._first_seen: list[float] = []
        self._prev: dict[tuple[str, str], float] = {}
        self._cache: dict[tuple[str, str], tuple[int, int] | None] = {}
        self._pairs: dict[str, set[tuple[str, str]]] = {}
        self._refused: set[str] = set()
        self._warn = WarnOnce()
        self._warnings: list[str] = []
        self._failures = 0
        self._last_error: str | None = None
        self._last_success: float | None = None
        self._last_attempt: float | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ port

    def targets(self) -> list[str]:
        """The targets of the next scrape: the given ones and those of the discovery file."""
        found = list(self.static_targets)
        if self.sd_file is not None:
            found += [t for t in targets_from_sd_file(self.sd_file) if t not in found]
        return found

    def check(self) -> None:
        """Fail with one clear line when no target can be found or reached."""
        targets = self.targets()
        if not targets:
            where = f" in {self.sd_file}" if self.sd_file else ""
            raise MetricsUnavailableError(f"no metrics endpoints to scrape{where}; is Ray up?")
        errors = []
        for target in targets:
            try:
                self._fetch(target)
                return
            except Exception as exc:
                errors.append(f"{target}: {_reason(exc)}")
        raise MetricsUnavailableError("cannot scrape Ray's metrics: " + "; ".join(errors))

    def read(self, query: MetricsQuery, now: float) -> MetricsReading:
        """Metrics per (version, region) of one application from the buffer; never raises."""
        return self.read_many((query,), now)[0]

    def read_many(self, queries: Sequence[MetricsQuery], now: float) -> list[MetricsReading]:
        """``read`` for several applications (each one computed from the same two scrapes)."""
        try:
            if not self.running and self._due(now):
                self.scrape(now)
            with self._lock:
                state = self._snapshot()
            return [self._read_one(state, q, now) for q in queries]
        except Exception as exc:  # the port promises never to raise
            log.exception("metrics_read_failed")
            reason = f"reading scraped metrics failed: {type(exc).__name__}: {exc}"
            return [
                MetricsReading(outage=True, reason=reason, last_success_at=self._last_success)
                for _ in queries
            ]

    # ------------------------------------------------------------------ scraping

    @property
    def running(self) -> bool:
        """True while the background scrape thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Scrape every ``interval_s`` on a daemon thread until ``stop()``."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="autoops-scraper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (the buffer is kept)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.scrape()
            except Exception:  # one bad scrape must not end the thread
                log.exception("scrape_failed")
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self.interval_s)

    def _due(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self.interval_s * 0.5

    def scrape(self, now: float | None = None) -> bool:
        """Scrape every target once and add an entry to the buffer; False when all failed."""
        t = self._clock() if now is None else now
        self._last_attempt = t
        try:
            targets = self.targets()
        except MetricsUnavailableError as exc:
            return self._failed(str(exc))
        if not targets:
            return self._failed("no metrics endpoints to scrape; is Ray up?")
        texts, errors = self._fetch_all(targets)
        if not texts:
            return self._failed("; ".join(errors))
        with self._lock:
            self._ingest(t, texts)
            self._failures = 0
            self._last_error = None
            self._last_success = t
        for error in errors:
            self._warn(f"scrape of {error}", self._warnings)
        return True

    def _failed(self, reason: str) -> bool:
        self._failures += 1
        self._last_error = reason
        if self._failures == self.outage_after:
            log.warning("scrape_outage", reason=reason)
        return False

    def _fetch_all(self, targets: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
        texts: list[tuple[str, str]] = []
        errors: list[str] = []
        if len(targets) == 1:
            results = [self._try_fetch(targets[0])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="scrape")
            results = list(self._pool.map(self._try_fetch, targets))
        for target, (text, error) in zip(targets, results, strict=True):
            if text is not None:
                texts.append((target, text))
            else:
                errors.append(f"{target}: {error}")
        return texts, errors

    def _try_fetch(self, target: str) -> tuple[str | None, str | None]:
        try:
            return self._fetch(target), None
        except Exception as exc:
            return None, _reason(exc)

    # ------------------------------------------------------------------ parsing

    def _ingest(self, t: float, texts: Iterable[tuple[str, str]]) -> None:
        """Fold one scrape into the running totals and append it to the buffer."""
        gauges: dict[int, float] = {}
        seen: set[int] = set()
        prev = self._prev
        current: dict[tuple[str, str], float] = {}
        cache: dict[tuple[str, str], tuple[int, int] | None] = {}
        misses: list[tuple[str, str, str]] = []
        for target, text in texts:
            for line in text.split("\n"):
                if not line or line[0] == "#":
                    continue
                brace = line.find("{")
                if brace < 0 or line[:brace] not in _WANTED:
                    continue
                end = line.rfind("}")
                key = (target, line[: end + 1])
                if key in self._cache:
                    cache[key] = self._cache[key]
                else:
                    misses.append((target, key[1], line))
                    continue
                self._fold(key, cache[key], line[end + 1 :], t, gauges, seen, prev, current)
        for target, label_text, line in misses:
            key = (target, label_text)
            cache[key] = self._parse_new(line)
            self._fold(key, cache[key], line[len(label_text) :], t, gauges, seen, prev, current)
        answered = {target for target, _ in texts}
        for key, value in prev.items():
            if key[0] not in answered:
                # The target failed this time: its counters go on from where they were, as
                # rate() in Prometheus counts the increase across a failed scrape.
                current.setdefault(key, value)
                if key in self._cache:
                    cache.setdefault(key, self._cache[key])
        self._cache = cache
        self._prev = current
        values = np.array(self._totals, dtype=np.float64)
        present = np.zeros(len(values), dtype=bool)
        present[list(seen)] = True
        for col, value in gauges.items():
            values[col] = value
        entry = _Entry(t, values, present)
        if not self._coarse or t - self._coarse[-1].time >= self.coarse_every_s:
            self._coarse.append(entry)
        self._fine.append(entry)

    def _fold(
        self,
        key: tuple[str, str],
        info: tuple[int, int] | None,
        rest: str,
        t: float,
        gauges: dict[int, float],
        seen: set[int],
        prev: Mapping[tuple[str, str], float],
        current: dict[tuple[str, str], float],
    ) -> None:
        """Add one sample line's value to its column (counters: the reset-corrected increase)."""
        if info is None:
            return
        col, kind = info
        try:
            value = float(rest.split()[0])
        except (IndexError, ValueError):
            self._warn(f"unreadable value in {key[0]}: {key[1]}{rest}", self._warnings)
            return
        problem = value_problem(value)
        if problem is not None:
            self._warn(f"{key[1]} from {key[0]} is {problem}: ignored", self._warnings)
            if kind == _COUNTER and key in prev:
                current[key] = prev[key]  # the next good sample carries the increase
            return
        seen.add(col)
        if kind == _COUNTER:
            before = prev.get(key)
            if before is not None:
                # A counter that went down restarted from 0: all of its value is new.
                self._totals[col] += value - before if value >= before else value
            current[key] = value
        elif kind == _GAUGE_MAX:
            gauges[col] = max(gauges.get(col, value), value)
        else:
            gauges[col] = gauges.get(col, 0.0) + value

    def _parse_new(self, line: str) -> tuple[int, int] | None:
        """Parse a series seen for the first time with prometheus_client; find its column."""
        try:
            samples = [s for f in text_string_to_metric_families(line + "\n") for s in f.samples]
        except Exception:
            self._warn(f"unparseable exposition line: {line[:200]}", self._warnings)
            return None
        if len(samples) != 1:
            return None
        sample = samples[0]
        if sample.name == HEALTHY_METRIC and NAME_SEPARATOR not in sample.labels.get(
            APPLICATION_TAG, ""
        ):
            return None  # another application's deployment (the ingress, ...): not ours
        column = self._column(sample.name, sample.labels)
        if column is None:
            self._warn(f"{sample.name} with unexpected labels {sample.labels}", self._warnings)
            return None
        pairs = self._pairs.setdefault(column.application, set())
        pair = (column.version, column.region)
        if pair not in pairs and column.region and len(pairs) >= self.max_pairs:
            # A label carrying per-request values would grow the buffer without bound.
            self._refused.add(column.application)
            return None
        if column.region:
            pairs.add(pair)
        return self._column_index(column), column.kind

    def _column(self, name: str, labels: Mapping[str, str]) -> _Column | None:
        """The aggregated column a series adds to, or None for unexpected labels."""
        app = labels.get(APPLICATION_TAG, "")
        version = labels.get(TAG_VERSION, "")
        region = labels.get(TAG_REGION, "")
        if name == HEALTHY_METRIC:
            parsed = parse_deployment_name(labels.get(DEPLOYMENT_TAG, ""))
            if parsed is None:
                return None
            model, version, region = parsed
            owner = app.removesuffix(NAME_SEPARATOR + version)
            if owner == app or not owner:
                return None
            return _Column(owner, version, region, "healthy", _GAUGE_SUM, model)
        if not app or not _valid_names(version, region or "x"):
            return None
        if name == BREAKER_METRIC:
            return _Column(app, version, "", "breaker", _GAUGE_MAX)
        if not region:
            return None
        if name == IN_FLIGHT_METRIC:
            return _Column(app, version, region, "in_flight", _GAUGE_SUM)
        if name == LATENCY_BUCKET_METRIC:
            le = labels.get("le", "")
            try:
                float(le)
            except ValueError:
                return None
            return _Column(app, version, region, f"bucket/{le}", _COUNTER)
        signal, label, allowed = _SPLIT_BY[name]
        sub = labels.get(label, "")
        if sub not in allowed:
            return None
        return _Column(app, version, region, f"{signal}/{sub}", _COUNTER)

    def _column_index(self, column: _Column) -> int:
        index = self._index.get(column)
        if index is None:
            index = len(self._columns)
            self._columns.append(column)
            self._index[column] = index
            self._by_app.setdefault(column.application, []).append(index)
            self._totals.append(0.0)
            self._first_seen.append(self._last_attempt or 0.0)
        return index

    # ------------------------------------------------------------------ reading

    def _snapshot(self) -> _State:
        oldest_fine = self._fine[0].time if self._fine else float("inf")
        return _State(
            entries=[*(e for e in self._coarse if e.time < oldest_fine), *self._fine],
            columns=list(self._columns),
            by_app={app: list(cols) for app, cols in self._by_app.items()},
            first_seen=np.array(self._first_seen, dtype=np.float64),
            failures=self._failures,
            refused=frozenset(self._refused),
            last_error=self._last_error,
            last_success=self._last_success,
            warnings=self._drain_warnings(),
        )

    def _drain_warnings(self) -> tuple[str, ...]:
        """Warnings said since the last read (each is said once)."""
        said = tuple(self._warnings)
        self._warnings.clear()
        return said

    def _read_one(self, state: _State, q: MetricsQuery, now: float) -> MetricsReading:
        if state.failures >= self.outage_after or (
            state.last_success is None and state.failures > 0
        ):
            return MetricsReading(
                outage=True,
                reason=f"scraping Ray's metrics failed {state.failures} times in a row: "
                f"{state.last_error}",
                last_success_at=state.last_success,
            )
        if q.application in state.refused:
            return MetricsReading(
                outage=True,
                reason=f"refused: application {q.application!r} reports more than "
                f"{self.max_pairs} (version, region) pairs; is a label such as version or "
                "region carrying per-request values?",
                last_success_at=state.last_success,
            )
        entries = [e for e in state.entries if e.time <= now]
        if not entries:
            return MetricsReading(last_success_at=state.last_success, warnings=state.warnings)
        newest = entries[-1]
        if now - newest.time > q.stale_after_s:
            return MetricsReading(
                last_success_at=state.last_success,
                warnings=(
                    *state.warnings,
                    f"newest scrape is {now - newest.time:.0f} s old "
                    f"(> {q.stale_after_s:g} s): no current metrics",
                ),
            )
        cols = [c for c in state.by_app.get(q.application, ()) if c < len(newest.values)]
        pairs, breakers = self._values(state, q, cols, entries, now)
        rows = build_rows(q.model, q.window_s, q.burn_windows_s, pairs, breakers)
        return MetricsReading(
            metrics=rows, last_success_at=state.last_success, warnings=state.warnings
        )

    def _values(
        self,
        state: _State,
        q: MetricsQuery,
        cols: list[int],
        entries: list[_Entry],
        now: float,
    ) -> tuple[dict[tuple[str, str], dict[str, float]], dict[str, float]]:
        """The value keys of each current pair of one application, and its breakers."""
        newest = entries[-1]
        idx = np.array(cols, dtype=np.intp)
        latest = newest.values[idx].tolist()
        present = newest.present[idx].tolist()
        windows = {"": q.window_s, **{f"burn{w}": float(w) for w in q.burn_windows_s}}
        rates: dict[str, list[float | None]] = {}
        for prefix, window in windows.items():
            rates[prefix] = _rates(_oldest_within(entries, now - window), newest, idx, state)
        pairs: dict[tuple[str, str], dict[str, float]] = {}
        breakers: dict[str, float] = {}
        current: set[tuple[str, str]] = set()
        for i, col in enumerate(cols):
            column = state.columns[col]
            pair = (column.version, column.region)
            if column.kind != _COUNTER:
                if not present[i]:
                    continue
                if column.key == "breaker":
                    breakers[column.version] = latest[i]
                elif column.key != "healthy":
                    pairs.setdefault(pair, {})[column.key] = latest[i]
                    current.add(pair)
                elif column.model == q.model:
                    pairs.setdefault(pair, {})["healthy"] = latest[i]
                continue
            request = column.key.startswith("requests/")
            if present[i] and request:
                current.add(pair)
            for prefix, values in rates.items():
                rate = values[i]
                if rate is None or (prefix and not request):
                    continue
                key = prefix + column.key[8:] if prefix else column.key
                pairs.setdefault(pair, {})[key] = rate
        return {p: v for p, v in pairs.items() if p in current}, breakers


@dataclass(frozen=True, slots=True)
class _State:
    """What a read needs, copied under the lock."""

    entries: list[_Entry]
    columns: list[_Column]
    by_app: dict[str, list[int]]
    first_seen: Array
    failures: int
    refused: frozenset[str]
    last_error: str | None
    last_success: float | None
    warnings: tuple[str, ...]


def _oldest_within(entries: Sequence[_Entry], since: float) -> _Entry | None:
    """The oldest entry taken at or after ``since`` that is not the newest, or None."""
    for entry in entries[:-1]:
        if entry.time >= since:
            return entry
    return None


def _rates(
    base: _Entry | None, newest: _Entry, idx: npt.NDArray[np.intp], state: _State
) -> list[float | None]:
    """Increase per second of the counter columns ``idx`` between two entries.

    None for a column without two samples (no base entry, or first seen in the newest scrape);
    gauge columns get meaningless numbers that the caller ignores.
    """
    if base is None or newest.time <= base.time:
        return [None] * len(idx)
    n = len(base.values)
    start = np.where(idx < n, base.values[np.minimum(idx, max(n - 1, 0))], 0.0) if n else 0.0
    rate = np.maximum(newest.values[idx] - start, 0.0) / (newest.time - base.time)
    usable = state.first_seen[idx] < newest.time
    return [r if ok else None for r, ok in zip(rate.tolist(), usable.tolist(), strict=True)]


def _valid_names(version: str, region: str) -> bool:
    return parse_deployment_name(NAME_SEPARATOR.join(("m", version, region))) is not None


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else "cannot connect"
    return f"{type(exc).__name__}: {exc}"

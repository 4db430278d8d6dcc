"""Serving metrics from a real Prometheus (``MetricsSource``), on prometheus-api-client.

One read counts each application's (version, region) pairs first (refusing those over the
limit), then asks one batched instant query per signal for every application asked for, side by
side; answers are sorted as they come in, and an application's rows are built as soon as every
answer covering it is in. Every HTTP call has a timeout and failed calls are retried with
backoff inside a deadline. A read that still fails is an explicit outage, never zeros. Values
that cannot be used (NaN, infinite, negative), series with unexpected labels and stale pairs
are dropped and said once each.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlparse

from autoops.adapters.promql import (
    AGREED_TAG,
    APPLICATION_TAG,
    BOOLEAN_VALUES,
    CORRECT_TAG,
    DEPLOYMENT_TAG,
    OUTCOME_TAG,
    OUTCOMES,
    QUANTILES,
    BatchSpec,
    MetricsUnavailableError,
    build_rows,
    render_in_flight,
    render_pair_count,
    render_quantile,
    render_requests,
    signal_queries,
    signal_query_applications,
    value_problem,
)
from autoops.contract import (
    NAME_SEPARATOR,
    TAG_REGION,
    TAG_VERSION,
    parse_deployment_name,
    version_deployment_name,
)
from autoops.logging import get_logger
from autoops.model import MetricSample, VersionMetrics
from autoops.ports import MetricsQuery, MetricsReading

__all__ = [
    "HttpPromClient",
    "PromClient",
    "PromError",
    "PrometheusMetrics",
    "WarnOnce",
]

log = get_logger("autoops.adapters.prometheus")

Series = Mapping[str, Any]
"""One element of a Prometheus API ``result`` list: ``{"metric": {...}, "value": [t, "v"]}``."""


class PromError(Exception):
    """A Prometheus call failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class PromClient(Protocol):
    """The few Prometheus HTTP API calls the adapter makes (tests fake this)."""

    def query(self, promql: str, at: float | None) -> list[Series]:
        """The result of an instant query evaluated at ``at`` (now when None)."""
        ...

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Series]:
        """The result of a range query (``values`` instead of ``value``)."""
        ...


_STATUS = re.compile(r"HTTP Status Code (\d+)")
_API_ERROR = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')


class HttpPromClient:
    """``PromClient`` over prometheus-api-client, with a timeout on every call and no retries.

    The library retries connection errors with one-second backoffs by default; retries live
    in the adapter instead, inside the read's deadline. Each thread gets its own connection.
    Answers from a Prometheus on this host come uncompressed (``Accept-Encoding: identity``):
    gzip there costs both ends CPU and saves no network.
    """

    def __init__(
        self, url: str, timeout_s: float = 2.0, headers: Mapping[str, str] | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        given = {name.lower() for name in self.headers}
        if _is_loopback(self.url) and "accept-encoding" not in given:
            self.headers["Accept-Encoding"] = "identity"
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            from prometheus_api_client.prometheus_connect import PrometheusConnect
            from urllib3.util.retry import Retry

            conn = PrometheusConnect(
                url=self.url,
                headers=self.headers,
                retry=Retry(total=0, connect=0, read=0, status=0, redirect=0),
                timeout=self.timeout_s,  # type: ignore[arg-type]  # requests takes float seconds
                method="POST",
            )
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Release every thread's HTTP connection pool."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def _call(self, fn: Callable[[], Any]) -> list[Series]:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        try:
            data = fn()
        except requests.Timeout:
            raise PromError(f"no answer within {self.timeout_s:g} s", transient=True) from None
        except requests.ConnectionError as exc:
            raise PromError(_connection_reason(exc), transient=True) from None
        except PrometheusApiClientException as exc:
            raise _status_error(str(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise PromError(
                f"the answer is not Prometheus API JSON ({type(exc).__name__})", transient=False
            ) from None
        except requests.RequestException as exc:
            raise PromError(f"{type(exc).__name__}: {exc}", transient=True) from None
        if not isinstance(data, list):
            raise PromError("the answer is not Prometheus API JSON (no result list)", False)
        return data

    def query(self, promql: str, at: float | None) -> list[Series]:
        """The result of an instant query evaluated at ``at`` (now when None)."""
        params = {} if at is None else {"time": f"{at:.3f}"}
        return self._call(lambda: self._conn().custom_query(promql, params=params))

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Series]:
        """The result of a range query (``values`` instead of ``value``)."""
        return self._call(
            lambda: self._conn().custom_query_range(
                promql,
                start_time=datetime.fromtimestamp(start, tz=UTC),
                end_time=datetime.fromtimestamp(end, tz=UTC),
                step=f"{step_s:g}",
            )
        )


def _is_loopback(url: str) -> bool:
    """Whether ``url`` names this host (localhost or a loopback address)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("No route to host", "no route to host"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed without an answer"),
    ):
        if needle in text:
            return reason
    return "cannot connect"


def _status_error(text: str) -> PromError:
    """A PromError from prometheus-api-client's non-200 exception text."""
    status_match = _STATUS.search(text)
    status = int(status_match.group(1)) if status_match else 0
    api = _API_ERROR.search(text)
    detail = f": {api.group(1)}" if api else ""
    transient = status in (408, 429) or status >= 500 or status == 0
    if status == 404:
        return PromError("HTTP 404: no Prometheus query API at this URL", transient=False)
    return PromError(f"HTTP {status}{detail}", transient=transient)


class WarnOnce:
    """Logs each distinct problem once and remembers it (bounded)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._said: set[str] = set()
        self._limit = limit

    def __call__(self, message: str, out: list[str], **fields: Any) -> None:
        """Log ``message`` and add it to ``out`` unless it was said before."""
        if message in self._said:
            return
        if len(self._said) >= self._limit:
            self._said.clear()
        self._said.add(message)
        out.append(message)
        log.warning("metrics_value_ignored", detail=message, **fields)


@dataclass
class _AppData:
    """What the answers of one read hold for one application."""

    model: str
    pairs: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    healthy: dict[tuple[str, str], float] = field(default_factory=dict)
    breakers: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    spoiled: set[tuple[tuple[str, str], str]] = field(default_factory=set)
    """(pair, signal) with an unusable part: the whole signal is dropped for the pair."""


_SUB_LABEL: dict[str, tuple[str | None, tuple[str, ...] | None]] = {
    "requests": (OUTCOME_TAG, OUTCOMES),
    "feedback": (CORRECT_TAG, BOOLEAN_VALUES),
    "shadow": (AGREED_TAG, BOOLEAN_VALUES),
    "bucket": ("le", None),
    "in_flight": (None, None),
    "fresh": (None, None),
}
"""Per pair signal: the label that splits it further and its allowed values (None: any number)."""


class PrometheusMetrics:
    """``MetricsSource`` backed by a Prometheus server that scrapes Ray's metrics."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.25,
        deadline_s: float = 5.0,
        max_pairs: int = 500,
        workers: int = 4,
        shard_apps: int = 10,
        headers: Mapping[str, str] | None = None,
        client: PromClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if timeout_s <= 0 or deadline_s <= 0:
            raise ValueError("timeout_s and deadline_s must be positive")
        if retries < 0 or backoff_s < 0 or max_pairs < 1 or workers < 1:
            raise ValueError("retries and backoff_s must be >= 0, max_pairs and workers >= 1")
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.deadline_s = deadline_s
        self.max_pairs = max_pairs
        self.shard_apps = shard_apps
        self._client = client if client is not None else HttpPromClient(url, timeout_s, headers)
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prom-query")
        self._warn = WarnOnce()
        self._last_success: dict[str, float] = {}
        self._failing = False

    def close(self) -> None:
        """Stop the query threads and release HTTP connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ port

    def check(self) -> None:
        """Fail with one clear line when ``url`` is not a reachable Prometheus."""
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise MetricsUnavailableError(f"Prometheus URL {self.url!r} is not an http(s) URL")
        try:
            self._with_retries(lambda: self._client.query("vector(1)", None))
        except PromError as exc:
            hint = " (is it running? `autoops prometheus up` starts one)" if exc.transient else ""
            raise MetricsUnavailableError(f"Prometheus at {self.url}: {exc}{hint}") from None

    def read(self, query: MetricsQuery, now: float) -> MetricsReading:
        """Instant metrics per (version, region) of one application; never raises."""
        return self.read_many((query,), now)[0]

    def read_many(self, queries: Sequence[MetricsQuery], now: float) -> list[MetricsReading]:
        """``read`` for several applications at once: one batch per distinct window set."""
        out: dict[int, MetricsReading] = {}
        groups: dict[tuple[float, tuple[int, ...]], list[int]] = {}
        for i, q in enumerate(queries):
            groups.setdefault((q.window_s, tuple(sorted(set(q.burn_windows_s)))), []).append(i)
        for (window_s, burns), members in groups.items():
            batch = [queries[i] for i in members]
            try:
                readings = self._read_batch(batch, BatchSpec((), window_s, burns), now)
            except Exception as exc:  # the port promises never to raise
                log.exception("metrics_read_failed")
                reason = f"reading metrics failed: {type(exc).__name__}: {exc}"
                readings = [self._outage(q.application, reason) for q in batch]
            out.update(zip(members, readings, strict=True))
        return [out[i] for i in range(len(queries))]

    # ------------------------------------------------------------------ range queries

    def history(
        self, query: MetricsQuery, signal: str, start: float, end: float, step_s: float
    ) -> dict[tuple[str, str], tuple[MetricSample, ...]]:
        """One signal per (version, region) over time, for detectors that need a past.

        ``signal`` is a ``VersionMetrics`` field: request_rate, error_ratio, latency_p50_ms,
        latency_p95_ms, latency_p99_ms or ongoing_requests. Raises PromError when Prometheus
        cannot answer.
        """
        promql = _history_query(query, signal)
        result = self._with_retries(lambda: self._client.query_range(promql, start, end, step_s))
        series: dict[tuple[str, str], tuple[MetricSample, ...]] = {}
        for item in result:
            labels = item.get("metric") or {}
            version, region = labels.get(TAG_VERSION), labels.get(TAG_REGION)
            if not version or not region:
                continue
            samples = []
            for stamp, text in item.get("values") or ():
                value = _number(text)
                ok = value is not None and value_problem(value) is None
                samples.append(MetricSample(float(stamp), value if ok else None))
            series[(version, region)] = tuple(samples)
        return series

    # ------------------------------------------------------------------ internals

    def _with_retries(self, call: Callable[[], list[Series]]) -> list[Series]:
        deadline = time.monotonic() + self.deadline_s
        delay = self.backoff_s
        attempt = 0
        while True:
            try:
                return call()
            except PromError as exc:
                attempt += 1
                if not exc.transient or attempt > self.retries:
                    raise
                if time.monotonic() + delay >= deadline:
                    raise
            self._sleep(delay)
            delay *= 2

    def _outage(self, application: str, reason: str) -> MetricsReading:
        return MetricsReading(
            outage=True, reason=reason, last_success_at=self._last_success.get(application)
        )

    def _query_all(
        self,
        promqls: Mapping[str, str],
        now: float,
        take: Callable[[str, list[Series]], None],
    ) -> None:
        """Run the queries side by side and hand each answer to ``take``, in ``promqls`` order.

        Each answer is taken as soon as it and those before it are in, while the rest are still
        being evaluated. The first PromError (in that order) is raised and the queries not yet
        started are cancelled.
        """
        futures = [
            (name, self._pool.submit(self._with_retries, partial(self._client.query, promql, now)))
            for name, promql in promqls.items()
        ]
        try:
            for name, future in futures:
                take(name, future.result())
        except BaseException:
            for _, future in futures:
                future.cancel()
            raise

    def _pair_counts(self, apps: tuple[str, ...], now: float) -> list[Series]:
        """The answer of the pair-count query (asked before any series is fetched)."""
        return self._with_retries(partial(self._client.query, render_pair_count(apps), now))

    def _read_batch(
        self, batch: list[MetricsQuery], spec: BatchSpec, now: float
    ) -> list[MetricsReading]:
        apps = tuple(dict.fromkeys(q.application for q in batch))
        assembly = _Assembly(batch, spec.burn_windows_s, now)
        try:
            refused = self._over_limit(self._pair_counts(apps, now))
            allowed = tuple(a for a in apps if a not in refused)
            if allowed:
                covered = replace(spec, applications=allowed)
                assembly.expect(signal_query_applications(covered, self.shard_apps))
                self._query_all(signal_queries(covered, self.shard_apps), now, assembly.take)
        except PromError as exc:
            reason = f"Prometheus at {self.url}: {exc}"
            if not self._failing:
                log.warning("metrics_outage", url=self.url, reason=str(exc))
            self._failing = True
            return [self._outage(q.application, reason) for q in batch]
        if self._failing:
            log.info("metrics_recovered", url=self.url)
        self._failing = False
        general = assembly.finish(self._warn)
        readings = []
        for i, q in enumerate(batch):
            if q.application in refused:
                reason = (
                    f"refused: application {q.application!r} reports {refused[q.application]:.0f}"
                    f" (version, region) pairs, over the limit of {self.max_pairs}; is a label "
                    "such as version or region carrying per-request values?"
                )
                log.error("metrics_query_refused", application=q.application, reason=reason)
                readings.append(self._outage(q.application, reason))
                continue
            rows, stale, said = assembly.built(i)
            for message in stale:
                self._warn(message, said)
            self._last_success[q.application] = now
            readings.append(
                MetricsReading(metrics=rows, last_success_at=now, warnings=(*general, *said))
            )
        return readings

    def _over_limit(self, counts: Iterable[Series]) -> dict[str, float]:
        """Applications that report more (version, region) pairs than ``max_pairs``."""
        over = {}
        for item in counts:
            app = (item.get("metric") or {}).get(APPLICATION_TAG, "")
            value = _sample_value(item)
            if value is not None and value > self.max_pairs:
                over[app] = value
        return over


def _fresh_pairs(
    q: MetricsQuery, app: _AppData, now: float
) -> tuple[dict[tuple[str, str], dict[str, float]], list[str]]:
    """The application's pairs with a recent ingress sample, healthy replicas attached.

    Also returns what to say about the pairs dropped as stale.
    """
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    stale: list[str] = []
    for pair, values in app.pairs.items():
        fresh = values.get("fresh")
        where = f"{q.application!r} {pair[0]}/{pair[1]}"
        if fresh is None:
            stale.append(f"{where}: no current sample (stale): dropped")
            continue
        if now - fresh > q.stale_after_s:
            stale.append(
                f"{where}: newest sample {now - fresh:.0f} s old (> {q.stale_after_s:g} s): dropped"
            )
            continue
        if pair in app.healthy:
            values["healthy"] = app.healthy[pair]
        pairs[pair] = values
    return pairs, stale


class _Assembly:
    """The rows of one read, each application's built as soon as every answer covering it is in.

    So the rows of the first applications are built while Prometheus still evaluates the
    queries of the last ones. ``take`` must get the answers in the order ``expect`` lists them.
    """

    def __init__(
        self, batch: Sequence[MetricsQuery], burn_windows_s: Sequence[int], now: float
    ) -> None:
        self.sorter = _Sorter({q.application: q.model for q in batch})
        self._batch = batch
        self._burns = burn_windows_s
        self._now = now
        self._ready: dict[str, list[str]] = {}
        self._built: dict[int, tuple[tuple[VersionMetrics, ...], list[str]]] = {}

    def expect(self, coverage: Mapping[str, Sequence[str]]) -> None:
        """Which applications each query (in answer order) covers."""
        last: dict[str, str] = {}
        for name, apps in coverage.items():
            last.update(dict.fromkeys(apps, name))
        for app, name in last.items():
            self._ready.setdefault(name, []).append(app)

    def take(self, name: str, result: list[Series]) -> None:
        """Sort one answer; build the rows of the applications it completes."""
        self.sorter.add(name, result)
        for app in self._ready.get(name, ()):
            self._build(app)

    def finish(self, warn: WarnOnce) -> list[str]:
        """Say the problems seen in the answers; the warnings no application can be blamed for."""
        return self.sorter.finish(warn)[1]

    def built(self, index: int) -> tuple[tuple[VersionMetrics, ...], list[str], list[str]]:
        """The rows of the batch's ``index``-th query, what to say of stale pairs, and where."""
        q = self._batch[index]
        if index not in self._built:
            self._build(q.application)
        rows, stale = self._built[index]
        return rows, stale, self.sorter.data[q.application].warnings

    def _build(self, application: str) -> None:
        app = self.sorter.complete(application)
        for i, q in enumerate(self._batch):
            if q.application == application and i not in self._built:
                pairs, stale = _fresh_pairs(q, app, self._now)
                rows = build_rows(q.model, q.window_s, self._burns, pairs, app.breakers)
                self._built[i] = (rows, stale)


_UNUSABLE: dict[str, float] = {}
"""Marks an (application, version, region) whose labels cannot name a pair."""
_NO_KEY = "\0"
"""Marks a sub-label value not seen yet."""


def _pair_values(app: _AppData, version: str, region: str) -> dict[str, float]:
    """The application's values for (version, region), or ``_UNUSABLE`` when no pair is so named."""
    if not _valid_pair(app.model, version, region):
        return _UNUSABLE
    return app.pairs.setdefault((version, region), {})


def _value_key(
    signal: str, split: tuple[str | None, tuple[str, ...] | None], sub: str
) -> str | None:
    """The value key of ``signal`` split by ``sub`` (None when that value is not allowed)."""
    label, allowed = split
    if label is None:
        return signal
    usable = _number(sub) is not None if allowed is None else sub in allowed
    if not usable:
        return None
    return f"{signal}/{sub}" if sub else signal


class _Sorter:
    """Sorts the answers of one read into per-application values, ignoring what is unusable.

    ``add`` takes one query's answer (so that answers are sorted while later ones are still
    being evaluated); ``finish`` says the problems seen and returns the values. The common case
    (a usable value of a pair signal) takes the short path: a fleet's answers hold tens of
    thousands of series.
    """

    def __init__(self, models: Mapping[str, str]) -> None:
        self.data = {app: _AppData(model) for app, model in models.items()}
        self.general: list[str] = []
        self._notes: list[tuple[str, list[str]]] = []
        self._pairs: dict[tuple[str, str, str], dict[str, float]] = {}
        """Each (application, version, region) seen: its values (``_UNUSABLE``: none)."""
        self._keys: dict[str, dict[str, str | None]] = {}
        """Per signal, each sub-label value seen: its value key (None: not allowed)."""

    def add(self, name: str, result: Iterable[Series]) -> None:
        """Sort one query's answer (``name`` as in ``signal_queries``)."""
        signal = name.partition("#")[0]
        split = _SUB_LABEL.get("requests" if signal.startswith("burn") else signal)
        if split is None:
            for item in result:
                labels = item.get("metric") or {}
                self._other(signal, labels, _sample_value(item), self._app(labels))
            return
        label = split[0]
        keys = self._keys.setdefault(signal, {})
        pairs = self._pairs
        inf = math.inf
        for item in result:  # the hot loop: tens of thousands of series per read
            labels = item.get("metric") or {}
            raw = item.get("value")
            # The short path: a pair and a sub-label already seen usable, and a usable value.
            values = pairs.get(
                (
                    labels.get(APPLICATION_TAG, ""),
                    labels.get(TAG_VERSION, ""),
                    labels.get(TAG_REGION, ""),
                )
            )
            key = keys.get("" if label is None else labels.get(label, ""))
            if values and key and type(raw) is list and len(raw) == 2:
                try:
                    value = float(raw[1])
                except (TypeError, ValueError):
                    value = -1.0
                if 0.0 <= value < inf:
                    values[key] = value
                    continue
            self._sort_one(signal, split, labels, _sample_value(item))

    def _sort_one(
        self,
        signal: str,
        split: tuple[str | None, tuple[str, ...] | None],
        labels: Mapping[str, str],
        value: float | None,
    ) -> None:
        """The long path of ``add`` for one series of a pair signal: checks everything."""
        name = labels.get(APPLICATION_TAG, "")
        app = self.data.get(name)
        if app is None or value is None or not 0.0 <= value < math.inf:  # NaN fails too
            self._other(signal, labels, value, app)
            return
        keys = self._keys[signal]
        sub = "" if split[0] is None else labels.get(split[0], "")
        key = keys.get(sub, _NO_KEY)
        if key is _NO_KEY:
            key = keys[sub] = _value_key(signal, split, sub)
        pair = (name, labels.get(TAG_VERSION, ""), labels.get(TAG_REGION, ""))
        values = self._pairs.get(pair)
        if values is None:
            values = self._pairs[pair] = _pair_values(app, pair[1], pair[2])
        if key is None or values is _UNUSABLE:
            self._note(f"{signal} series with unexpected labels {dict(labels)}: ignored", app)
            return
        values[key] = value

    def complete(self, application: str) -> _AppData:
        """The application's values once every answer covering it is in.

        Drops the signals spoiled by an unusable part.
        """
        app = self.data[application]
        for pair, signal in app.spoiled:
            values = app.pairs.get(pair, {})
            for key in [k for k in values if k.partition("/")[0] == signal]:
                del values[key]
        app.spoiled.clear()
        return app

    def finish(self, warn: WarnOnce) -> tuple[dict[str, _AppData], list[str]]:
        """The values per application and the warnings no application can be blamed for.

        Says each problem noted (once).
        """
        for application in self.data:
            self.complete(application)
        for message, out in self._notes:
            warn(message, out)
        return self.data, self.general

    def _note(self, message: str, app: _AppData | None) -> None:
        """A problem to say when the read succeeds (in the application's warnings if known)."""
        self._notes.append((message, app.warnings if app is not None else self.general))

    def _app(self, labels: Mapping[str, str]) -> _AppData | None:
        return self.data.get(labels.get(APPLICATION_TAG, ""))

    def _other(
        self,
        signal: str,
        labels: Mapping[str, str],
        value: float | None,
        app: _AppData | None,
    ) -> None:
        """The long path of ``add``: unusable values, healthy replicas, breakers, strays."""
        if value is None:
            self._note(f"{signal} series {dict(labels)} without a value: ignored", app)
            return
        problem = value_problem(value)
        if problem is not None:
            self._note(f"{signal} of {_describe(labels)} is {problem}: ignored", app)
            if app is not None:
                # One unusable part (an outcome, a bucket) spoils the whole signal: the rest
                # alone would give a wrong ratio or quantile.
                pair = (labels.get(TAG_VERSION, ""), labels.get(TAG_REGION, ""))
                app.spoiled.add((pair, signal))
        elif signal == "healthy":
            self._add_healthy(labels, value)
        elif signal == "breaker" and app is not None and labels.get(TAG_VERSION):
            app.breakers[labels[TAG_VERSION]] = value
        else:
            self._note(f"{signal} series with unexpected labels {dict(labels)}: ignored", app)

    def _add_healthy(self, labels: Mapping[str, str], value: float) -> None:
        version_app = labels.get(APPLICATION_TAG, "")
        parsed = parse_deployment_name(labels.get(DEPLOYMENT_TAG, ""))
        if parsed is not None:
            model, version, region = parsed
            app = self.data.get(version_app.removesuffix(NAME_SEPARATOR + version))
            if version_app.endswith(NAME_SEPARATOR + version) and app and app.model == model:
                app.healthy[(version, region)] = value
                return
        self._note(f"healthy-replica series with unexpected labels {dict(labels)}", None)


def _sample_value(item: Series) -> float | None:
    """The value of one instant-query series, or None when it has none."""
    raw = item.get("value")
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        return None
    return _number(raw[1])


def _number(text: object) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _valid_pair(model: str, version: str, region: str) -> bool:
    try:
        version_deployment_name(model, version, region)
    except ValueError:
        return False
    return True


def _describe(labels: Mapping[str, str]) -> str:
    parts = [
        repr(labels.get(APPLICATION_TAG, "")),
        "/".join(p for p in (labels.get(TAG_VERSION), labels.get(TAG_REGION)) if p),
        labels.get(DEPLOYMENT_TAG, ""),
    ]
    return " ".join(p for p in parts if p)


def _history_query(query: MetricsQuery, signal: str) -> str:
    apps = (query.application,)
    w = query.window_s
    by = f"sum by ({TAG_VERSION}, {TAG_REGION})"
    if signal == "request_rate":
        return f"{by} ({render_requests(apps, w)})"
    if signal == "error_ratio":
        total = f"{by} ({render_requests(apps, w)})"
        errors = f"{by} ({render_requests(apps, w, outcome='error')})"
        return f"({errors} or {total} * 0) / {total}"
    if signal == "ongoing_requests":
        return f"{by} ({render_in_flight(apps)})"
    for name, q in QUANTILES:
        if signal == f"latency_{name}_ms":
            return render_quantile(apps, q, w)
    raise ValueError(
        f"no history for {signal!r}; one of request_rate, error_ratio, ongoing_requests, "
        + ", ".join(f"latency_{name}_ms" for name, _ in QUANTILES)
    )

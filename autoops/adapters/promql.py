"""The serving signals the core reads: their PromQL, and how their values become metric rows.

Both metrics sources compute the same values per (application, version, region), keyed as
below, and turn them into ``VersionMetrics`` with ``build_rows``: Prometheus through the batched
PromQL rendered here, the built-in scraper from its own scrapes.

Value keys of one (application, version, region):

- ``requests/<outcome>``: requests per second that ended with ``outcome`` (ok | error)
- ``burn<W>/<outcome>``: the same over a burn-rate window of ``W`` seconds
- ``bucket/<le>``: end-to-end latency observations per second at or under ``le`` ms (the
  ingress's histogram), from which ``build_rows`` interpolates p50, p95 and p99
- ``in_flight``: requests in flight from the ingress to the version, summed over handles
- ``healthy``: healthy replicas of the version's deployment in the region
- ``feedback/<correct>``, ``shadow/<agreed>``: labelled feedback and shadow comparisons per second
- ``fresh``: when the newest sample of the ingress's series was taken (Prometheus only)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoops.adapters.histogram import bucket_quantiles
from autoops.contract import (
    BREAKER_OPEN,
    FEEDBACK,
    IN_FLIGHT,
    LATENCY_MS,
    NAME_SEPARATOR,
    REQUESTS,
    SHADOW,
    TAG_REGION,
    TAG_VERSION,
    exported_name,
)
from autoops.model import VersionMetrics

__all__ = [
    "AGREED_TAG",
    "APPLICATION_TAG",
    "BOOLEAN_VALUES",
    "BREAKER_METRIC",
    "CORRECT_TAG",
    "DEPLOYMENT_TAG",
    "FEEDBACK_METRIC",
    "HEALTHY_METRIC",
    "IN_FLIGHT_METRIC",
    "LATENCY_BUCKET_METRIC",
    "OUTCOMES",
    "OUTCOME_TAG",
    "QUANTILES",
    "REQUESTS_METRIC",
    "SHADOW_METRIC",
    "BatchSpec",
    "MetricsUnavailableError",
    "build_rows",
    "duration",
    "render_breaker",
    "render_buckets",
    "render_feedback",
    "render_freshness",
    "render_healthy",
    "render_in_flight",
    "render_pair_count",
    "render_quantile",
    "render_requests",
    "render_shadow",
    "signal_queries",
    "signal_query_applications",
    "value_problem",
]

REQUESTS_METRIC = exported_name(REQUESTS, "_total")
LATENCY_BUCKET_METRIC = exported_name(LATENCY_MS, "_bucket")
IN_FLIGHT_METRIC = exported_name(IN_FLIGHT)
FEEDBACK_METRIC = exported_name(FEEDBACK, "_total")
SHADOW_METRIC = exported_name(SHADOW, "_total")
BREAKER_METRIC = exported_name(BREAKER_OPEN)
HEALTHY_METRIC = "ray_serve_deployment_replica_healthy"
"""Serve's own gauge, tagged with the version deployment's name and its application."""

APPLICATION_TAG = "application"
DEPLOYMENT_TAG = "deployment"
OUTCOME_TAG = "outcome"
OUTCOMES = ("ok", "error")
CORRECT_TAG = "correct"
AGREED_TAG = "agreed"
BOOLEAN_VALUES = ("true", "false")

QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


class MetricsUnavailableError(RuntimeError):
    """A metrics source cannot be used; the message is one line that says why."""


# --------------------------------------------------------------------------- rendering


def duration(seconds: float) -> str:
    """A PromQL duration for ``seconds`` (``30s``, ``1500ms``)."""
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"a window must be a positive number of seconds, got {seconds}")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_REGEX_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


def _regex(value: str) -> str:
    """``value`` matched literally inside a RE2 regular expression."""
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def _apps(applications: Sequence[str]) -> str:
    """The matcher that selects the ingress series of ``applications``."""
    if not applications:
        raise ValueError("at least one application is needed")
    if len(applications) == 1:
        return f"{APPLICATION_TAG}={_quote(applications[0])}"
    return f"{APPLICATION_TAG}=~{_quote('|'.join(_regex(a) for a in applications))}"


_PAIR = f"{APPLICATION_TAG}, {TAG_VERSION}, {TAG_REGION}"


def render_requests(
    applications: Sequence[str], window_s: float, outcome: str | None = None
) -> str:
    """Requests per second per pair and outcome over the window (of one outcome if given)."""
    only = "" if outcome is None else f", {OUTCOME_TAG}={_quote(outcome)}"
    return (
        f"sum by ({_PAIR}, {OUTCOME_TAG}) "
        f"(rate({REQUESTS_METRIC}{{{_apps(applications)}{only}}}[{duration(window_s)}]))"
    )


def render_quantile(applications: Sequence[str], q: float, window_s: float) -> str:
    """The ``q`` quantile of end-to-end latency per pair over the window, ms."""
    return (
        f"histogram_quantile({q}, sum by ({_PAIR}, le) "
        f"(rate({LATENCY_BUCKET_METRIC}{{{_apps(applications)}}}[{duration(window_s)}])))"
    )


def render_buckets(applications: Sequence[str], window_s: float) -> str:
    """Latency observations per second per pair and bucket bound (``le``) over the window.

    The quantiles are interpolated from these by ``bucket_quantile`` (the same rule as
    ``histogram_quantile``): one pass over the buckets instead of one per quantile.
    """
    return (
        f"sum by ({_PAIR}, le) "
        f"(rate({LATENCY_BUCKET_METRIC}{{{_apps(applications)}}}[{duration(window_s)}]))"
    )


def render_in_flight(applications: Sequence[str]) -> str:
    """Requests in flight from the ingress to each pair, summed over ingress replicas."""
    return f"sum by ({_PAIR}) ({IN_FLIGHT_METRIC}{{{_apps(applications)}}})"


def render_feedback(applications: Sequence[str], window_s: float) -> str:
    """Labelled feedback per second per pair and correctness over the window."""
    return (
        f"sum by ({_PAIR}, {CORRECT_TAG}) "
        f"(rate({FEEDBACK_METRIC}{{{_apps(applications)}}}[{duration(window_s)}]))"
    )


def render_shadow(applications: Sequence[str], window_s: float) -> str:
    """Shadow comparisons per second per pair and agreement over the window."""
    return (
        f"sum by ({_PAIR}, {AGREED_TAG}) "
        f"(rate({SHADOW_METRIC}{{{_apps(applications)}}}[{duration(window_s)}]))"
    )


def render_breaker(applications: Sequence[str]) -> str:
    """Whether the ingress's breaker keeps traffic off each version (1) or not (0)."""
    return f"max by ({APPLICATION_TAG}, {TAG_VERSION}) ({BREAKER_METRIC}{{{_apps(applications)}}})"


def render_healthy(applications: Sequence[str]) -> str:
    """Healthy replicas per version deployment, from Serve's own gauge.

    Each version is its own Serve application ``<app>__<version>`` (contract.version_app_name)
    whose deployments are named ``<model>__<version>__<region>``.
    """
    pattern = "(" + "|".join(_regex(a) for a in applications) + ")" + NAME_SEPARATOR + ".+"
    return (
        f"sum by ({APPLICATION_TAG}, {DEPLOYMENT_TAG}) "
        f"({HEALTHY_METRIC}{{{APPLICATION_TAG}=~{_quote(pattern)}}})"
    )


def _ingress_series(applications: Sequence[str]) -> str:
    names = _quote(f"{REQUESTS_METRIC}|{IN_FLIGHT_METRIC}")
    return f"{{__name__=~{names}, {_apps(applications)}}}"


def render_freshness(applications: Sequence[str]) -> str:
    """When each pair's newest ingress sample was taken (unix seconds)."""
    return f"max by ({_PAIR}) (timestamp({_ingress_series(applications)}))"


def render_pair_count(applications: Sequence[str]) -> str:
    """How many (version, region) pairs each application's ingress reports."""
    return f"count by ({APPLICATION_TAG}) (count by ({_PAIR}) ({_ingress_series(applications)}))"


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """What one batched read covers: applications sharing one window and burn windows."""

    applications: tuple[str, ...]
    window_s: float
    burn_windows_s: tuple[int, ...] = ()


def _bucket_shards(spec: BatchSpec, shard_apps: int) -> dict[str, tuple[str, ...]]:
    """The latency-bucket queries' names and the applications each covers."""
    apps = spec.applications
    if shard_apps > 0 and len(apps) > shard_apps:
        shards = [apps[i : i + shard_apps] for i in range(0, len(apps), shard_apps)]
        return {f"bucket#{i}": shard for i, shard in enumerate(shards)}
    return {"bucket": apps}


def signal_queries(spec: BatchSpec, shard_apps: int = 0) -> dict[str, str]:
    """One query per signal, each for every application of ``spec`` (``sum by``, not per pair).

    Separate queries run side by side; one query joining them with ``or`` costs Prometheus
    more than their sum (each ``or`` rehashes everything on its left). The latency buckets,
    by far the most series, are split into queries of ``shard_apps`` applications each (when
    positive) so that Prometheus evaluates them on several cores; those are named
    ``bucket#0``, ``bucket#1``... and come last, so that a reader taking the answers in this
    order has every signal of a shard's applications once that shard's answer is in.
    """
    apps = spec.applications
    w = spec.window_s
    return {
        "requests": render_requests(apps, w),
        **{f"burn{burn}": render_requests(apps, burn) for burn in spec.burn_windows_s},
        "in_flight": render_in_flight(apps),
        "feedback": render_feedback(apps, w),
        "shadow": render_shadow(apps, w),
        "breaker": render_breaker(apps),
        "healthy": render_healthy(apps),
        "fresh": render_freshness(apps),
        **{
            name: render_buckets(shard, w)
            for name, shard in _bucket_shards(spec, shard_apps).items()
        },
    }


def signal_query_applications(spec: BatchSpec, shard_apps: int = 0) -> dict[str, tuple[str, ...]]:
    """The applications each query of ``signal_queries(spec, shard_apps)`` covers."""
    shards = _bucket_shards(spec, shard_apps)
    return {name: shards.get(name, spec.applications) for name in signal_queries(spec, shard_apps)}


# --------------------------------------------------------------------------- rows


def value_problem(value: float) -> str | None:
    """Why a value cannot be used (NaN, infinite, negative), or None when it can."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinite"
    if value < 0:
        return "negative"
    return None


_COUNTED = {"feedback": "true", "shadow": "false"}
"""Split signals whose ratio counts the share labelled so (requests and burns count errors)."""


@dataclass(slots=True)
class _Tally:
    """Totals of one pair's values, gathered in one pass."""

    totals: dict[str, float]
    parts: dict[str, float]
    plain: dict[str, float]
    buckets: list[tuple[float, float]]


_PLAIN, _BUCKET, _TOTAL, _PART, _SKIP = range(5)
_KEY_KINDS: dict[str, tuple[int, str, float]] = {}
"""What each value key seen so far is (``_key_kind``); keys are few: the signals' sub-labels."""


def _key_kind(key: str) -> tuple[int, str, float]:
    """(kind, signal, bucket bound) of a value key: plain, bucket, total, counted part or skip."""
    kind = _KEY_KINDS.get(key)
    if kind is not None:
        return kind
    signal, _, sub = key.partition("/")
    if not sub:
        kind = (_PLAIN, signal, 0.0)
    elif signal == "bucket":
        try:
            kind = (_BUCKET, signal, float(sub))
        except ValueError:
            kind = (_SKIP, signal, 0.0)
    else:
        kind = (_PART if sub == _COUNTED.get(signal, "error") else _TOTAL, signal, 0.0)
    if len(_KEY_KINDS) < 10_000:
        _KEY_KINDS[key] = kind
    return kind


def _tally(values: Mapping[str, float]) -> _Tally:
    tally = _Tally({}, {}, {}, [])
    totals, parts = tally.totals, tally.parts
    for key, value in values.items():
        kind, signal, bound = _KEY_KINDS.get(key) or _key_kind(key)
        if kind == _BUCKET:
            tally.buckets.append((bound, value))
        elif kind == _PLAIN:
            tally.plain[signal] = value
        elif kind != _SKIP:
            totals[signal] = totals.get(signal, 0.0) + value
            if kind == _PART:
                parts[signal] = parts.get(signal, 0.0) + value
    return tally


def _error_ratio(tally: _Tally, signal: str) -> tuple[float, float] | None:
    """(requests per second, error ratio) of a request signal; ratio 0 when there were none."""
    total = tally.totals.get(signal)
    if total is None:
        return None
    return total, (tally.parts.get(signal, 0.0) / total if total > 0 else 0.0)


def _ratio(tally: _Tally, signal: str) -> float | None:
    total = tally.totals.get(signal)
    if not total:
        return None
    return tally.parts.get(signal, 0.0) / total


def _quantiles(buckets: list[tuple[float, float]]) -> dict[str, float | None]:
    """p50, p95 and p99 from the latency buckets, None without observations."""
    if not buckets:
        return dict.fromkeys(_QUANTILE_NAMES)
    found = bucket_quantiles(_QUANTILE_LEVELS, buckets)
    return dict(zip(_QUANTILE_NAMES, found, strict=True))


_QUANTILE_NAMES = tuple(name for name, _ in QUANTILES)
_QUANTILE_LEVELS = tuple(q for _, q in QUANTILES)


def build_rows(
    model: str,
    window_s: float,
    burn_windows_s: Sequence[int],
    pairs: Mapping[tuple[str, str], Mapping[str, float]],
    breakers: Mapping[str, float],
) -> tuple[VersionMetrics, ...]:
    """One ``VersionMetrics`` per (version, region) of one application, sorted.

    A signal without series is None, never 0. A pair whose requests series exist but saw no
    request in the window has rate 0 and error ratio 0 (no request failed), with
    ``request_count`` 0 so that a judge knows there is nothing to judge.
    """
    rows = []
    for (version, region), values in sorted(pairs.items()):
        tally = _tally(values)
        requests = _error_ratio(tally, "requests")
        by_window: dict[int, float | None] = {}
        for burn in burn_windows_s:
            windowed = _error_ratio(tally, f"burn{burn}")
            by_window[burn] = None if windowed is None else windowed[1]
        healthy = tally.plain.get("healthy")
        quantiles = _quantiles(tally.buckets)
        breaker = breakers.get(version)
        rows.append(
            VersionMetrics(
                deployment=model,
                version=version,
                region=region,
                request_rate=None if requests is None else requests[0],
                error_ratio=None if requests is None else requests[1],
                latency_p50_ms=quantiles["p50"],
                latency_p95_ms=quantiles["p95"],
                latency_p99_ms=quantiles["p99"],
                ongoing_requests=tally.plain.get("in_flight"),
                healthy_replicas=None if healthy is None else round(healthy),
                accuracy=_ratio(tally, "feedback"),
                shadow_disagreement=_ratio(tally, "shadow"),
                breaker_open=None if breaker is None else breaker > 0,
                request_count=None if requests is None else requests[0] * window_s,
                error_ratio_by_window=by_window,
            )
        )
    return tuple(rows)

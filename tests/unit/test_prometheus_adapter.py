"""The Prometheus source on recorded answers of a real Prometheus, and on tiny local servers.

RECORDED holds what Prometheus 2.42 answered to each signal's query for application ``shop``
(model ``clf``), 16 s into a run scraped every second: v1 at 9 ok + 1 error per second, latency
half under 50 ms and 90% under 100 ms, 3 in flight, 3 of 4 feedback labels right; v2 at 4 ok +
1 error per second, its counters reset to 0 at 9 s (the ingress restarted), no latency
observations, its breaker open, shadow comparisons half in disagreement. The ingress's series
were last scraped at 1795333770.88.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from autoops.adapters.prometheus import HttpPromClient, PromError, PrometheusMetrics
from autoops.adapters.promql import (
    BatchSpec,
    MetricsUnavailableError,
    render_pair_count,
    signal_queries,
    signal_query_applications,
)
from autoops.model import VersionMetrics
from autoops.ports import MetricsQuery, MetricsReading

AT = 1795333771.205
RECORDED: dict[str, list[dict[str, Any]]] = {
    "breaker": [
        {"metric": {"application": "shop", "version": "v2"}, "value": [1795333771.205, "1"]},
    ],
    "bucket": [
        {
            "metric": {"application": "shop", "le": "+Inf", "region": "eu-west", "version": "v1"},
            "value": [1795333771.205, "9.998444444444445"],
        },
        {
            "metric": {"application": "shop", "le": "+Inf", "region": "eu-west", "version": "v2"},
            "value": [1795333771.205, "0"],
        },
        {
            "metric": {"application": "shop", "le": "100.0", "region": "eu-west", "version": "v1"},
            "value": [1795333771.205, "8.998555555555555"],
        },
        {
            "metric": {"application": "shop", "le": "100.0", "region": "eu-west", "version": "v2"},
            "value": [1795333771.205, "0"],
        },
        {
            "metric": {"application": "shop", "le": "50.0", "region": "eu-west", "version": "v1"},
            "value": [1795333771.205, "4.9991111111111115"],
        },
        {
            "metric": {"application": "shop", "le": "50.0", "region": "eu-west", "version": "v2"},
            "value": [1795333771.205, "0"],
        },
    ],
    "burn30": [
        {
            "metric": {
                "application": "shop",
                "outcome": "error",
                "region": "eu-west",
                "version": "v1",
            },
            "value": [1795333771.205, "0.36083333333333334"],
        },
        {
            "metric": {
                "application": "shop",
                "outcome": "error",
                "region": "eu-west",
                "version": "v2",
            },
            "value": [1795333771.205, "0.355493"],
        },
        {
            "metric": {
                "application": "shop",
                "outcome": "ok",
                "region": "eu-west",
                "version": "v1",
            },
            "value": [1795333771.205, "3.247644333333333"],
        },
        {
            "metric": {
                "application": "shop",
                "outcome": "ok",
                "region": "eu-west",
                "version": "v2",
            },
            "value": [1795333771.205, "1.42208025"],
        },
    ],
    "count": [
        {"metric": {"application": "shop"}, "value": [1795333771.205, "2"]},
    ],
    "feedback": [
        {
            "metric": {
                "application": "shop",
                "correct": "false",
                "region": "eu-west",
                "version": "v1",
            },
            "value": [1795333771.205, "0.999777777777778"],
        },
        {
            "metric": {
                "application": "shop",
                "correct": "true",
                "region": "eu-west",
                "version": "v1",
            },
            "value": [1795333771.205, "2.999444444444445"],
        },
    ],
    "fresh": [
        {
            "metric": {"application": "shop", "region": "eu-west", "version": "v1"},
            "value": [1795333771.205, "1795333770.88"],
        },
        {
            "metric": {"application": "shop", "region": "eu-west", "version": "v2"},
            "value": [1795333771.205, "1795333770.88"],
        },
    ],
    "healthy": [
        {
            "metric": {"application": "shop__v1", "deployment": "clf__v1__eu-west"},
            "value": [1795333771.205, "2"],
        },
        {
            "metric": {"application": "shop__v2", "deployment": "clf__v2__eu-west"},
            "value": [1795333771.205, "1"],
        },
    ],
    "in_flight": [
        {
            "metric": {"application": "shop", "region": "eu-west", "version": "v1"},
            "value": [1795333771.205, "3"],
        },
        {
            "metric": {"application": "shop", "region": "eu-west", "version": "v2"},
            "value": [1795333771.205, "1"],
        },
    ],
    "requests": [
        {
            "metric": {
                "application": "shop",
                "outcome": "error",
                "region": "eu-west",
                "version": "v1",
            },
            "value": [1795333771.205, "0.999777777777778"],
        },
        {
            "metric": {
                "application": "shop",
                "outcome": "error",
                "region": "eu-west",
                "version": "v2",
            },
            "value": [1795333771.205, "0.9833333333333336"],
        },
        {
            "metric": {
                "application": "shop",
                "outcome": "ok",
                "region": "eu-west",
                "version": "v1",
            },
            "value": [1795333771.205, "8.998555555555555"],
        },
        {
            "metric": {
                "application": "shop",
                "outcome": "ok",
                "region": "eu-west",
                "version": "v2",
            },
            "value": [1795333771.205, "3.933666666666667"],
        },
    ],
    "shadow": [
        {
            "metric": {
                "agreed": "false",
                "application": "shop",
                "region": "eu-west",
                "version": "v2",
            },
            "value": [1795333771.205, "0.999777777777778"],
        },
        {
            "metric": {
                "agreed": "true",
                "application": "shop",
                "region": "eu-west",
                "version": "v2",
            },
            "value": [1795333771.205, "0.999777777777778"],
        },
    ],
}

QUERY = MetricsQuery("shop", "clf", window_s=10.0, burn_windows_s=(30,), stale_after_s=60.0)


def queries_by_text(apps: tuple[str, ...] = ("shop",)) -> dict[str, str]:
    """The signal name of each query text the adapter sends for QUERY's window and ``apps``."""
    spec = BatchSpec(apps, QUERY.window_s, QUERY.burn_windows_s)
    named = {**signal_queries(spec), "count": render_pair_count(apps)}
    return {text: name for name, text in named.items()}


class Recorded:
    """A PromClient answering each signal's query with a (possibly edited) recorded result."""

    def __init__(
        self,
        results: dict[str, list[dict[str, Any]]] | None = None,
        failures: dict[str, list[Exception]] | None = None,
        apps: tuple[str, ...] = ("shop",),
    ) -> None:
        self.results = copy.deepcopy(RECORDED if results is None else results)
        self.failures = failures or {}
        self.names = queries_by_text(apps)
        self.calls: list[str] = []

    def query(self, promql: str, at: float | None) -> list[dict[str, Any]]:
        name = self.names.get(promql, promql)
        self.calls.append(name)
        pending = self.failures.get(name)
        if pending:
            raise pending.pop(0)
        return copy.deepcopy(self.results.get(name, []))

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Any]:
        raise AssertionError("no range queries here")


def source(client: Any, **options: Any) -> tuple[PrometheusMetrics, list[float]]:
    sleeps: list[float] = []
    return PrometheusMetrics(
        "http://prom:9090", client=client, sleep=sleeps.append, **options
    ), sleeps


def by_pair(reading: MetricsReading) -> dict[str, VersionMetrics]:
    return {row.version: row for row in reading.metrics}


def edited(name: str, version: str, value: str, **match: str) -> dict[str, list[dict[str, Any]]]:
    """RECORDED with the value of ``name``'s series of ``version`` (and labels) replaced."""
    results = copy.deepcopy(RECORDED)
    for item in results[name]:
        labels = item["metric"]
        if labels.get("version") == version and all(labels.get(k) == v for k, v in match.items()):
            item["value"][1] = value
    return results


# --------------------------------------------------------------------------- recorded answers


def test_recorded_answers_become_one_row_per_version_and_region() -> None:
    prom, _ = source(Recorded())
    reading = prom.read(QUERY, AT)
    assert not reading.outage
    assert reading.last_success_at == AT
    rows = by_pair(reading)
    assert set(rows) == {"v1", "v2"}
    v1 = rows["v1"]
    assert (v1.deployment, v1.region) == ("clf", "eu-west")
    assert v1.request_rate == pytest.approx(10.0, rel=0.01)
    assert v1.error_ratio == pytest.approx(0.1, rel=0.01)
    assert v1.request_count == pytest.approx(100.0, rel=0.01)
    assert v1.latency_p50_ms == pytest.approx(50.0, rel=0.01)
    assert v1.latency_p99_ms == pytest.approx(100.0)
    assert v1.ongoing_requests == 3.0
    assert v1.healthy_replicas == 2
    assert v1.accuracy == pytest.approx(0.75, rel=1e-3)
    assert v1.error_ratio_by_window[30] == pytest.approx(0.1, rel=0.01)
    assert v1.breaker_open is None
    assert v1.shadow_disagreement is None


def test_a_counter_reset_is_a_rate_again_not_a_negative_value_or_a_drop() -> None:
    prom, _ = source(Recorded())
    v2 = by_pair(prom.read(QUERY, AT))["v2"]
    # v2 restarted from 0 at 9 s of a 10 s window: rate() counts the new values as increase.
    assert v2.request_rate == pytest.approx(5.0, rel=0.05)
    assert v2.error_ratio == pytest.approx(0.2, rel=0.05)


def test_a_version_without_latency_observations_has_no_quantiles_and_says_nothing() -> None:
    prom, _ = source(Recorded())
    reading = prom.read(QUERY, AT)
    v2 = by_pair(reading)["v2"]
    assert (v2.latency_p50_ms, v2.latency_p95_ms, v2.latency_p99_ms) == (None, None, None)
    assert v2.breaker_open is True
    assert v2.shadow_disagreement == pytest.approx(0.5)
    assert v2.accuracy is None
    assert reading.warnings == ()


def test_an_empty_answer_is_no_rows_not_zeros_and_not_an_outage() -> None:
    prom, _ = source(Recorded({}))
    reading = prom.read(QUERY, AT)
    assert reading.metrics == ()
    assert not reading.outage
    assert reading.last_success_at == AT


BAD_VALUES = [
    ("nan", "NaN", "NaN"),
    ("inf", "+Inf", "infinite"),
    ("negative", "-3", "negative"),
]


@pytest.mark.parametrize(
    ("raw", "problem"), [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES]
)
def test_nan_inf_or_negative_gauge_values_are_ignored_and_said_once(raw: str, problem: str) -> None:
    prom, _ = source(Recorded(edited("in_flight", "v1", raw)))
    first = prom.read(QUERY, AT)
    second = prom.read(QUERY, AT + 1)
    assert by_pair(first)["v1"].ongoing_requests is None
    assert by_pair(first)["v2"].ongoing_requests == 1.0
    assert len(first.warnings) == 1
    assert "in_flight" in first.warnings[0] and problem in first.warnings[0]
    assert second.warnings == ()
    assert by_pair(second)["v1"].ongoing_requests is None


def test_one_unusable_outcome_spoils_the_rate_instead_of_giving_a_wrong_error_ratio() -> None:
    prom, _ = source(Recorded(edited("requests", "v1", "NaN", outcome="ok")))
    v1 = by_pair(prom.read(QUERY, AT))["v1"]
    assert v1.request_rate is None
    assert v1.error_ratio is None
    assert v1.error_ratio_by_window[30] is not None


def test_one_unusable_bucket_spoils_the_quantiles() -> None:
    prom, _ = source(Recorded(edited("bucket", "v1", "NaN", le="100.0")))
    v1 = by_pair(prom.read(QUERY, AT))["v1"]
    assert (v1.latency_p50_ms, v1.latency_p99_ms) == (None, None)
    assert v1.request_rate == pytest.approx(10.0, rel=0.01)


def test_a_pair_whose_newest_sample_is_older_than_the_limit_is_dropped_and_said() -> None:
    prom, _ = source(Recorded(edited("fresh", "v2", str(AT - 120))))
    reading = prom.read(QUERY, AT)
    assert set(by_pair(reading)) == {"v1"}
    assert any("v2" in w and "old" in w for w in reading.warnings)


def test_a_pair_with_no_current_sample_is_dropped_as_stale() -> None:
    results = copy.deepcopy(RECORDED)
    results["fresh"] = [s for s in results["fresh"] if s["metric"]["version"] != "v2"]
    prom, _ = source(Recorded(results))
    reading = prom.read(QUERY, AT)
    assert set(by_pair(reading)) == {"v1"}
    assert any("v2" in w and "stale" in w for w in reading.warnings)


def test_the_stale_limit_comes_from_the_query() -> None:
    prom, _ = source(Recorded(edited("fresh", "v2", str(AT - 20))))
    loose = prom.read(QUERY, AT)
    strict = prom.read(MetricsQuery("shop", "clf", 10.0, (30,), stale_after_s=5.0), AT)
    assert set(by_pair(loose)) == {"v1", "v2"}
    assert set(by_pair(strict)) == {"v1"}


UNEXPECTED = [
    (
        "no-version",
        "requests",
        {
            "metric": {"application": "shop", "region": "eu-west", "outcome": "ok"},
            "value": [AT, "5"],
        },
    ),
    (
        "unknown-outcome",
        "requests",
        {
            "metric": {"application": "shop", "version": "v1", "region": "eu-west", "outcome": "x"},
            "value": [AT, "5"],
        },
    ),
    (
        "bad-bucket-bound",
        "bucket",
        {
            "metric": {"application": "shop", "version": "v1", "region": "eu-west", "le": "big"},
            "value": [AT, "5"],
        },
    ),
    (
        "invalid-version-name",
        "in_flight",
        {
            "metric": {"application": "shop", "version": "v/1", "region": "eu-west"},
            "value": [AT, "1"],
        },
    ),
    (
        "other-model",
        "healthy",
        {
            "metric": {"application": "shop__v1", "deployment": "other__v1__eu-west"},
            "value": [AT, "4"],
        },
    ),
    (
        "not-a-version-deployment",
        "healthy",
        {"metric": {"application": "shop__v1", "deployment": "Ingress"}, "value": [AT, "4"]},
    ),
    (
        "no-value",
        "in_flight",
        {"metric": {"application": "shop", "version": "v1", "region": "eu-west"}},
    ),
]


@pytest.mark.parametrize(
    ("signal", "series"), [u[1:] for u in UNEXPECTED], ids=[u[0] for u in UNEXPECTED]
)
def test_series_with_unexpected_labels_are_ignored_and_said(
    signal: str, series: dict[str, Any]
) -> None:
    results = copy.deepcopy(RECORDED)
    results[signal].append(series)
    prom, _ = source(Recorded(results))
    reading = prom.read(QUERY, AT)
    clean = prom.read(QUERY, AT)
    assert len(reading.warnings) == 1
    assert reading.metrics == source(Recorded())[0].read(QUERY, AT).metrics
    assert clean.warnings == ()


def test_an_application_with_thousands_of_pairs_is_refused_before_its_series_are_fetched() -> None:
    client = Recorded({"count": [{"metric": {"application": "shop"}, "value": [AT, "5000"]}]})
    prom, _ = source(client, max_pairs=500)
    reading = prom.read(QUERY, AT)
    assert reading.outage
    assert reading.reason is not None
    assert "refused" in reading.reason and "5000" in reading.reason and "500" in reading.reason
    assert reading.metrics == ()
    assert client.calls == ["count"]


def test_transient_failures_are_retried_with_growing_backoff() -> None:
    error = PromError("connection refused", transient=True)
    client = Recorded(failures={"requests": [error, error]})
    prom, sleeps = source(client, retries=2, backoff_s=0.25)
    reading = prom.read(QUERY, AT)
    assert not reading.outage
    assert by_pair(reading)["v1"].request_rate == pytest.approx(10.0, rel=0.01)
    assert sleeps == [0.25, 0.5]


def test_a_permanent_failure_is_not_retried_and_becomes_an_outage() -> None:
    client = Recorded(failures={"bucket": [PromError("HTTP 400: parse error", transient=False)]})
    prom, sleeps = source(client)
    reading = prom.read(QUERY, AT)
    assert reading.outage
    assert reading.reason is not None and "parse error" in reading.reason
    assert sleeps == []


def test_a_persistent_failure_is_an_outage_with_the_last_success_and_then_recovers() -> None:
    client = Recorded()
    prom, _ = source(client, retries=1)
    assert not prom.read(QUERY, AT).outage
    down = PromError("connection refused", transient=True)
    client.failures = {"count": [down, down]}
    outage = prom.read(QUERY, AT + 5)
    assert outage.outage
    assert outage.metrics == ()
    assert outage.last_success_at == AT
    assert outage.reason is not None and "connection refused" in outage.reason
    back = prom.read(QUERY, AT + 10)
    assert not back.outage
    assert back.last_success_at == AT + 10
    assert set(by_pair(back)) == {"v1", "v2"}


def test_read_never_raises_even_when_the_client_does_something_unexpected() -> None:
    client = Recorded(failures={"requests": [RuntimeError("boom")]})
    prom, _ = source(client)
    reading = prom.read(QUERY, AT)
    assert reading.outage
    assert reading.reason is not None and "boom" in reading.reason


def test_read_many_batches_applications_that_share_a_window() -> None:
    client = Recorded(apps=("shop", "web"))
    prom, _ = source(client)
    other = MetricsQuery("web", "clf", window_s=10.0, burn_windows_s=(30,), stale_after_s=60.0)
    readings = prom.read_many([QUERY, other], AT)
    assert set(by_pair(readings[0])) == {"v1", "v2"}
    assert readings[1].metrics == ()
    assert not readings[1].outage
    # one pair count and one query per signal, not one per application
    assert len(client.calls) == 1 + len(signal_queries(BatchSpec(("a",), 10.0, (30,))))


# --------------------------------------------------------------------------- over HTTP

Handler = Callable[[str, dict[str, list[str]]], tuple[int, str]]


@contextmanager
def http_server(handle: Handler, require_bearer: str | None = None) -> Iterator[str]:
    """A loopback HTTP server answering every GET/POST with ``handle(path, form)``.

    With ``require_bearer``, a request without that bearer token gets 401 instead.
    """

    class _Handler(BaseHTTPRequestHandler):
        def _answer(self, form: dict[str, list[str]]) -> None:
            if require_bearer and self.headers.get("authorization") != f"Bearer {require_bearer}":
                status, body = 401, json.dumps({"detail": "bearer token missing"})
            else:
                status, body = handle(self.path.split("?")[0], form)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(parse_qs(self.path.partition("?")[2]))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.path.partition("?")[2])
            form.update(parse_qs(self.rfile.read(length).decode()))
            self._answer(form)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def prometheus_api(path: str, form: dict[str, list[str]]) -> tuple[int, str]:
    """Answers like Prometheus's query API, from RECORDED."""
    if path != "/api/v1/query":
        return 404, "404 page not found"
    promql = form["query"][0]
    if promql == "vector(1)":
        result: list[Any] = [{"metric": {}, "value": [AT, "1"]}]
    else:
        result = RECORDED.get(queries_by_text().get(promql, ""), [])
    return 200, json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    )


def test_over_http_a_read_gives_the_same_rows_as_the_recorded_answers() -> None:
    with http_server(prometheus_api) as url:
        prom = PrometheusMetrics(url, timeout_s=2.0)
        prom.check()
        reading = prom.read(QUERY, AT)
        prom.close()
    assert not reading.outage
    assert reading.metrics == source(Recorded())[0].read(QUERY, AT).metrics


def closed_port() -> str:
    with http_server(prometheus_api) as url:
        pass
    return url


def test_an_unreachable_server_fails_check_with_one_clear_line() -> None:
    url = closed_port()
    prom = PrometheusMetrics(url, timeout_s=1.0, retries=1, backoff_s=0.01)
    with pytest.raises(MetricsUnavailableError) as info:
        prom.check()
    message = str(info.value)
    assert "\n" not in message
    assert url in message and "connection refused" in message
    assert "autoops prometheus up" in message


def test_an_unreachable_server_gives_an_outage_within_one_read() -> None:
    prom = PrometheusMetrics(closed_port(), timeout_s=1.0, retries=1, backoff_s=0.01)
    reading = prom.read(QUERY, AT)
    assert reading.outage
    assert reading.metrics == ()
    assert reading.reason is not None and "connection refused" in reading.reason


WRONG_SERVERS = [
    ("not-found", lambda path, form: (404, "404 page not found"), "no Prometheus query API"),
    ("html", lambda path, form: (200, "<html>hello</html>"), "not Prometheus API JSON"),
    (
        "bad-query",
        lambda path, form: (400, json.dumps({"status": "error", "error": "parse error at 1"})),
        "HTTP 400: parse error at 1",
    ),
]


@pytest.mark.parametrize(
    ("handle", "expected"), [w[1:] for w in WRONG_SERVERS], ids=[w[0] for w in WRONG_SERVERS]
)
def test_a_url_that_is_not_a_prometheus_fails_check_saying_what_answered(
    handle: Handler, expected: str
) -> None:
    with http_server(handle) as url:
        prom = PrometheusMetrics(url, retries=0)
        with pytest.raises(MetricsUnavailableError, match=expected):
            prom.check()


@pytest.mark.parametrize("url", ["localhost:9090", "ftp://host", "http://"])
def test_a_url_that_is_not_http_fails_check(url: str) -> None:
    with pytest.raises(MetricsUnavailableError, match="not an http"):
        PrometheusMetrics(url).check()


def test_a_server_that_does_not_answer_in_time_is_a_timeout_not_a_hang() -> None:
    release = threading.Event()

    def stuck(path: str, form: dict[str, list[str]]) -> tuple[int, str]:
        release.wait(10)
        return 200, "{}"

    with http_server(stuck) as url:
        client = HttpPromClient(url, timeout_s=0.2)
        try:
            with pytest.raises(PromError, match=r"no answer within 0\.2 s") as info:
                client.query("vector(1)", None)
            assert info.value.transient
        finally:
            release.set()
            client.close()


def test_history_gives_samples_per_pair_and_none_for_unusable_values() -> None:
    class Ranged(Recorded):
        def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Any]:
            self.calls.append(promql)
            labels = {"version": "v1", "region": "eu-west"}
            return [{"metric": labels, "values": [[1.0, "2"], [2.0, "NaN"], [3.0, "-1"]]}]

    client = Ranged()
    prom, _ = source(client)
    series = prom.history(QUERY, "error_ratio", 0.0, 3.0, 1.0)
    assert [s.value for s in series[("v1", "eu-west")]] == [2.0, None, None]
    assert 'outcome="error"' in client.calls[0]
    with pytest.raises(ValueError, match="no history"):
        prom.history(QUERY, "accuracy", 0.0, 3.0, 1.0)


# --------------------------------------------------------------------------- answers side by side


def relabelled(app: str, scale: float) -> dict[str, list[dict[str, Any]]]:
    """RECORDED for application ``app``, every rate and gauge times ``scale``."""
    results = copy.deepcopy(RECORDED)
    for name, series in results.items():
        for item in series:
            labels = item["metric"]
            labels["application"] = labels["application"].replace("shop", app)
            if name not in ("fresh", "count", "breaker", "healthy"):
                item["value"][1] = str(float(item["value"][1]) * scale)
    return results


TWO_APPS = ("shop", "web")


class Sharded:
    """A PromClient for several applications that answers each query from its own series.

    With ``hold_first``, the first signal query asked answers only once every other query has
    been asked, so that its answer comes in after theirs.
    """

    def __init__(self, shard_apps: int, hold_first: bool = False) -> None:
        per_app = {"shop": relabelled("shop", 1.0), "web": relabelled("web", 3.0)}
        spec = BatchSpec(TWO_APPS, QUERY.window_s, QUERY.burn_windows_s)
        texts = signal_queries(spec, shard_apps)
        covers = signal_query_applications(spec, shard_apps)
        self.answers = {
            text: [s for app in covers[name] for s in per_app[app][name.partition("#")[0]]]
            for name, text in texts.items()
        }
        self.answers[render_pair_count(TWO_APPS)] = [
            {"metric": {"application": app}, "value": [AT, "2"]} for app in TWO_APPS
        ]
        self.expected = len(texts)
        self.hold_first = hold_first
        self.asked: list[str] = []
        self.answered: list[str] = []
        self._lock = threading.Lock()
        self._all_asked = threading.Event()

    def query(self, promql: str, at: float | None) -> list[dict[str, Any]]:
        with self._lock:
            self.asked.append(promql)
            signal_queries_asked = len(self.asked) - 1
            first = signal_queries_asked == 1
            if signal_queries_asked == self.expected:
                self._all_asked.set()
        if self.hold_first and first:
            assert self._all_asked.wait(10), "the other queries were not asked side by side"
        with self._lock:
            self.answered.append(promql)
        return copy.deepcopy(self.answers[promql])

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Any]:
        raise AssertionError("no range queries here")


def test_answers_coming_in_out_of_order_give_the_same_rows_as_one_query_per_signal() -> None:
    web = MetricsQuery("web", "clf", window_s=10.0, burn_windows_s=(30,), stale_after_s=60.0)
    plain = source(Sharded(shard_apps=0))[0].read_many([QUERY, web], AT)
    client = Sharded(shard_apps=1, hold_first=True)
    prom, _ = source(client, shard_apps=1, workers=4)
    readings = prom.read_many([QUERY, web], AT)
    prom.close()
    assert client.answered != client.asked  # the first signal query's answer came in last
    assert client.answered[-1] == client.asked[1]
    assert readings == plain
    shop, other = (by_pair(r)["v1"] for r in readings)
    assert shop.request_rate == pytest.approx(10.0, rel=0.01)
    assert other.request_rate == pytest.approx(30.0, rel=0.01)
    assert shop.latency_p50_ms == other.latency_p50_ms == pytest.approx(50.0, rel=0.01)
    assert (shop.healthy_replicas, other.healthy_replicas) == (2, 2)


def test_an_empty_answer_among_answers_side_by_side_is_none_not_zero() -> None:
    results = copy.deepcopy(RECORDED)
    results["in_flight"] = []
    results["feedback"] = []
    reading = source(Recorded(results), workers=4)[0].read(QUERY, AT)
    assert not reading.outage
    v1 = by_pair(reading)["v1"]
    assert v1.ongoing_requests is None
    assert v1.accuracy is None
    assert v1.request_rate == pytest.approx(10.0, rel=0.01)


def test_a_failing_last_answer_is_an_outage_and_earlier_answers_problems_are_said_later() -> None:
    results = copy.deepcopy(RECORDED)
    results["requests"].append(UNEXPECTED[1][2])  # an unknown outcome: said once, ignored
    down = PromError("connection refused", transient=True)
    client = Recorded(results, failures={"bucket": [down, down]})
    prom, _ = source(client, retries=1)
    outage = prom.read(QUERY, AT)
    assert outage.outage
    assert outage.metrics == ()
    assert outage.reason is not None and "connection refused" in outage.reason
    assert client.calls.index("requests") < client.calls.index("bucket")
    back = prom.read(QUERY, AT + 1)
    assert not back.outage
    assert set(by_pair(back)) == {"v1", "v2"}
    assert len(back.warnings) == 1 and "unexpected labels" in back.warnings[0]


def test_a_prometheus_on_this_host_is_asked_for_uncompressed_answers() -> None:
    seen: list[str | None] = []

    class _Headers(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("Accept-Encoding"))
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Headers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        for url in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            client = HttpPromClient(url, timeout_s=2.0)
            assert client.query("vector(1)", None) == []
            client.close()
        chosen = HttpPromClient(f"http://127.0.0.1:{port}", headers={"accept-encoding": "gzip"})
        chosen.query("vector(1)", None)
        chosen.close()
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["identity", "identity", "gzip"]
    assert "Accept-Encoding" not in HttpPromClient("http://prometheus.example:9090").headers

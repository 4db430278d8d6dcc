"""Observe on the real parts: the serving stack on Ray Serve, a real Prometheus, the scraper.

One stack (conftest.py), one Prometheus scraping it every second through Ray's discovery file,
and one built-in scraper on the same file, shared by the module. Ray reports metrics every
second. The truth is what the load generator's client saw.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from autoops.adapters.prometheus import PrometheusMetrics
from autoops.adapters.prometheus_server import PrometheusServer, prometheus_config
from autoops.adapters.samples import HttpSampleSource
from autoops.adapters.scrape import BuiltinScraper
from autoops.contract import LATENCY_BOUNDARIES_MS, RoutingTable
from autoops.model import VersionMetrics
from autoops.ports import MetricsQuery, MetricsReading, MetricsSource
from serve_apps.loadgen import LoadConfig, LoadReport, run_load_sync
from tests.integration.conftest import CANDIDATE, CENTRAL, SMALL, STABLE, TEST_DEPLOYMENTS, WEST
from tests.integration.prom import (
    instant,
    metrics_target_up,
    prometheus_for_ray,
    ray_session_sd_file,
    require_prometheus,
)
from tests.integration.serve_stack import ServeStack, wait_for

pytestmark = pytest.mark.integration

APP = "digits"
WINDOW_S = 40.0
QUERY = MetricsQuery(APP, APP, window_s=WINDOW_S, stale_after_s=30.0)
"""The model is named like the application in the test stack."""
MEASURED = 200
"""Requests of the measured phase, all pinned to the candidate in WEST."""
RATE_PER_S = 10.0
ERROR_RATE = 0.2
EXTRA_LATENCY_MS = 250.0
"""Large enough that the candidate's own time, not the proxy's jitter, sets its latency."""


def metrics_port(stack: ServeStack) -> int:
    """The port of the stack's Ray metrics agent."""
    return int(stack.metrics_url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def prom(stack: ServeStack) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the stack's Ray every second."""
    with prometheus_for_ray(ray_session_sd_file(), metrics_port(stack)) as server:
        yield server


@pytest.fixture(scope="module")
def scraper(stack: ServeStack) -> Iterator[BuiltinScraper]:
    """The built-in scraper on the same discovery file, scraping every second."""
    source = BuiltinScraper(sd_file=ray_session_sd_file(), interval_s=1.0)
    source.check()
    source.start()
    yield source
    source.stop()


@pytest.fixture(scope="module")
def prom_source(prom: PrometheusServer) -> Iterator[PrometheusMetrics]:
    source = PrometheusMetrics(prom.url, timeout_s=2.0, retries=2, backoff_s=0.25)
    source.check()
    yield source
    source.close()


def table(**changes: Any) -> RoutingTable:
    """All traffic to the stable version unless pinned by header; breaker off (errors stay put)."""
    data: dict[str, Any] = {
        "model": APP,
        "stable_version": STABLE,
        "weights": {STABLE: 1.0},
        "region_weights": {WEST: 1.0, CENTRAL: 1.0},
        "deployments": {v: sorted(r) for v, r in TEST_DEPLOYMENTS.items()},
        "cascade": {"enabled": False, "small_version": SMALL},
        "breaker": {"enabled": False},
        **changes,
    }
    return RoutingTable.model_validate(data)


def load(stack: ServeStack, requests: int, rate_per_s: float) -> LoadReport:
    """Requests pinned to the candidate, at a steady rate, keeping every exchange."""
    config = LoadConfig(
        url=stack.http_url,
        requests=requests,
        max_seconds=120.0,
        concurrency=8,
        rate_per_s=rate_per_s,
        feedback_fraction=0.0,
        token=stack.inference_token,
        header_version=CANDIDATE,
    )
    return run_load_sync(config, keep_exchanges=True)


def candidate(reading: MetricsReading) -> VersionMetrics | None:
    rows = [r for r in reading.metrics if (r.version, r.region) == (CANDIDATE, WEST)]
    return rows[0] if rows else None


def read_both(sources: dict[str, MetricsSource]) -> dict[str, VersionMetrics | None]:
    now = time.time()
    return {name: candidate(source.read(QUERY, now)) for name, source in sources.items()}


def bucket(latency_ms: float) -> int:
    """The index of the histogram bucket that holds ``latency_ms``."""
    return bisect_left(LATENCY_BOUNDARIES_MS, latency_ms)


def test_a_local_prometheus_starts_on_a_free_port_restarts_with_its_data_and_cleans_up() -> None:
    require_prometheus()
    server = PrometheusServer(prometheus_config((), controller_targets=("127.0.0.1:1",)))
    work = server.work_dir
    try:
        url = server.start()
        assert httpx.get(f"{url}/-/ready", timeout=5).status_code == 200
        server.stop()
        assert not server.running
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/-/ready", timeout=2)
        assert server.restart() == url
        assert httpx.get(f"{url}/-/ready", timeout=5).status_code == 200
        assert (work / "data").is_dir()
    finally:
        server.close()
    assert not work.exists()


def test_prometheus_scrapes_the_ray_cluster_through_its_discovery_file(
    stack: ServeStack, prom: PrometheusServer, scraper: BuiltinScraper
) -> None:
    assert metrics_target_up(prom.url, metrics_port(stack))
    assert any(t.endswith(f":{metrics_port(stack)}") for t in scraper.targets())
    wait_for(
        lambda: instant(prom.url, 'ray_serve_deployment_replica_healthy{application=~"digits.*"}'),
        60,
        "Serve's replica health in Prometheus",
    )


def test_rate_error_ratio_and_p99_match_the_client_and_the_scraper_agrees_with_prometheus(
    stack: ServeStack, prom_source: PrometheusMetrics, scraper: BuiltinScraper
) -> None:
    stack.set_routing(
        table(faults={CANDIDATE: {"error_rate": ERROR_RATE, "extra_latency_ms": EXTRA_LATENCY_MS}})
    )
    sources: dict[str, MetricsSource] = {"prometheus": prom_source, "scraper": scraper}

    # Warm up until both sources see the candidate's errors grow: a counter's first sample
    # (the series appearing) is never counted as an increase.
    def errors_seen() -> bool:
        load(stack, 10, 20)
        rows = read_both(sources).values()
        return all(r is not None and (r.error_ratio or 0) > 0 for r in rows)

    wait_for(errors_seen, 180, "the candidate's errors in both sources", interval_s=0.5)
    # Let the warm-up leave the window, so that it holds only the measured requests.
    wait_for(
        lambda: all(r is not None and r.request_rate == 0.0 for r in read_both(sources).values()),
        WINDOW_S + 60,
        "the warm-up to leave the window",
        interval_s=1.0,
    )

    report = load(stack, MEASURED, rate_per_s=RATE_PER_S)
    assert report.ok == report.sent == MEASURED
    fallbacks = [e.response.path == "breaker_fallback" for e in report.exchanges]
    truth_ratio = sum(fallbacks) / MEASURED
    # The candidate's latency as the client saw it: the requests it answered itself (a failed
    # one also waited for the stable version, which the candidate's histogram does not see).
    answered = [
        e.latency_ms for e, fell in zip(report.exchanges, fallbacks, strict=True) if not fell
    ]
    client_p99 = float(np.percentile(answered, 99))

    def counted() -> dict[str, VersionMetrics] | None:
        rows = read_both(sources)
        done = all(
            r is not None and (r.request_count or 0) >= 0.97 * MEASURED for r in rows.values()
        )
        return {k: v for k, v in rows.items() if v is not None} if done else None

    rows = wait_for(counted, 30, "the measured requests in both sources", interval_s=0.5)
    for name, row in rows.items():
        assert row.request_count is not None and row.request_rate is not None
        assert 0.97 * MEASURED <= row.request_count <= 1.1 * MEASURED, name
        assert row.request_rate == pytest.approx(MEASURED / WINDOW_S, rel=0.1), name
        assert row.error_ratio == pytest.approx(truth_ratio, abs=0.03), name
        assert row.latency_p99_ms is not None, name
        assert abs(bucket(row.latency_p99_ms) - bucket(client_p99)) <= 1, (
            name,
            row.latency_p99_ms,
            client_p99,
        )
    p, s = rows["prometheus"], rows["scraper"]
    assert s.request_rate == pytest.approx(p.request_rate, rel=0.1)
    assert s.error_ratio == pytest.approx(p.error_ratio, abs=0.03)
    assert abs(bucket(s.latency_p99_ms or 0) - bucket(p.latency_p99_ms or 0)) <= 1
    assert s.ongoing_requests is not None and p.ongoing_requests is not None
    assert s.healthy_replicas == p.healthy_replicas == 1


def test_prometheus_stopped_is_an_outage_within_one_read_and_restarted_it_recovers(
    stack: ServeStack, prom: PrometheusServer, prom_source: PrometheusMetrics
) -> None:
    wait_for(
        lambda: candidate(prom_source.read(QUERY, time.time())),
        60,
        "a row for the candidate",
    )
    prom.stop()
    try:
        reading = prom_source.read(QUERY, time.time())
        assert reading.outage
        assert reading.metrics == ()
        assert reading.reason is not None and prom.url in reading.reason
        assert reading.last_success_at is not None
    finally:
        prom.start()

    def recovered() -> VersionMetrics | None:
        reading = prom_source.read(QUERY, time.time())
        row = None if reading.outage else candidate(reading)
        return row if row is not None and row.request_rate is not None else None

    wait_for(recovered, 90, "Prometheus to answer again after its restart", interval_s=1.0)


def test_samples_of_a_version_come_from_the_ingress_admin_route(stack: ServeStack) -> None:
    load(stack, 5, 20)
    source = HttpSampleSource(stack.http_url, stack.admin_token)
    try:
        records = wait_for(lambda: source.samples(CANDIDATE, 5), 30, "the candidate's samples")
    finally:
        source.close()
    assert 1 <= len(records) <= 5
    assert {r.version for r in records} == {CANDIDATE}
    assert all(len(r.inputs) > 0 for r in records)

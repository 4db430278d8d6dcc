"""``autoops bench observe``: time to build one full metrics snapshot of a fleet.

A synthetic fleet (applications x versions x regions, Ray-style labels) is served on a local
exposition endpoint. A real local Prometheus scrapes it every second, and so does the built-in
scraper; the benchmark then times ``read_many`` over every application from each source.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from autoops.adapters.promql import (
    BREAKER_METRIC,
    FEEDBACK_METRIC,
    HEALTHY_METRIC,
    IN_FLIGHT_METRIC,
    LATENCY_BUCKET_METRIC,
    REQUESTS_METRIC,
    SHADOW_METRIC,
)
from autoops.bench.common import BenchResult, machine_info, summarize
from autoops.contract import (
    LATENCY_BOUNDARIES_MS,
    LATENCY_MS,
    exported_name,
    version_app_name,
    version_deployment_name,
)
from autoops.ports import MetricsQuery, MetricsReading

__all__ = [
    "ObserveBenchConfig",
    "SyntheticFleet",
    "exposition_server",
    "run_observe_bench",
]

_RAY_LABELS = (
    'Component="core_worker",NodeAddress="10.0.0.1",SessionName="session_2026_bench",'
    'Version="2.60.0",WorkerId="{worker}",deployment="{deployment}",'
    'otel_scope_name="ray._private.telemetry.open_telemetry_metric_recorder",'
    'otel_scope_schema_url="",otel_scope_version="",replica="{replica}"'
)

# Share of requests at or under each latency bound (cumulative), the same for every pair.
_LATENCY_CDF = (
    0.0, 0.0, 0.02, 0.2, 0.45, 0.65, 0.85, 0.95, 0.98, 0.991, 0.997, 0.999,
    0.9995, 0.9998, 0.9999, 0.99995, 1.0, 1.0, 1.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ObserveBenchConfig:
    """Size of the synthetic fleet and how the sources are timed."""

    applications: int = 50
    versions: int = 3
    regions: int = 4
    scrape_interval_s: float = 1.0
    window_s: float = 10.0
    warmup_s: float = 12.0
    repeats: int = 20


@dataclass(frozen=True, slots=True)
class SyntheticFleet:
    """Counters that grow at known rates for every (application, version, region)."""

    applications: int = 50
    versions: int = 3
    regions: int = 4
    model: str = "model"
    base_rate: float = 10.0
    error_share: float = 0.01
    started_at: float = 0.0

    def names(self) -> list[str]:
        """The applications' names."""
        return [f"app-{i}" for i in range(self.applications)]

    def version_names(self) -> list[str]:
        """The versions' names."""
        return [f"v{i + 1}" for i in range(self.versions)]

    def region_names(self) -> list[str]:
        """The regions' names."""
        return [f"region-{i}" for i in range(self.regions)]

    def rate(self, app_index: int, version_index: int, region_index: int) -> float:
        """Requests per second of one pair (distinct per pair, known to the tests)."""
        return self.base_rate * (1 + version_index) + region_index + app_index % 7

    def queries(self, window_s: float) -> list[MetricsQuery]:
        """One query per application."""
        return [MetricsQuery(app, self.model, window_s=window_s) for app in self.names()]

    def exposition(self, now: float) -> str:
        """The text exposition at ``now``: counters at rate x elapsed, gauges constant."""
        elapsed = max(0.0, now - self.started_at)
        req: list[str] = [
            f"# HELP {REQUESTS_METRIC} ",
            f"# TYPE {REQUESTS_METRIC} counter",
        ]
        hist_name = exported_name(LATENCY_MS)
        lat: list[str] = [f"# HELP {hist_name} ", f"# TYPE {hist_name} histogram"]
        fly: list[str] = [f"# HELP {IN_FLIGHT_METRIC} ", f"# TYPE {IN_FLIGHT_METRIC} gauge"]
        fb: list[str] = [f"# HELP {FEEDBACK_METRIC} ", f"# TYPE {FEEDBACK_METRIC} counter"]
        sh: list[str] = [f"# HELP {SHADOW_METRIC} ", f"# TYPE {SHADOW_METRIC} counter"]
        brk: list[str] = [f"# HELP {BREAKER_METRIC} ", f"# TYPE {BREAKER_METRIC} gauge"]
        hl: list[str] = [f"# HELP {HEALTHY_METRIC} ", f"# TYPE {HEALTHY_METRIC} gauge"]
        bounds = [f"{float(b)}" for b in LATENCY_BOUNDARIES_MS]
        for a, app in enumerate(self.names()):
            ingress = _RAY_LABELS.format(worker=f"w{a:056d}", deployment="Ingress", replica=f"r{a}")
            for v, version in enumerate(self.version_names()):
                base = f'{ingress},application="{app}"'
                brk.append(f'{BREAKER_METRIC}{{{base},version="{version}"}} 0.0')
                for r, region in enumerate(self.region_names()):
                    count = self.rate(a, v, r) * elapsed
                    errors = count * self.error_share
                    pair = f'{base},region="{region}",version="{version}"'
                    req.append(f'{REQUESTS_METRIC}{{{pair},outcome="ok"}} {count - errors:.1f}')
                    req.append(f'{REQUESTS_METRIC}{{{pair},outcome="error"}} {errors:.1f}')
                    for bound, share in zip(bounds, _LATENCY_CDF, strict=True):
                        lat.append(
                            f'{LATENCY_BUCKET_METRIC}{{{pair},le="{bound}"}} {count * share:.1f}'
                        )
                    lat.append(f'{LATENCY_BUCKET_METRIC}{{{pair},le="+Inf"}} {count:.1f}')
                    lat.append(f"{hist_name}_count{{{pair}}} {count:.1f}")
                    lat.append(f"{hist_name}_sum{{{pair}}} {count * 20:.1f}")
                    fly.append(f"{IN_FLIGHT_METRIC}{{{pair}}} {1 + v}.0")
                    fb.append(f'{FEEDBACK_METRIC}{{{pair},correct="true"}} {count * 0.1:.1f}')
                    sh.append(f'{SHADOW_METRIC}{{{pair},agreed="true"}} {count * 0.05:.1f}')
                    deployment = version_deployment_name(self.model, version, region)
                    labels = _RAY_LABELS.format(
                        worker="c" * 56, deployment=deployment, replica=f"r{a}{v}{r}"
                    )
                    owner = version_app_name(app, version)
                    hl.append(f'{HEALTHY_METRIC}{{{labels},application="{owner}"}} 2.0')
        return "\n".join([*req, *lat, *fly, *fb, *sh, *brk, *hl]) + "\n"


class _Handler(BaseHTTPRequestHandler):
    source: Callable[[float], str]

    def do_GET(self) -> None:
        """Serve the exposition at the current time."""
        body = type(self).source(time.time()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""


@contextmanager
def exposition_server(source: Callable[[float], str]) -> Iterator[str]:
    """Serve ``source(now)`` on a loopback port; yields ``host:port``."""
    handler = type("Handler", (_Handler,), {"source": staticmethod(source)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="exposition", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _serve_forever(fleet: SyntheticFleet, ready: Any) -> None:
    """The child process: serve the fleet's exposition until killed."""
    with exposition_server(fleet.exposition) as target:
        ready.put(target)
        threading.Event().wait()


@contextmanager
def _fleet_endpoint(fleet: SyntheticFleet) -> Iterator[str]:
    """Serve ``fleet`` from a child process (so that rendering it never holds our GIL)."""
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    process = context.Process(target=_serve_forever, args=(fleet, ready), daemon=True)
    process.start()
    try:
        yield str(ready.get(timeout=120))
    finally:
        process.kill()
        process.join(timeout=10)


def _max_rate_error(fleet: SyntheticFleet, readings: list[MetricsReading]) -> float | None:
    """The largest relative error of a request rate against the fleet's truth."""
    worst = 0.0
    names = fleet.version_names(), fleet.region_names()
    for a, reading in enumerate(readings):
        for row in reading.metrics:
            v, r = names[0].index(row.version), names[1].index(row.region)
            if row.request_rate is None:
                return None
            truth = fleet.rate(a, v, r)
            worst = max(worst, abs(row.request_rate - truth) / truth)
    return worst


def _wait_full(
    read: Callable[[], list[MetricsReading]], fleet: SyntheticFleet, timeout_s: float
) -> None:
    """Wait until every pair reads within 5% of the truth (a full window of scrapes)."""
    deadline = time.monotonic() + timeout_s
    expected = fleet.applications * fleet.versions * fleet.regions
    while time.monotonic() < deadline:
        readings = read()
        error = _max_rate_error(fleet, readings)
        if sum(len(r.metrics) for r in readings) == expected and error is not None and error < 0.05:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the sources did not read the whole fleet within {timeout_s:g} s")


def run_observe_bench(
    config: ObserveBenchConfig | None = None, progress: Callable[[str], None] | None = None
) -> BenchResult:
    """Time one full snapshot of the fleet from a real Prometheus and from the built-in scraper."""
    from autoops.adapters.prometheus import PrometheusMetrics
    from autoops.adapters.prometheus_server import PrometheusServer, prometheus_config
    from autoops.adapters.scrape import BuiltinScraper

    cfg = config or ObserveBenchConfig()
    say = progress or (lambda message: None)
    fleet = SyntheticFleet(cfg.applications, cfg.versions, cfg.regions, started_at=time.time())
    queries = fleet.queries(cfg.window_s)
    say("starting the synthetic fleet's endpoint")
    with _fleet_endpoint(fleet) as target:
        text = prometheus_config(
            static_ray_targets=[target],
            controller_targets=(),
            scrape_interval_s=cfg.scrape_interval_s,
        )
        say("starting Prometheus and the built-in scraper")
        # One source at a time, so that neither's work slows the other's timing.
        with PrometheusServer(text) as server:
            prom = PrometheusMetrics(server.url, timeout_s=10.0, deadline_s=30.0)
            try:
                say("Prometheus: waiting for a full window of scrapes")
                _wait_full(lambda: prom.read_many(queries, time.time()), fleet, cfg.warmup_s + 120)
                say("Prometheus: timing snapshots")
                prom_runs = _timed(lambda: prom.read_many(queries, time.time()), cfg.repeats)
                per_app = _timed(
                    lambda: [prom.read(q, time.time()) for q in queries], max(3, cfg.repeats // 4)
                )
                prom_error = _max_rate_error(fleet, prom.read_many(queries, time.time()))
                scrape_s = _scrape_duration(server.url)
            finally:
                prom.close()
        scraper = BuiltinScraper([target], interval_s=cfg.scrape_interval_s, timeout_s=10.0)
        scraper.start()
        try:
            say("built-in scraper: waiting for a full window of scrapes")
            _wait_full(lambda: scraper.read_many(queries, time.time()), fleet, cfg.warmup_s + 120)
            say("built-in scraper: timing snapshots")
            scraper_runs = _timed(lambda: scraper.read_many(queries, time.time()), cfg.repeats)
            scraper_error = _max_rate_error(fleet, scraper.read_many(queries, time.time()))
        finally:
            scraper.stop()
        scrape_runs = _timed(lambda: scraper.scrape(), 5)
    prom_stats, scraper_stats = summarize(prom_runs), summarize(scraper_runs)
    pairs = cfg.applications * cfg.versions * cfg.regions
    return BenchResult(
        name="observe",
        config={
            "applications": cfg.applications,
            "versions": cfg.versions,
            "regions": cfg.regions,
            "pairs": pairs,
            "latency_buckets": len(LATENCY_BOUNDARIES_MS) + 1,
            "window_s": cfg.window_s,
            "scrape_interval_s": cfg.scrape_interval_s,
            "repeats": cfg.repeats,
            "source": "synthetic Ray-style exposition served locally, scraped by both sources",
        },
        machine=machine_info(),
        results={
            "prometheus_snapshot_ms": prom_stats,
            "prometheus_one_read_per_application_ms": summarize(per_app),
            "scraper_snapshot_ms": scraper_stats,
            "scraper_one_scrape_ms": summarize(scrape_runs),
            "prometheus_scrape_duration_s": scrape_s,
            "max_rate_error_vs_truth": {"prometheus": prom_error, "scraper": scraper_error},
            "goal_prometheus_median_ms": 200.0,
            "goal_scraper_median_ms": 50.0,
            "goal_met": {
                "prometheus": prom_stats["median_ms"] <= 200.0,
                "scraper": scraper_stats["median_ms"] <= 50.0,
            },
        },
        anchors={
            "ray_metrics_report_interval_s": 10.0,
            "ray_metrics_report_interval_note": "Ray's default; tests and the demo set 1 s",
            "flagger": "Flagger runs one PromQL query per metric check per canary per interval",
        },
    )


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _scrape_duration(url: str) -> float | None:
    """How long Prometheus's last scrape of the fleet took, seconds."""
    import httpx

    try:
        answer = httpx.get(
            f"{url}/api/v1/query", params={"query": 'scrape_duration_seconds{job="ray"}'}, timeout=5
        ).json()
        return float(answer["data"]["result"][0]["value"][1])
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        return None

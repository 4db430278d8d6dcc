"""The built-in scraper on scripted expositions: deltas, resets, staleness, outages, the buffer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autoops.adapters.histogram import bucket_quantiles
from autoops.adapters.promql import MetricsUnavailableError
from autoops.adapters.scrape import BuiltinScraper, targets_from_sd_file
from autoops.model import VersionMetrics
from autoops.ports import MetricsQuery, MetricsReading

RAY = 'Component="core_worker",WorkerId="w1",application="shop",deployment="Ingress"'
TARGET = "10.0.0.1:8080"
QUERY = MetricsQuery("shop", "clf", window_s=10.0, stale_after_s=30.0)


def pair(version: str = "v1", region: str = "eu-west", replica: str = "r1") -> str:
    return f'{RAY},replica="{replica}",version="{version}",region="{region}"'


def requests(ok: float, error: float | None = None, **where: str) -> list[str]:
    lines = [f'ray_autoops_requests_total{{{pair(**where)},outcome="ok"}} {ok}']
    if error is not None:
        lines.append(f'ray_autoops_requests_total{{{pair(**where)},outcome="error"}} {error}')
    return lines


def exposition(*groups: list[str]) -> str:
    """A Ray-like exposition: headers, our lines, and unrelated families around them."""
    body = [line for group in groups for line in group]
    return "\n".join(
        [
            "# HELP python_gc_objects_collected_total Objects collected during gc",
            "# TYPE python_gc_objects_collected_total counter",
            'python_gc_objects_collected_total{generation="0"} 2630.0',
            "# TYPE ray_autoops_requests_total counter",
            *body,
            "# TYPE ray_node_cpu_utilization gauge",
            'ray_node_cpu_utilization{NodeAddress="10.0.0.1"} 12.5',
        ]
    )


class Script:
    """A fetch that answers each target with the text set for it (or raises)."""

    def __init__(self) -> None:
        self.texts: dict[str, str | Exception] = {}
        self.calls = 0

    def __call__(self, target: str) -> str:
        self.calls += 1
        answer = self.texts.get(target, ConnectionError("connection refused"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def scraper(script: Script, **options: Any) -> BuiltinScraper:
    return BuiltinScraper([TARGET], fetch=script, **options)


def feed(
    scraper_: BuiltinScraper,
    script: Script,
    times: range | list[float],
    text: Callable[[float], str],
) -> None:
    for t in times:
        script.texts[TARGET] = text(float(t))
        assert scraper_.scrape(now=float(t))


def rows(reading: MetricsReading) -> dict[tuple[str, str], VersionMetrics]:
    return {(r.version, r.region): r for r in reading.metrics}


def test_rates_and_error_ratio_come_from_counter_deltas_over_the_window() -> None:
    script = Script()
    s = scraper(script)
    feed(s, script, range(0, 21), lambda t: exposition(requests(9 * t, 1 * t)))
    reading = s.read(QUERY, 20.0)
    row = rows(reading)[("v1", "eu-west")]
    assert not reading.outage
    assert row.request_rate == pytest.approx(10.0)
    assert row.error_ratio == pytest.approx(0.1)
    assert row.request_count == pytest.approx(100.0)
    assert row.deployment == "clf"


def test_a_counter_reset_counts_the_new_value_as_increase() -> None:
    script = Script()
    s = scraper(script)
    values = [0, 10, 20, 30, 5, 15]  # the ingress restarted between 3 s and 4 s
    feed(s, script, range(6), lambda t: exposition(requests(values[int(t)])))
    row = rows(s.read(MetricsQuery("shop", "clf", window_s=5.0), 5.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx((10 + 10 + 10 + 5 + 10) / 5)


def test_a_series_seen_for_the_first_time_adds_nothing_until_it_grows_like_in_prometheus() -> None:
    script = Script()
    s = scraper(script)
    feed(s, script, range(5), lambda t: exposition(requests(10 * t)))
    feed(s, script, [5.0, 6.0], lambda t: exposition(requests(10 * t, 3 + (t - 5))))
    row = rows(s.read(MetricsQuery("shop", "clf", window_s=6.0), 6.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx((60 + 1) / 6)
    assert row.error_ratio == pytest.approx(1 / 61)


def test_replicas_are_summed_and_one_replica_restarting_leaves_the_other_alone() -> None:
    script = Script()
    s = scraper(script)
    a = [0, 10, 20, 30, 40]
    b = [100, 105, 110, 2, 7]  # replica r2 restarted
    feed(
        s,
        script,
        range(5),
        lambda t: exposition(requests(a[int(t)], replica="r1"), requests(b[int(t)], replica="r2")),
    )
    row = rows(s.read(MetricsQuery("shop", "clf", window_s=4.0), 4.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx((40 + 5 + 5 + 2 + 5) / 4)


def test_latency_quantiles_gauges_feedback_shadow_breaker_and_healthy_replicas() -> None:
    script = Script()
    s = scraper(script)

    def text(t: float) -> str:
        p = pair()
        return exposition(
            requests(10 * t, 0),
            [
                f'ray_autoops_latency_ms_bucket{{{p},le="50.0"}} {5 * t}',
                f'ray_autoops_latency_ms_bucket{{{p},le="100.0"}} {9 * t}',
                f'ray_autoops_latency_ms_bucket{{{p},le="+Inf"}} {10 * t}',
                f"ray_autoops_in_flight{{{p}}} 2",
                f"ray_autoops_in_flight{{{pair(replica='r2')}}} 3",
                f'ray_autoops_feedback_total{{{p},correct="true"}} {3 * t}',
                f'ray_autoops_feedback_total{{{p},correct="false"}} {t}',
                f'ray_autoops_shadow_total{{{p},agreed="false"}} {2 * t}',
                f'ray_autoops_shadow_total{{{p},agreed="true"}} {2 * t}',
                f'ray_autoops_breaker_open{{{RAY},replica="r1",version="v1"}} 0',
                f'ray_autoops_breaker_open{{{RAY},replica="r2",version="v1"}} 1',
                'ray_serve_deployment_replica_healthy{application="shop__v1",'
                'deployment="clf__v1__eu-west"} 2',
                'ray_serve_deployment_replica_healthy{application="shop__v1",'
                'deployment="other__v1__eu-west"} 7',
                'ray_serve_deployment_replica_healthy{application="shop",deployment="Ingress"} 1',
            ],
        )

    feed(s, script, range(11), text)
    reading = s.read(QUERY, 10.0)
    assert reading.warnings == ()  # the ingress's own health is not a version's: no noise
    row = rows(reading)[("v1", "eu-west")]
    expected = bucket_quantiles(
        (0.5, 0.95, 0.99), [(50.0, 5.0), (100.0, 9.0), (float("inf"), 10.0)]
    )
    assert [row.latency_p50_ms, row.latency_p95_ms, row.latency_p99_ms] == pytest.approx(expected)
    assert row.ongoing_requests == 5.0
    assert row.accuracy == pytest.approx(0.75)
    assert row.shadow_disagreement == pytest.approx(0.5)
    assert row.breaker_open is True
    assert row.healthy_replicas == 2


def test_a_pair_missing_from_the_newest_scrape_is_dropped_as_stale() -> None:
    script = Script()
    s = scraper(script)
    feed(
        s,
        script,
        range(5),
        lambda t: exposition(requests(t), requests(t, version="v2")),
    )
    feed(s, script, [5.0], lambda t: exposition(requests(t)))
    assert set(rows(s.read(QUERY, 5.0))) == {("v1", "eu-west")}


def test_no_scrape_within_the_stale_limit_is_no_current_metrics_said_in_a_warning() -> None:
    script = Script()
    s = scraper(script)
    feed(s, script, range(5), lambda t: exposition(requests(t)))
    script.texts[TARGET] = TimeoutError("no answer")  # the read's own scrape fails too
    reading = s.read(QUERY, 4.0 + QUERY.stale_after_s + 1)
    assert reading.metrics == ()
    assert not reading.outage
    assert any("old" in w for w in reading.warnings)


def test_failed_scrapes_become_an_outage_after_a_few_and_a_good_one_recovers() -> None:
    script = Script()
    s = scraper(script, outage_after=3)
    feed(s, script, range(5), lambda t: exposition(requests(t)))
    script.texts[TARGET] = ConnectionError("connection refused")
    for t in (5.0, 6.0):
        assert not s.scrape(now=t)
        assert not s.read(QUERY, t).outage
    assert not s.scrape(now=7.0)
    outage = s.read(QUERY, 7.0)
    assert outage.outage
    assert outage.metrics == ()
    assert outage.last_success_at == 4.0
    assert outage.reason is not None and "connection refused" in outage.reason
    feed(s, script, [8.0], lambda t: exposition(requests(t)))
    back = s.read(QUERY, 8.0)
    assert not back.outage
    assert back.last_success_at == 8.0


def test_the_increase_across_a_failed_scrape_of_one_target_is_counted_when_it_answers() -> None:
    script = Script()
    other = "10.0.0.2:8080"
    s = BuiltinScraper([TARGET, other], fetch=script)
    script.texts[other] = exposition([])
    for t in range(6):
        down = t in (3, 4)
        script.texts[TARGET] = (
            ConnectionError("refused") if down else exposition(requests(10.0 * t))
        )
        assert s.scrape(now=float(t))  # one target answered: no failure
        # while the ingress's target is down its pair is not current (like a staleness marker)
        if t > 0:
            assert (rows(s.read(QUERY, float(t))) == {}) == down
    row = rows(s.read(MetricsQuery("shop", "clf", window_s=5.0), 5.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx(10.0)


def test_a_scraper_that_never_succeeded_is_in_outage_at_its_first_failure() -> None:
    script = Script()
    s = scraper(script)
    assert not s.scrape(now=1.0)
    assert s.read(QUERY, 1.0).outage


UNUSABLE = [
    ("nan-gauge", "ray_autoops_in_flight{{{}}} NaN", "NaN"),
    ("negative-gauge", "ray_autoops_in_flight{{{}}} -1", "negative"),
    ("inf-gauge", "ray_autoops_in_flight{{{}}} +Inf", "infinite"),
]


@pytest.mark.parametrize(
    ("line", "problem"), [u[1:] for u in UNUSABLE], ids=[u[0] for u in UNUSABLE]
)
def test_unusable_values_are_ignored_and_said_once(line: str, problem: str) -> None:
    script = Script()
    s = scraper(script)
    feed(s, script, range(4), lambda t: exposition(requests(10 * t)))
    bad = line.format(pair())
    feed(s, script, [4.0, 5.0], lambda t: exposition(requests(10 * t), [bad]))
    first = s.read(QUERY, 5.0)
    second = s.read(QUERY, 5.0)
    assert sum(problem in w for w in first.warnings) == 1
    assert second.warnings == ()
    row = rows(first)[("v1", "eu-west")]
    assert row.ongoing_requests is None
    assert row.request_rate == pytest.approx(10.0)


def test_a_nan_counter_sample_is_skipped_and_the_next_good_one_carries_the_increase() -> None:
    script = Script()
    s = scraper(script)
    feed(s, script, range(3), lambda t: exposition(requests(10 * t)))
    feed(
        s,
        script,
        [3.0],
        lambda t: exposition([f'ray_autoops_requests_total{{{pair()},outcome="ok"}} NaN']),
    )
    feed(s, script, [4.0], lambda t: exposition(requests(10 * t)))
    row = rows(s.read(MetricsQuery("shop", "clf", window_s=4.0), 4.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx(10.0)


UNEXPECTED = [
    ("no-version", f'ray_autoops_requests_total{{{RAY},region="eu-west",outcome="ok"}} 1'),
    ("unknown-outcome", f'ray_autoops_requests_total{{{pair()},outcome="timeout"}} 1'),
    ("bad-version-name", f'ray_autoops_in_flight{{{RAY},version="v 1",region="eu-west"}} 1'),
    (
        "unparsed-deployment",
        'ray_serve_deployment_replica_healthy{application="shop__v1",deployment="Ingress"} 1',
    ),
    ("bad-bucket-bound", f'ray_autoops_latency_ms_bucket{{{pair()},le="big"}} 1'),
]


@pytest.mark.parametrize("line", [u[1] for u in UNEXPECTED], ids=[u[0] for u in UNEXPECTED])
def test_series_with_unexpected_labels_are_ignored_and_said_once(line: str) -> None:
    script = Script()
    s = scraper(script)
    feed(s, script, range(4), lambda t: exposition(requests(10 * t), [line]))
    reading = s.read(QUERY, 3.0)
    assert len(reading.warnings) == 1
    assert set(rows(reading)) == {("v1", "eu-west")}
    assert rows(reading)[("v1", "eu-west")].request_rate == pytest.approx(10.0)


def test_label_values_with_escaped_quotes_and_braces_are_parsed_by_prometheus_client() -> None:
    script = Script()
    s = scraper(script)
    odd = RAY.replace('WorkerId="w1"', r'WorkerId="a}b\"c"')

    def text(t: float) -> str:
        return exposition(
            [f'ray_autoops_requests_total{{{odd},version="v1",region="eu-west",outcome="ok"}} {t}']
        )

    feed(s, script, range(4), text)
    row = rows(s.read(QUERY, 3.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx(1.0)


def test_burn_windows_use_the_oldest_scrape_inside_each_window() -> None:
    script = Script()
    s = scraper(script)
    # errors only during the first 10 s: the 20 s window sees them, the 5 s window does not
    feed(s, script, range(21), lambda t: exposition(requests(10 * t, min(t, 10.0))))
    query = MetricsQuery("shop", "clf", window_s=5.0, burn_windows_s=(20, 600))
    row = rows(s.read(query, 20.0))[("v1", "eu-west")]
    assert row.error_ratio == 0.0
    assert row.error_ratio_by_window[20] == pytest.approx(10 / 210)
    # no scrape reaches 600 s back: the oldest one there is used, as rate() would
    assert row.error_ratio_by_window[600] == pytest.approx(10 / 210)


def test_the_buffer_keeps_recent_scrapes_and_sparser_older_ones_within_its_bounds() -> None:
    script = Script()
    s = scraper(script, fine_capacity=5, coarse_every_s=10.0, coarse_capacity=3)
    feed(s, script, range(60), lambda t: exposition(requests(t, 0.0 if t < 30 else t - 30)))
    state = s._snapshot()
    assert len(state.entries) == 5 + 3
    assert [e.time for e in state.entries][:3] == [30.0, 40.0, 50.0]
    long = MetricsQuery("shop", "clf", window_s=5.0, burn_windows_s=(25,))
    row = rows(s.read(long, 59.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx(2.0)  # 1 ok + 1 error per second
    # the 25 s window starts at the coarse entry taken at 40 s
    assert row.error_ratio_by_window[25] == pytest.approx(0.5)


def test_reads_use_every_recent_scrape_and_sparse_ones_only_before_those() -> None:
    script = Script()
    s = scraper(script, fine_capacity=20, coarse_every_s=5.0, coarse_capacity=10)
    rates = [1.0] * 25 + [9.0] * 5  # the last 5 s run faster
    feed(s, script, range(30), lambda t: exposition(requests(sum(rates[: int(t)]))))
    times = [e.time for e in s._snapshot().entries]
    assert times == sorted(times)
    assert times[:2] == [0.0, 5.0]  # sparse entries, then every scrape from 10 s on
    # the window starts at 22 s: the scrape taken then, not the sparse entry of 25 s
    row = rows(s.read(MetricsQuery("shop", "clf", window_s=7.0), 29.0))[("v1", "eu-west")]
    assert row.request_rate == pytest.approx((3 * 1.0 + 4 * 9.0) / 7)


def test_an_application_with_too_many_pairs_is_refused_and_stops_growing_the_buffer() -> None:
    script = Script()
    s = scraper(script, max_pairs=3)
    other = RAY.replace('application="shop"', 'application="web"')

    def text(t: float) -> str:
        lines = [line for i in range(6) for line in requests(t, region=f"r-{i}")]
        lines.append(
            f'ray_autoops_requests_total{{{other},version="v1",region="r",outcome="ok"}} {t}'
        )
        return exposition(lines)

    feed(s, script, range(4), text)
    refused = s.read(QUERY, 3.0)
    assert refused.outage
    assert refused.reason is not None and "refused" in refused.reason and "3" in refused.reason
    assert len(s._snapshot().columns) == 3 + 1
    web = s.read(MetricsQuery("web", "clf", window_s=10.0), 3.0)
    assert not web.outage
    assert [r.request_rate for r in web.metrics] == [pytest.approx(1.0)]


def test_a_read_without_the_background_thread_scrapes_first() -> None:
    script = Script()
    script.texts[TARGET] = exposition(requests(1))
    s = scraper(script, interval_s=1.0)
    s.read(QUERY, 100.0)
    s.read(QUERY, 100.1)
    s.read(QUERY, 102.0)
    assert script.calls == 2


def test_the_background_thread_scrapes_until_stopped() -> None:
    script = Script()
    script.texts[TARGET] = exposition(requests(1))
    s = scraper(script, interval_s=0.05)
    s.start()
    try:
        deadline = time.monotonic() + 10
        while script.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        s.stop()
    calls = script.calls
    assert calls >= 3
    assert not s.running
    s.read(QUERY, time.time() + 1)  # a read now scrapes itself again
    assert script.calls == calls + 1


def test_targets_come_from_rays_service_discovery_file(tmp_path: Path) -> None:
    sd = tmp_path / "prom_metrics_service_discovery.json"
    sd.write_text(
        json.dumps(
            [{"labels": {"job": "ray"}, "targets": ["10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:1"]}]
        )
    )
    assert targets_from_sd_file(sd) == ["10.0.0.1:1", "10.0.0.1:2"]
    s = BuiltinScraper(["10.0.0.9:9"], sd_file=sd, fetch=Script())
    assert s.targets() == ["10.0.0.9:9", "10.0.0.1:1", "10.0.0.1:2"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read Ray's service-discovery file"), ("{nope", "not a service-discovery")],
    ids=["missing", "not-json"],
)
def test_a_missing_or_broken_discovery_file_is_said_in_one_line(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    sd = tmp_path / "sd.json"
    if content is not None:
        sd.write_text(content)
    with pytest.raises(MetricsUnavailableError, match=expected):
        targets_from_sd_file(sd)
    s = BuiltinScraper(sd_file=sd, fetch=Script())
    assert not s.scrape(now=1.0)
    assert s.read(QUERY, 1.0).outage


def test_check_fails_in_one_line_when_nothing_can_be_scraped(tmp_path: Path) -> None:
    sd = tmp_path / "sd.json"
    sd.write_text(json.dumps([{"targets": []}]))
    with pytest.raises(MetricsUnavailableError, match="no metrics endpoints"):
        BuiltinScraper(sd_file=sd, fetch=Script()).check()
    with pytest.raises(MetricsUnavailableError, match=r"10\.0\.0\.1:8080: ConnectionError") as info:
        scraper(Script()).check()
    assert "\n" not in str(info.value)
    ok = Script()
    ok.texts[TARGET] = exposition(requests(1))
    scraper(ok).check()


def test_the_observe_benchmarks_synthetic_fleet_reads_back_its_known_rates() -> None:
    from autoops.bench.observe import SyntheticFleet

    fleet = SyntheticFleet(applications=2, versions=2, regions=2, started_at=0.0)
    script = Script()
    s = scraper(script)
    feed(s, script, [0.0, 5.0, 10.0], fleet.exposition)
    readings = s.read_many(fleet.queries(10.0), 10.0)
    for a, reading in enumerate(readings):
        assert len(reading.metrics) == 4
        for row in reading.metrics:
            v = fleet.version_names().index(row.version)
            r = fleet.region_names().index(row.region)
            assert row.request_rate == pytest.approx(fleet.rate(a, v, r), rel=1e-3)
            assert row.error_ratio == pytest.approx(fleet.error_share, rel=1e-2)
            assert row.healthy_replicas == 2
            assert row.latency_p99_ms is not None

"""PromQL per signal, the quantile rule shared with the scraper, and rows built from values."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.adapters.histogram import bucket_quantile, bucket_quantiles
from autoops.adapters.promql import (
    BatchSpec,
    build_rows,
    duration,
    render_breaker,
    render_buckets,
    render_feedback,
    render_freshness,
    render_healthy,
    render_in_flight,
    render_pair_count,
    render_quantile,
    render_requests,
    render_shadow,
    signal_queries,
    signal_query_applications,
    value_problem,
)
from autoops.contract import LATENCY_BOUNDARIES_MS, exported_name
from autoops.model import VersionMetrics

INF = math.inf

# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(30, "30s"), (30.0, "30s"), (1.5, "1500ms"), (0.25, "250ms"), (3600, "3600s")],
    ids=["int", "whole-float", "fraction", "sub-second", "hour"],
)
def test_duration_is_a_valid_promql_duration(seconds: float, expected: str) -> None:
    assert duration(seconds) == expected


@pytest.mark.parametrize("seconds", [0, -1, INF, math.nan])
def test_duration_refuses_what_is_not_a_positive_finite_window(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        duration(seconds)


SHOP = ("shop",)

RENDERED = [
    (
        "requests",
        render_requests(SHOP, 30),
        "sum by (application, version, region, outcome) "
        '(rate(ray_autoops_requests_total{application="shop"}[30s]))',
    ),
    (
        "requests-of-one-outcome",
        render_requests(SHOP, 30, outcome="error"),
        "sum by (application, version, region, outcome) "
        '(rate(ray_autoops_requests_total{application="shop", outcome="error"}[30s]))',
    ),
    (
        "buckets",
        render_buckets(SHOP, 10),
        "sum by (application, version, region, le) "
        '(rate(ray_autoops_latency_ms_bucket{application="shop"}[10s]))',
    ),
    (
        "quantile",
        render_quantile(SHOP, 0.99, 10),
        "histogram_quantile(0.99, sum by (application, version, region, le) "
        '(rate(ray_autoops_latency_ms_bucket{application="shop"}[10s])))',
    ),
    (
        "in-flight",
        render_in_flight(SHOP),
        'sum by (application, version, region) (ray_autoops_in_flight{application="shop"})',
    ),
    (
        "feedback",
        render_feedback(SHOP, 60),
        "sum by (application, version, region, correct) "
        '(rate(ray_autoops_feedback_total{application="shop"}[60s]))',
    ),
    (
        "shadow",
        render_shadow(SHOP, 60),
        "sum by (application, version, region, agreed) "
        '(rate(ray_autoops_shadow_total{application="shop"}[60s]))',
    ),
    (
        "breaker",
        render_breaker(SHOP),
        'max by (application, version) (ray_autoops_breaker_open{application="shop"})',
    ),
    (
        "healthy",
        render_healthy(SHOP),
        "sum by (application, deployment) "
        '(ray_serve_deployment_replica_healthy{application=~"(shop)__.+"})',
    ),
    (
        "freshness",
        render_freshness(SHOP),
        "max by (application, version, region) (timestamp("
        '{__name__=~"ray_autoops_requests_total|ray_autoops_in_flight", application="shop"}))',
    ),
    (
        "pair-count",
        render_pair_count(SHOP),
        "count by (application) (count by (application, version, region) "
        '({__name__=~"ray_autoops_requests_total|ray_autoops_in_flight", application="shop"}))',
    ),
]


@pytest.mark.parametrize(
    ("expr", "expected"), [r[1:] for r in RENDERED], ids=[r[0] for r in RENDERED]
)
def test_each_signal_renders_one_batched_sum_by_pair(expr: str, expected: str) -> None:
    assert expr == expected


def test_metric_names_follow_the_contract() -> None:
    assert exported_name("autoops_requests", "_total") in render_requests(SHOP, 1)
    assert exported_name("autoops_latency_ms", "_bucket") in render_buckets(SHOP, 1)


def test_several_applications_are_one_escaped_regex_so_dots_match_only_dots() -> None:
    apps = ("shop", "a.b", "x-y")
    assert 'application=~"shop|a\\\\.b|x-y"' in render_requests(apps, 30)
    assert 'application=~"(shop|a\\\\.b|x-y)__.+"' in render_healthy(apps)


def test_a_quote_in_an_application_name_cannot_break_out_of_the_selector() -> None:
    assert 'application="a\\"b"' in render_in_flight(('a"b',))


def test_no_application_is_an_error_not_a_query_for_everything() -> None:
    with pytest.raises(ValueError, match="application"):
        render_requests((), 30)


def test_signal_queries_cover_every_signal_and_each_burn_window() -> None:
    queries = signal_queries(BatchSpec(SHOP, 30.0, (300, 3600)))
    assert set(queries) == {
        "requests",
        "burn300",
        "burn3600",
        "bucket",
        "in_flight",
        "feedback",
        "shadow",
        "breaker",
        "healthy",
        "fresh",
    }
    assert "[300s]" in queries["burn300"]
    assert "[3600s]" in queries["burn3600"]


def test_latency_buckets_are_split_across_queries_when_there_are_many_applications() -> None:
    apps = tuple(f"app-{i}" for i in range(25))
    queries = signal_queries(BatchSpec(apps, 10.0), shard_apps=10)
    shards = [name for name in queries if name.startswith("bucket")]
    assert shards == ["bucket#0", "bucket#1", "bucket#2"]
    assert all(f'"{"|".join(apps)}"' in queries[q] for q in ("requests", "in_flight"))
    assert "app-24" in queries["bucket#2"]
    assert "app-24" not in queries["bucket#0"]


def test_bucket_shards_come_last_and_each_query_says_which_applications_it_covers() -> None:
    apps = tuple(f"app-{i}" for i in range(25))
    spec = BatchSpec(apps, 10.0, (300,))
    names = list(signal_queries(spec, shard_apps=10))
    covers = signal_query_applications(spec, shard_apps=10)
    assert list(covers) == names
    assert names[-3:] == ["bucket#0", "bucket#1", "bucket#2"]
    assert covers["bucket#0"] == apps[:10] and covers["bucket#2"] == apps[20:]
    assert all(covers[name] == apps for name in names[:-3])
    assert signal_query_applications(BatchSpec(SHOP, 10.0)) == dict.fromkeys(
        signal_queries(BatchSpec(SHOP, 10.0)), SHOP
    )


# --------------------------------------------------------------------------- quantiles

# Cumulative buckets as Prometheus sees them: (upper bound, count).
HIST = [(10.0, 20.0), (50.0, 80.0), (100.0, 95.0), (INF, 100.0)]

QUANTILE_CASES = [
    ("inside-first-bucket-starts-at-zero", 0.1, HIST, 5.0),
    ("interpolated-in-second-bucket", 0.5, HIST, 10.0 + 40.0 * (30.0 / 60.0)),
    ("interpolated-in-third-bucket", 0.95, HIST, 100.0),
    ("rank-in-inf-bucket-gives-highest-finite-bound", 0.99, HIST, 100.0),
    ("unsorted-input", 0.5, list(reversed(HIST)), 30.0),
    ("same-bound-merged", 0.5, [(10.0, 10.0), (10.0, 10.0), (50.0, 80.0), (INF, 100.0)], 30.0),
    ("non-monotonic-counts-fixed", 0.5, [(10.0, 20.0), (50.0, 15.0), (INF, 100.0)], 50.0 + 0.0),
    ("no-observations", 0.5, [(10.0, 0.0), (INF, 0.0)], None),
    ("no-inf-bucket", 0.5, [(10.0, 1.0), (50.0, 2.0)], None),
    ("one-bucket", 0.5, [(INF, 10.0)], None),
    ("negative-q", -0.1, HIST, -INF),
    ("q-over-one", 1.5, HIST, INF),
    ("nan-q", math.nan, HIST, None),
]


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [c[1:] for c in QUANTILE_CASES],
    ids=[c[0] for c in QUANTILE_CASES],
)
def test_bucket_quantile_follows_prometheus_histogram_quantile(
    q: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    found = bucket_quantile(q, buckets)
    if expected is None:
        assert found is None
    else:
        assert found == pytest.approx(expected)


def test_non_monotonic_counts_are_raised_to_the_running_maximum_like_prometheus() -> None:
    # counts 20, 15->20, 100: rank 50 lies in the +Inf bucket's predecessor chain
    assert bucket_quantile(0.5, [(10.0, 20.0), (50.0, 15.0), (100.0, 100.0), (INF, 100.0)]) == (
        pytest.approx(50.0 + 50.0 * (30.0 / 80.0))
    )


def test_several_quantiles_at_once_equal_one_at_a_time() -> None:
    levels = (0.5, 0.9, 0.99)
    assert bucket_quantiles(levels, HIST) == [bucket_quantile(q, HIST) for q in levels]


@pytest.mark.parametrize("kind", [list, tuple, iter], ids=["list", "tuple", "iterator"])
def test_bounds_given_twice_are_added_up_whatever_holds_the_buckets(kind: Any) -> None:
    doubled = [(10.0, 10.0), (50.0, 40.0), (10.0, 10.0), (50.0, 40.0), (INF, 100.0)]
    expected = bucket_quantiles((0.5, 0.9), [(10.0, 20.0), (50.0, 80.0), (INF, 100.0)])
    assert bucket_quantiles((0.5, 0.9), kind(doubled)) == expected
    assert expected == [pytest.approx(30.0), pytest.approx(50.0)]


cumulative_buckets = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=1e6)),
    min_size=1,
    max_size=len(LATENCY_BOUNDARIES_MS),
).map(
    lambda increments: [
        (float(bound), float(sum(increments[: i + 1])))
        for i, bound in enumerate([*LATENCY_BOUNDARIES_MS[: len(increments) - 1], INF])
    ]
)


@settings(deadline=None, max_examples=200)
@given(buckets=cumulative_buckets, q1=st.floats(1e-6, 1), q2=st.floats(1e-6, 1))
def test_quantiles_grow_with_q_and_stay_within_the_finite_bounds(
    buckets: list[tuple[float, float]], q1: float, q2: float
) -> None:
    low, high = sorted((q1, q2))
    a, b = bucket_quantile(low, buckets), bucket_quantile(high, buckets)
    if buckets[-1][1] <= 0 or len(buckets) < 2:
        assert a is None and b is None
        return
    assert a is not None and b is not None
    assert a <= b + 1e-9
    finite = [bound for bound, _ in buckets if bound != INF]
    assert a >= 0.0 and b <= max(finite) + 1e-9


# --------------------------------------------------------------------------- rows


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1.0, None),
        (0.0, None),
        (math.nan, "NaN"),
        (INF, "infinite"),
        (-INF, "infinite"),
        (-1, "negative"),
    ],
)
def test_value_problem_names_what_cannot_be_used(value: float, problem: str | None) -> None:
    assert value_problem(value) == problem


def rows(
    values: dict[str, float], breaker: float | None = None, burns: tuple[int, ...] = ()
) -> VersionMetrics:
    breakers = {} if breaker is None else {"v1": breaker}
    (row,) = build_rows("clf", 10.0, burns, {("v1", "eu-west"): values}, breakers)
    return row


def test_a_pair_without_request_series_has_no_rate_and_no_error_ratio_not_zeros() -> None:
    row = rows({"in_flight": 2.0})
    assert row.request_rate is None
    assert row.error_ratio is None
    assert row.request_count is None
    assert row.ongoing_requests == 2.0
    assert row.latency_p99_ms is None
    assert row.accuracy is None
    assert row.breaker_open is None


def test_requests_by_outcome_give_rate_error_ratio_and_count_over_the_window() -> None:
    row = rows({"requests/ok": 9.0, "requests/error": 1.0})
    assert row.request_rate == pytest.approx(10.0)
    assert row.error_ratio == pytest.approx(0.1)
    assert row.request_count == pytest.approx(100.0)
    assert (row.deployment, row.version, row.region) == ("clf", "v1", "eu-west")


def test_a_pair_that_saw_no_request_in_the_window_has_rate_zero_and_no_failed_request() -> None:
    row = rows({"requests/ok": 0.0})
    assert row.request_rate == 0.0
    assert row.error_ratio == 0.0
    assert row.request_count == 0.0


def test_only_errors_give_an_error_ratio_of_one() -> None:
    assert rows({"requests/error": 2.0}).error_ratio == 1.0


def test_burn_windows_get_their_own_error_ratio_and_none_without_series() -> None:
    row = rows({"requests/ok": 1.0, "burn300/ok": 3.0, "burn300/error": 1.0}, burns=(300, 3600))
    assert row.error_ratio_by_window == {300: pytest.approx(0.25), 3600: None}


def test_latency_quantiles_come_from_the_buckets() -> None:
    values = {f"bucket/{bound}": count for bound, count in HIST[:-1]} | {"bucket/+Inf": 100.0}
    row = rows(values)
    assert row.latency_p50_ms == pytest.approx(30.0)
    assert row.latency_p95_ms == pytest.approx(100.0)
    assert row.latency_p99_ms == pytest.approx(100.0)


def test_accuracy_shadow_disagreement_breaker_and_healthy_replicas() -> None:
    row = rows(
        {
            "feedback/true": 3.0,
            "feedback/false": 1.0,
            "shadow/true": 1.0,
            "shadow/false": 3.0,
            "healthy": 2.0,
        },
        breaker=1.0,
    )
    assert row.accuracy == pytest.approx(0.75)
    assert row.shadow_disagreement == pytest.approx(0.75)
    assert row.breaker_open is True
    assert row.healthy_replicas == 2


def test_no_feedback_in_the_window_is_no_accuracy_rather_than_zero() -> None:
    assert rows({"feedback/true": 0.0, "feedback/false": 0.0}).accuracy is None


def test_rows_are_sorted_by_version_then_region() -> None:
    pairs = {("v2", "a"): {}, ("v1", "b"): {}, ("v1", "a"): {}}
    found = build_rows("clf", 10.0, (), pairs, {})
    assert [(r.version, r.region) for r in found] == [("v1", "a"), ("v1", "b"), ("v2", "a")]


def test_a_bucket_whose_bound_is_not_a_number_is_ignored_every_time() -> None:
    values = {f"bucket/{bound}": count for bound, count in HIST[:-1]} | {"bucket/+Inf": 100.0}
    clean = rows(values)
    for _ in range(2):  # the second time from what was learnt of each key the first time
        assert rows(values | {"bucket/big": 5.0}) == clean
    assert clean.latency_p50_ms == pytest.approx(30.0)

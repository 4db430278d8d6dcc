"""The ingress router: weights, regions, header pins, breakers, shadow, cascade, overload."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.contract import VERSION_HEADER, BreakerConfig, RoutingTable
from serve_apps.breaker import BreakerBoard
from serve_apps.routing import RoutePlan, Router, RoutingError, UnknownVersion

REGIONS = ("eu-west", "us-east")
N = 20_000
NOW = 100.0
BREAKER = BreakerConfig(min_requests=3, error_ratio=0.5, open_s=5.0, probe_fraction=0.1)


def make_table(**overrides: Any) -> RoutingTable:
    fields: dict[str, Any] = {
        "stable_version": "v1",
        "weights": {"v1": 0.9, "v2": 0.1},
        "region_weights": {"eu-west": 0.7, "us-east": 0.3},
        "breaker": BREAKER,
    }
    fields.update(overrides)
    return RoutingTable.model_validate(fields)


def everywhere(*versions: str) -> set[tuple[str, str]]:
    return {(v, r) for v in versions for r in REGIONS}


def make_router(
    table: RoutingTable | None = None, deployed: set[tuple[str, str]] | None = None
) -> Router:
    table = table or make_table()
    return Router(table, everywhere("v1", "v2") if deployed is None else deployed)


def plan(
    router: Router,
    rng: random.Random,
    *,
    header: str | None = None,
    in_flight: int = 0,
    breakers: BreakerBoard | None = None,
) -> RoutePlan:
    return router.plan(
        header_version=header,
        in_flight=in_flight,
        breakers=breakers or BreakerBoard(router.table.breaker),
        now=NOW,
        rng=rng,
    )


def plans(router: Router, n: int = N, seed: int = 1, **kwargs: Any) -> list[RoutePlan]:
    rng = random.Random(seed)
    board = kwargs.pop("breakers", None) or BreakerBoard(router.table.breaker)
    return [plan(router, rng, breakers=board, **kwargs) for _ in range(n)]


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return bool(abs(count - n * p) <= sigmas * (n * p * (1 - p)) ** 0.5)


def open_breaker(board: BreakerBoard, version: str) -> None:
    for i in range(BREAKER.min_requests):
        board.record(version, False, NOW - 1.0 + i * 0.125)
    assert board.state(version, NOW) == "open"


def test_version_split_follows_weights() -> None:
    counts = Counter(p.version for p in plans(make_router()))
    assert within_binomial(counts["v2"], N, 0.1)
    assert counts["v1"] + counts["v2"] == N


def test_region_split_follows_region_weights() -> None:
    counts = Counter(p.region for p in plans(make_router()))
    assert within_binomial(counts["us-east"], N, 0.3)


def test_weights_are_normalised_and_zero_weights_left_out() -> None:
    table = make_table(weights={"v1": 3.0, "v2": 1.0, "v3": 0.0}, region_weights={"eu-west": 2.0})
    router = make_router(table)
    assert router.normalised_weights() == {"v1": 0.75, "v2": 0.25}
    assert router.normalised_region_weights() == {"eu-west": 1.0}


def test_region_weights_renormalise_over_the_versions_regions() -> None:
    deployed = everywhere("v1") | {("v2", "us-east")}
    router = make_router(deployed=deployed)
    v2_regions = {p.region for p in plans(router, n=2000) if p.version == "v2"}
    assert v2_regions == {"us-east"}


def test_version_deployed_only_in_unweighted_regions_uses_its_first_region() -> None:
    table = make_table(region_weights={"eu-west": 1.0})
    deployed = {("v1", "eu-west"), ("v2", "us-east"), ("v2", "ap-south")}
    router = make_router(table, deployed)
    assert {p.region for p in plans(router, n=2000) if p.version == "v2"} == {"ap-south"}


def test_header_override_wins_over_weights() -> None:
    results = plans(make_router(), n=500, header="v2")
    assert {(p.version, p.path) for p in results} == {("v2", "header")}


def test_header_is_ignored_when_override_is_off() -> None:
    router = make_router(make_table(header_override=False))
    counts = Counter(p.version for p in plans(router, header="v2"))
    assert within_binomial(counts["v2"], N, 0.1)


def test_header_naming_an_undeployed_version_is_an_error_naming_the_header() -> None:
    with pytest.raises(UnknownVersion) as err:
        plan(make_router(), random.Random(0), header="v9")
    assert err.value.field == VERSION_HEADER
    assert "v9" in str(err.value)
    assert isinstance(err.value, RoutingError)


def test_open_breaker_version_gets_only_probes_and_its_share_goes_to_others() -> None:
    table = make_table(weights={"v1": 0.5, "v2": 0.5}, breaker=BREAKER)
    router = make_router(table)
    board = BreakerBoard(BREAKER)
    open_breaker(board, "v2")
    results = plans(router, n=2000, breakers=board)  # NOW is within open_s: no probes yet
    assert {(p.version, p.path) for p in results} == {("v1", "primary")}


def test_half_open_version_gets_about_its_share_times_probe_fraction() -> None:
    table = make_table(weights={"v1": 0.5, "v2": 0.5})
    router = make_router(table)
    board = BreakerBoard(BREAKER)
    open_breaker(board, "v2")
    rng = random.Random(3)
    later = NOW + BREAKER.open_s
    results = [
        router.plan(header_version=None, in_flight=0, breakers=board, now=later, rng=rng)
        for _ in range(N)
    ]
    counts = Counter(p.version for p in results)
    # allowed with probe_fraction, then half of the two-way pick
    assert within_binomial(counts["v2"], N, BREAKER.probe_fraction * 0.5)


def test_all_breakers_open_falls_back_to_stable() -> None:
    table = make_table(stable_version="v1", weights={"v2": 1.0})
    router = make_router(table)
    board = BreakerBoard(BREAKER)
    open_breaker(board, "v2")
    result = plan(router, random.Random(0), breakers=board)
    assert (result.version, result.path) == ("v1", "breaker_fallback")
    assert "breaker" in result.reason


def test_shadow_mirrors_about_its_fraction_and_never_the_chosen_version() -> None:
    table = make_table(shadow={"version": "v2", "fraction": 0.2})
    results = plans(make_router(table))
    mirrored = [p for p in results if p.shadow_version is not None]
    assert all(p.shadow_version == "v2" and p.version != "v2" for p in mirrored)
    assert all(p.shadow_region == p.region for p in mirrored)
    v1_count = sum(p.version == "v1" for p in results)
    assert within_binomial(len(mirrored), v1_count, 0.2)


@pytest.mark.parametrize(
    ("cascade", "deployed_versions", "version", "first"),
    [
        pytest.param({"enabled": True, "small_version": "s"}, ("v1", "s"), "v1", "s", id="on"),
        pytest.param({"enabled": False, "small_version": "s"}, ("v1", "s"), "v1", None, id="off"),
        pytest.param({"enabled": True}, ("v1",), "v1", None, id="on-without-small-version"),
        pytest.param({"enabled": True, "small_version": "s"}, ("s",), "s", None, id="small-routed"),
    ],
)
def test_cascade_is_planned_only_when_enabled_and_the_small_model_is_deployed(
    cascade: dict[str, Any], deployed_versions: tuple[str, ...], version: str, first: str | None
) -> None:
    table = make_table(stable_version=version, weights={version: 1.0}, cascade=cascade)
    result = plan(make_router(table, everywhere(*deployed_versions)), random.Random(0))
    assert result.version == version
    assert result.first_version == first
    if first is not None:
        assert result.first_region == result.region


def test_cascade_skips_a_small_model_whose_breaker_is_not_closed() -> None:
    table = make_table(cascade={"enabled": True, "small_version": "s"})
    router = make_router(table, everywhere("v1", "v2", "s"))
    board = BreakerBoard(BREAKER)
    open_breaker(board, "s")
    assert plan(router, random.Random(0), breakers=board).first_version is None


def test_header_pinned_request_skips_the_cascade() -> None:
    table = make_table(cascade={"enabled": True, "small_version": "s"})
    router = make_router(table, everywhere("v1", "v2", "s"))
    assert plan(router, random.Random(0), header="v2").first_version is None


@pytest.mark.parametrize(
    ("confidences", "escalate"),
    [
        pytest.param([0.95, 0.99], False, id="all-above"),
        pytest.param([0.9], False, id="equal-to-threshold-does-not-escalate"),
        pytest.param([0.95, 0.8999], True, id="one-under"),
        pytest.param([], False, id="no-rows"),
    ],
)
def test_escalates_exactly_when_a_confidence_is_under_the_threshold(
    confidences: list[float], escalate: bool
) -> None:
    router = make_router(make_table(cascade={"threshold": 0.9}))
    assert router.escalate(confidences) is escalate


@settings(deadline=None, max_examples=200)
@given(
    threshold=st.floats(0, 1),
    confidences=st.lists(st.floats(0, 1), max_size=20),
)
def test_escalate_matches_the_minimum_confidence(
    threshold: float, confidences: list[float]
) -> None:
    router = make_router(make_table(cascade={"threshold": threshold}))
    assert router.escalate(confidences) == (bool(confidences) and min(confidences) < threshold)


def test_overload_degrades_to_the_small_model() -> None:
    table = make_table(overload={"max_in_flight": 8}, cascade={"small_version": "s"})
    router = make_router(table, everywhere("v1", "v2", "s"))
    result = plan(router, random.Random(0), in_flight=8)
    assert (result.version, result.degraded, result.shed, result.path) == (
        "s",
        True,
        False,
        "degraded",
    )
    assert result.first_version is None and result.shadow_version is None


def test_overload_degrades_even_over_a_header_pin() -> None:
    table = make_table(overload={"max_in_flight": 8}, cascade={"small_version": "s"})
    router = make_router(table, everywhere("v1", "v2", "s"))
    assert plan(router, random.Random(0), in_flight=9, header="v2").version == "s"


def test_overload_without_a_small_model_sheds() -> None:
    router = make_router(make_table(overload={"max_in_flight": 8}))
    result = plan(router, random.Random(0), in_flight=8)
    assert result.shed and not result.degraded


def test_under_the_overload_limit_routes_normally() -> None:
    table = make_table(overload={"max_in_flight": 8}, cascade={"small_version": "s"})
    router = make_router(table, everywhere("v1", "v2", "s"))
    result = plan(router, random.Random(0), in_flight=7)
    assert not result.degraded and not result.shed and result.version in {"v1", "v2"}


@pytest.mark.parametrize(
    ("overrides", "deployed", "field"),
    [
        pytest.param({}, everywhere("v1"), "weights[v2]", id="weight-on-undeployed-version"),
        pytest.param(
            {"region_weights": {"eu-west": 0.5, "ap-south": 0.5}},
            everywhere("v1", "v2"),
            "region_weights[ap-south]",
            id="weight-on-undeployed-region",
        ),
        pytest.param(
            {"stable_version": "v0"}, everywhere("v1", "v2"), "stable_version", id="stable"
        ),
        pytest.param(
            {"shadow": {"version": "v9", "fraction": 0.1}},
            everywhere("v1", "v2"),
            "shadow.version",
            id="unknown-shadow",
        ),
        pytest.param(
            {"cascade": {"enabled": True, "small_version": "s"}},
            everywhere("v1", "v2"),
            "cascade.small_version",
            id="unknown-small",
        ),
    ],
)
def test_table_pointing_at_missing_deployments_is_an_error_naming_the_field(
    overrides: dict[str, Any], deployed: set[tuple[str, str]], field: str
) -> None:
    with pytest.raises(RoutingError) as err:
        Router(make_table(**overrides), deployed)
    assert err.value.field == field
    assert field in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"weights": {"v1": 1.0, "v9": 0.0}}, id="zero-weight-on-undeployed"),
        pytest.param({"shadow": {"version": "v9", "fraction": 0.0}}, id="inactive-shadow"),
        pytest.param({"cascade": {"enabled": False, "small_version": "s"}}, id="inactive-small"),
    ],
)
def test_inert_references_to_missing_versions_are_accepted(overrides: dict[str, Any]) -> None:
    Router(make_table(**overrides), everywhere("v1", "v2"))


def test_deployed_pairs_from_the_table_make_a_valid_router() -> None:
    table = make_table(deployments={"v1": ["eu-west", "us-east"], "v2": ["us-east"]})
    router = Router(table, table.deployed_pairs())
    assert router.deployed_versions() == ["v1", "v2"]


def test_same_seed_gives_the_same_plans() -> None:
    table = make_table(shadow={"version": "v2", "fraction": 0.3})
    assert plans(make_router(table), n=200, seed=5) == plans(make_router(table), n=200, seed=5)

"""Placement: which allowed, healthy region serves, by objective; and region moves via `decide`."""

from __future__ import annotations

from typing import Any

import pytest

from autoops.core.aggregate import degraded_regions
from autoops.core.decide import decide
from autoops.core.placement import place
from autoops.model import RegionSignals, SetRegionWeights, SetReplicas
from autoops.policy.schema import Intent
from tests.unit.fakes import CATALOGUE, applied, apply_actions, context, make_policy, row, snapshot

# The fake catalogue: name -> ($/h per replica, mean latency to users ms)
#   eu-west 1.0 / 60, eu-central 1.2 / 65, eu-north 0.9 / 80, us-east 0.8 / 130
ALL = ["eu-west", "eu-central", "eu-north", "us-east"]
SLO_MS = 200.0


def intent(**overrides: Any) -> Intent:
    return make_policy(intent=overrides).intent


def signals(
    carbon: dict[str, float | None] | None = None,
    price: dict[str, float] | None = None,
    unhealthy: tuple[str, ...] = (),
) -> dict[str, RegionSignals]:
    carbon = carbon or {}
    price = price or {}
    names = set(carbon) | set(price) | set(unhealthy)
    return {
        n: RegionSignals(
            n,
            carbon_intensity=carbon.get(n),
            price_usd_per_mwh=price.get(n),
            healthy=False if n in unhealthy else None,
        )
        for n in names
    }


def chosen(weights: dict[str, float] | Any) -> set[str]:
    return {r for r, w in weights.items() if w > 0}


# --------------------------------------------------------------------------- objectives


@pytest.mark.parametrize(
    ("intent_overrides", "sigs", "expected"),
    [
        pytest.param({"objective": "latency"}, {}, {"eu-west"}, id="latency-picks-closest"),
        pytest.param(
            {"objective": "latency", "user_group": "na"}, {}, {"eu-west"}, id="latency-per-group"
        ),
        pytest.param({"objective": "cost"}, {}, {"us-east"}, id="cost-picks-cheapest-replica"),
        pytest.param(
            {"objective": "cost"},
            signals(price={"us-east": 2000.0, "eu-north": 50.0}),
            {"eu-north"},
            id="cost-counts-energy-price",
        ),
        pytest.param(
            {"objective": "carbon"},
            signals(carbon={"eu-west": 250, "eu-central": 400, "eu-north": 30, "us-east": 380}),
            {"eu-north"},
            id="carbon-picks-cleanest-grid",
        ),
        pytest.param(
            {"objective": "weighted", "weights": {"cost": 0, "carbon": 1, "latency": 0}},
            signals(carbon={"eu-west": 250, "eu-central": 400, "eu-north": 30, "us-east": 380}),
            {"eu-north"},
            id="weighted-carbon-only",
        ),
        pytest.param(
            {"objective": "weighted", "weights": {"cost": 1, "carbon": 0, "latency": 0}},
            signals(carbon={"eu-west": 250, "eu-central": 400, "eu-north": 30, "us-east": 380}),
            {"us-east"},
            id="weighted-cost-only",
        ),
        pytest.param(
            {"objective": "weighted", "weights": {"cost": 0, "carbon": 0, "latency": 1}},
            {},
            {"eu-west"},
            id="weighted-latency-only",
        ),
        pytest.param(
            # west: 1/1.1 + 500/275 + 60/62.5 = 3.69; central: 1.2/1.1 + 50/275 + 65/62.5 = 2.31
            {"objective": "weighted", "allowed_regions": ["eu-west", "eu-central"]},
            signals(carbon={"eu-west": 500, "eu-central": 50}),
            {"eu-central"},
            id="weighted-balanced-clean-grid-wins",
        ),
    ],
)
def test_objective_picks_the_expected_region(
    intent_overrides: dict[str, Any], sigs: dict[str, RegionSignals], expected: set[str]
) -> None:
    result = place(
        intent(**{"allowed_regions": ALL, **intent_overrides}), SLO_MS, CATALOGUE, sigs, {}
    )
    assert chosen(result.weights) == expected
    assert sum(result.weights.values()) == pytest.approx(1.0)


CLEANEST_AND_CHEAPEST_OUTSIDE = signals(
    carbon={"eu-west": 300, "eu-central": 280, "eu-north": 10, "us-east": 20},
    price={"eu-west": 100, "eu-central": 100, "eu-north": 10, "us-east": 10},
)


@pytest.mark.parametrize("objective", ["latency", "cost", "carbon", "weighted"])
@pytest.mark.parametrize("min_regions", [1, 2, 3])
def test_never_places_outside_the_allowed_regions(objective: str, min_regions: int) -> None:
    boundary = intent(
        allowed_regions=["eu-west", "eu-central"], objective=objective, min_regions=min_regions
    )
    result = place(boundary, SLO_MS, CATALOGUE, CLEANEST_AND_CHEAPEST_OUTSIDE, {})
    assert chosen(result.weights) <= {"eu-west", "eu-central"}
    assert set(result.scores) <= {"eu-west", "eu-central"}


def test_allowed_region_missing_from_the_catalogue_is_excluded() -> None:
    result = place(intent(allowed_regions=["eu-west", "mars-1"]), SLO_MS, CATALOGUE, {}, {})
    assert chosen(result.weights) == {"eu-west"}
    assert "catalogue" in result.excluded["mars-1"]


# --------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("degraded", "expected"),
    [
        pytest.param({"eu-west": "every version errs"}, {"eu-central"}, id="degraded-closest"),
        pytest.param({"eu-central": "every version errs"}, {"eu-west"}, id="degraded-other"),
        pytest.param(
            {"eu-west": "down", "eu-central": "down"}, set(), id="all-degraded-places-nothing"
        ),
    ],
)
def test_degraded_regions_are_excluded(degraded: dict[str, str], expected: set[str]) -> None:
    result = place(intent(objective="latency"), SLO_MS, CATALOGUE, {}, degraded)
    assert chosen(result.weights) == expected
    for name, why in degraded.items():
        assert result.excluded[name] == why


def test_unhealthy_region_signal_excludes_the_region() -> None:
    sigs = signals(unhealthy=("eu-west",))
    snap = snapshot(100.0, (row("v1", "eu-west"), row("v1", "eu-central")))
    degraded = degraded_regions(snap, 0.01, sigs)
    result = place(intent(objective="latency"), SLO_MS, CATALOGUE, sigs, degraded)
    assert chosen(result.weights) == {"eu-central"}
    assert "unhealthy" in result.excluded["eu-west"]


# --------------------------------------------------------------------------- carbon ceiling


@pytest.mark.parametrize(
    ("carbon", "expected", "excluded"),
    [
        pytest.param(
            {"eu-west": 450, "eu-central": 150},
            {"eu-central"},
            {"eu-west"},
            id="dirty-closest-avoided",
        ),
        pytest.param(
            {"eu-west": 150, "eu-central": 450},
            {"eu-west"},
            {"eu-central"},
            id="clean-closest-kept",
        ),
        pytest.param(
            {"eu-west": 450, "eu-central": 500}, {"eu-west"}, set(), id="none-clean-ceiling-ignored"
        ),
        pytest.param(
            {"eu-west": None, "eu-central": 150},
            {"eu-central"},
            {"eu-west"},
            id="unknown-carbon-avoided-when-a-clean-one-exists",
        ),
    ],
)
def test_carbon_ceiling_excludes_dirty_regions_when_a_clean_one_exists(
    carbon: dict[str, float | None], expected: set[str], excluded: set[str]
) -> None:
    boundary = intent(objective="latency", carbon_ceiling_g_per_kwh=300)
    result = place(boundary, SLO_MS, CATALOGUE, signals(carbon=carbon), {})
    assert chosen(result.weights) == expected
    assert {n for n, why in result.excluded.items() if "ceiling" in why} == excluded


# --------------------------------------------------------------------------- spread


@pytest.mark.parametrize(
    ("min_regions", "allowed", "expected"),
    [
        pytest.param(2, ALL, {"eu-west": 0.5, "eu-central": 0.5}, id="two-best-regions"),
        pytest.param(
            3, ALL, {"eu-west": 1 / 3, "eu-central": 1 / 3, "eu-north": 1 / 3}, id="three-best"
        ),
        pytest.param(
            3, ["eu-west", "eu-central"], {"eu-west": 0.5, "eu-central": 0.5}, id="fewer-allowed"
        ),
    ],
)
def test_min_regions_spreads_traffic_evenly_over_the_best(
    min_regions: int, allowed: list[str], expected: dict[str, float]
) -> None:
    boundary = intent(objective="latency", allowed_regions=allowed, min_regions=min_regions)
    result = place(boundary, SLO_MS, CATALOGUE, {}, {})
    assert dict(result.weights) == pytest.approx(expected)


# --------------------------------------------------------------------------- missing data


@pytest.mark.parametrize(
    ("objective", "carbon", "expected"),
    [
        pytest.param("carbon", {"eu-west": None, "eu-central": 400}, {"eu-central"}, id="carbon"),
        pytest.param("carbon", {"eu-central": 400}, {"eu-central"}, id="carbon-no-signal-at-all"),
        pytest.param(
            "weighted", {"eu-west": None, "eu-central": 400}, {"eu-central"}, id="weighted"
        ),
    ],
)
def test_missing_carbon_data_is_never_preferred(
    objective: str, carbon: dict[str, float | None], expected: set[str]
) -> None:
    result = place(intent(objective=objective), SLO_MS, CATALOGUE, signals(carbon=carbon), {})
    assert chosen(result.weights) == expected


def test_no_objective_data_anywhere_spreads_evenly_as_the_reason_says() -> None:
    result = place(intent(objective="carbon"), SLO_MS, CATALOGUE, {}, {})
    assert any("spread evenly" in r for r in result.reasons)
    assert dict(result.weights) == pytest.approx({"eu-west": 0.5, "eu-central": 0.5})


# --------------------------------------------------------------------------- latency SLO


@pytest.mark.parametrize(
    ("slo_ms", "expected", "excluded"),
    [
        pytest.param(200.0, {"eu-north"}, set(), id="both-reach-cheapest-wins"),
        pytest.param(70.0, {"eu-west"}, {"eu-north"}, id="cheap-but-too-far-excluded"),
        pytest.param(50.0, set(), {"eu-north", "eu-west"}, id="none-within-reach"),
    ],
)
def test_latency_that_cannot_meet_the_slo_is_excluded(
    slo_ms: float, expected: set[str], excluded: set[str]
) -> None:
    boundary = intent(objective="cost", allowed_regions=["eu-west", "eu-north"])
    result = place(boundary, slo_ms, CATALOGUE, {}, {})
    assert chosen(result.weights) == expected
    assert {n for n, why in result.excluded.items() if "cannot meet" in why} == excluded


# --------------------------------------------------------------------------- through decide


CARBON_POLICY = make_policy(intent={"objective": "carbon"})


def carbon_snapshot(now: float, west: float, central: float, state: Any = None) -> Any:
    """eu-west serving everything on 2 replicas at target load; carbon per region."""
    return snapshot(
        now,
        (row("v1", "eu-west", ongoing=4.0),),
        state or applied(regions={"eu-west": 1.0}, replicas={"eu-west": 2}),
        signals=(RegionSignals("eu-west", west), RegionSignals("eu-central", central)),
    )


@pytest.mark.parametrize(
    ("central", "moves"),
    [
        pytest.param(95.0, False, id="5pct-better-stays"),
        pytest.param(92.0, False, id="8pct-better-stays"),
        pytest.param(85.0, True, id="15pct-better-moves"),
        pytest.param(50.0, True, id="50pct-better-moves"),
    ],
)
def test_region_hysteresis_moves_weights_only_for_a_large_improvement(
    central: float, moves: bool
) -> None:
    snap = carbon_snapshot(100.0, 100.0, central)
    decision, _ = decide(context(100.0, snap, CARBON_POLICY))
    region_moves = [a for a in decision.actions if isinstance(a, SetRegionWeights)]
    replica_moves = [a for a in decision.actions if isinstance(a, SetReplicas)]
    if moves:
        # Make-before-break: replicas start in eu-central first; eu-west keeps serving.
        assert region_moves == []
        assert [dict(a.replicas) for a in replica_moves] == [{"eu-west": 2, "eu-central": 2}]
    else:
        assert region_moves == []
        assert replica_moves == []


def test_carbon_spike_moves_traffic_and_replicas_to_the_other_allowed_region() -> None:
    state = None
    world = applied(regions={"eu-west": 1.0}, replicas={"eu-west": 2})
    calm = [(100.0, 100.0, 120.0), (105.0, 100.0, 120.0)]
    spike = [(110.0 + 5 * i, 600.0, 120.0) for i in range(20)]
    decisions = []
    for now, west, central in calm + spike:
        decision, state = decide(
            context(now, carbon_snapshot(now, west, central, world), CARBON_POLICY, state)
        )
        world = apply_actions(world, decision.actions)
        decisions.append((now, decision))
    assert [d.mutating for _, d in decisions[:2]] == [(), ()]
    moved = [
        (now, d) for now, d in decisions if any(isinstance(a, SetRegionWeights) for a in d.actions)
    ]
    # One move, to eu-central, once the replicas started there at the spike had the policy's
    # cold-start horizon (60 s) to become ready; eu-west served everything meanwhile.
    assert len(moved) == 1
    (now, move) = moved[0]
    assert now == 110.0 + CARBON_POLICY.scaling.predictive.horizon_s
    weights = [a for a in move.actions if isinstance(a, SetRegionWeights)]
    assert [chosen(a.weights) for a in weights] == [{"eu-central"}]
    assert sum(weights[0].weights.values()) == pytest.approx(1.0)
    first = decisions[2][1]
    assert [dict(a.replicas) for a in first.actions if isinstance(a, SetReplicas)] == [
        {"eu-west": 2, "eu-central": 2}
    ]
    assert chosen(world.region_weights) == {"eu-central"}
    assert {k: v for k, v in world.replicas.items() if v} == {"eu-central": 2}


def test_unhealthy_region_is_evacuated_at_once_despite_the_traffic_shift_cap() -> None:
    policy = make_policy(guardrails={"max_traffic_shift": 20})
    snap = snapshot(
        100.0,
        (row("v1", "eu-west", ongoing=4.0),),
        applied(regions={"eu-west": 1.0}, replicas={"eu-west": 2}),
        signals=(RegionSignals("eu-west", healthy=False),),
    )
    decision, _ = decide(context(100.0, snap, policy))
    (weights,) = [a for a in decision.actions if isinstance(a, SetRegionWeights)]
    assert chosen(weights.weights) == {"eu-central"}
    (replicas,) = [a for a in decision.actions if isinstance(a, SetReplicas)]
    assert {k: v for k, v in replicas.replicas.items() if v} == {"eu-central": 2}

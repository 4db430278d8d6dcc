"""The guard pipeline: each guard on its own, table-driven, then the fixed order they run in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from autoops.core.guards import (
    PIPELINE,
    GuardInput,
    GuardResult,
    apply_guards,
    blast_radius,
    bounds,
    budget_compliance,
    cooldown,
    rate_limit,
    replica_cost,
)
from autoops.model import (
    MUTATING_KINDS,
    Action,
    ActionKind,
    Alert,
    Hold,
    Promote,
    Retrain,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)
from autoops.policy.schema import Policy
from tests.unit.fakes import CATALOGUE, make_policy

NOW = 10_000.0


def guard_input(
    policy: Policy | None = None,
    *,
    traffic: Mapping[str, float] | None = None,
    regions: Mapping[str, float] | None = None,
    replicas: Mapping[str, int] | None = None,
    action_times: tuple[float, ...] = (),
    last_scale_at: float | None = None,
    last_direction: int = 0,
    forced: frozenset[str] = frozenset(),
    slo_at_risk: bool = False,
    exempt: bool = False,
) -> GuardInput:
    return GuardInput(
        policy=policy or make_policy(),
        catalogue=CATALOGUE,
        now=NOW,
        applied_traffic=dict(traffic or {"v1": 1.0}),
        applied_region_weights=dict(regions or {"eu-west": 1.0}),
        applied_replicas=dict(replicas or {"eu-west": 4}),
        action_times=action_times,
        last_scale_at=last_scale_at,
        last_direction=last_direction,
        forced_regions=forced,
        slo_at_risk=slo_at_risk,
        exempt_traffic=exempt,
    )


def run(guard: Any, actions: list[Action], g: GuardInput) -> GuardResult:
    result = GuardResult(list(actions))
    guard(result, g)
    return result


def nonzero(mapping: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in mapping.items() if v}


def weights_of(action: Action) -> dict[str, float]:
    assert isinstance(action, SetTraffic | SetRegionWeights)
    return nonzero(action.weights)


def replicas_of(action: Action) -> dict[str, int]:
    assert isinstance(action, SetReplicas)
    return {k: v for k, v in action.replicas.items() if v}


# --------------------------------------------------------------------------- 1. bounds


@pytest.mark.parametrize(
    ("scaling", "applied_regions", "action", "expected", "reason"),
    [
        pytest.param(
            {"max_replicas": 20},
            None,
            {"eu-west": 30},
            {"eu-west": 20},
            "max_replicas=20",
            id="above-max-clamped-to-max",
        ),
        pytest.param(
            {"min_replicas": 3},
            None,
            {"eu-west": 1},
            {"eu-west": 3},
            "min_replicas=3",
            id="below-min-raised-to-min",
        ),
        pytest.param(
            {"max_replicas": 20},
            None,
            {"eu-west": 20, "eu-central": 10},
            {"eu-west": 13, "eu-central": 7},
            "max_replicas=20",
            id="clamp-keeps-region-proportions",
        ),
        pytest.param(
            {"min_replicas": 2},
            {"eu-central": 1.0},
            {"eu-west": 0},
            {"eu-central": 2},
            "min_replicas=2",
            id="zero-raised-to-min-in-applied-regions",
        ),
    ],
)
def test_bounds_clamps_replicas_and_records_the_change(
    scaling: dict[str, int],
    applied_regions: dict[str, float] | None,
    action: dict[str, int],
    expected: dict[str, int],
    reason: str,
) -> None:
    g = guard_input(make_policy(scaling=scaling), regions=applied_regions)
    result = run(bounds, [SetReplicas(action)], g)
    (out,) = result.actions
    assert replicas_of(out) == expected
    (change,) = result.changes
    assert change.guard == "bounds"
    assert change.action is ActionKind.SET_REPLICAS
    assert reason in change.reason


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(SetReplicas({"eu-west": 1}), id="replicas-at-min"),
        pytest.param(SetReplicas({"eu-west": 20}), id="replicas-at-max"),
        pytest.param(SetTraffic({"v1": 0.9, "v2": 0.1}), id="traffic-summing-to-one"),
        pytest.param(SetCascadeThreshold(0.3), id="threshold-at-min"),
        pytest.param(SetCascadeThreshold(1.0), id="threshold-at-one"),
    ],
)
def test_bounds_leaves_actions_in_range_alone(action: Action) -> None:
    result = run(bounds, [action], guard_input())
    assert result.actions == [action]
    assert result.changes == []


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(
            SetTraffic({"v1": 0.3, "v2": 0.1}), {"v1": 0.75, "v2": 0.25}, id="traffic-scaled-to-one"
        ),
        pytest.param(
            SetTraffic({"v1": 9.0, "v2": 1.0}),
            {"v1": 0.9, "v2": 0.1},
            id="weights-above-one-keep-their-proportions",
        ),
        pytest.param(
            SetRegionWeights({"eu-west": -0.5, "eu-central": 0.5}),
            {"eu-central": 1.0},
            id="negative-region-weight-clipped",
        ),
        pytest.param(
            SetRegionWeights({"eu-west": 0.2, "eu-central": 0.2}),
            {"eu-west": 0.5, "eu-central": 0.5},
            id="region-weights-scaled-up-to-one",
        ),
    ],
)
def test_bounds_normalises_weights(action: Action, expected: dict[str, float]) -> None:
    result = run(bounds, [action], guard_input())
    (out,) = result.actions
    assert weights_of(out) == pytest.approx(expected)
    assert sum(weights_of(out).values()) == pytest.approx(1.0)
    (change,) = result.changes
    assert (change.guard, change.reason) == ("bounds", "weights normalised")


@pytest.mark.parametrize(
    ("min_threshold", "threshold", "expected"),
    [
        pytest.param(0.3, 0.1, 0.3, id="below-min-threshold-raised"),
        pytest.param(0.5, 0.45, 0.5, id="below-custom-min-threshold-raised"),
        pytest.param(0.3, 1.4, 1.0, id="above-one-lowered"),
    ],
)
def test_bounds_keeps_cascade_threshold_at_or_above_min_threshold(
    min_threshold: float, threshold: float, expected: float
) -> None:
    policy = make_policy(degradation={"min_threshold": min_threshold})
    result = run(bounds, [SetCascadeThreshold(threshold)], guard_input(policy))
    (out,) = result.actions
    assert isinstance(out, SetCascadeThreshold)
    assert out.threshold == pytest.approx(expected)
    assert out.threshold >= min_threshold
    assert result.changes[0].guard == "bounds"


# --------------------------------------------------------------------------- 2. cooldown


@pytest.mark.parametrize(
    ("last_scale_ago", "last_direction", "target", "kept"),
    [
        pytest.param(10.0, +1, 2, False, id="scale-down-soon-after-scale-up-dropped"),
        pytest.param(10.0, -1, 2, False, id="scale-down-soon-after-scale-down-dropped"),
        pytest.param(10.0, -1, 6, False, id="scale-up-soon-after-scale-down-dropped"),
        pytest.param(10.0, +1, 6, True, id="continuing-ramp-up-after-up-allowed"),
        pytest.param(40.0, +1, 2, True, id="scale-down-after-cooldown-allowed"),
        pytest.param(30.0, +1, 2, True, id="scale-down-exactly-at-cooldown-allowed"),
        pytest.param(None, 0, 2, True, id="first-ever-scale-allowed"),
        pytest.param(10.0, +1, 4, True, id="same-total-redistribution-allowed"),
    ],
)
def test_cooldown_drops_scaling_too_soon_after_the_last_one_except_a_ramp(
    last_scale_ago: float | None, last_direction: int, target: int, kept: bool
) -> None:
    policy = make_policy(guardrails={"scale_cooldown_s": 30})
    g = guard_input(
        policy,
        replicas={"eu-west": 4},
        last_scale_at=None if last_scale_ago is None else NOW - last_scale_ago,
        last_direction=last_direction,
    )
    action = SetReplicas({"eu-west": target})
    result = run(cooldown, [action], g)
    if kept:
        assert result.actions == [action]
        assert result.changes == []
    else:
        assert result.actions == []
        (change,) = result.changes
        assert (change.guard, change.after) == ("cooldown", "dropped")


@pytest.mark.parametrize(
    ("target", "forced", "kept"),
    [
        pytest.param(
            {"eu-west": 0.51, "eu-central": 0.49}, frozenset(), False, id="1-point-dropped"
        ),
        pytest.param(
            {"eu-west": 0.485, "eu-central": 0.515}, frozenset(), False, id="1.5-points-dropped"
        ),
        pytest.param({"eu-west": 0.45, "eu-central": 0.55}, frozenset(), True, id="5-points-kept"),
        pytest.param(
            {"eu-west": 0.51, "eu-central": 0.49},
            frozenset({"eu-central"}),
            True,
            id="tiny-move-kept-while-evacuating",
        ),
    ],
)
def test_hysteresis_drops_region_moves_under_two_points(
    target: dict[str, float], forced: frozenset[str], kept: bool
) -> None:
    g = guard_input(regions={"eu-west": 0.5, "eu-central": 0.5}, forced=forced)
    action = SetRegionWeights(target)
    result = run(cooldown, [action], g)
    assert (result.actions == [action]) is kept
    if not kept:
        (change,) = result.changes
        assert (change.guard, change.after) == ("hysteresis", "dropped")


# --------------------------------------------------------------------------- 3. rate limit

_EVERY_MUTATION: list[Action] = [
    Promote("v2"),
    SetCascadeThreshold(0.5),
    SetReplicas({"eu-west": 6}),
    SetTraffic({"v1": 0.5, "v2": 0.5}),
    Retrain("v1", NOW + 60),
    SetRegionWeights({"eu-central": 1.0}),
    Rollback("v2", "v1"),
]


@pytest.mark.parametrize(
    ("limit", "ages", "actions", "kept_kinds"),
    [
        pytest.param(
            3,
            (10.0, 20.0),
            [SetReplicas({"eu-west": 6})],
            [ActionKind.SET_REPLICAS],
            id="under-limit-kept",
        ),
        pytest.param(
            3,
            (10.0, 20.0, 30.0),
            [SetReplicas({"eu-west": 6})],
            [],
            id="at-limit-dropped",
        ),
        pytest.param(
            3,
            (3601.0, 4000.0, 7200.0, 30.0),
            [SetReplicas({"eu-west": 6}), SetCascadeThreshold(0.5)],
            [ActionKind.SET_REPLICAS, ActionKind.SET_CASCADE_THRESHOLD],
            id="actions-older-than-an-hour-not-counted",
        ),
        pytest.param(
            2,
            (3600.0, 3600.0, 10.0),
            [SetReplicas({"eu-west": 6})],
            [ActionKind.SET_REPLICAS],
            id="action-exactly-an-hour-ago-not-counted",
        ),
        pytest.param(
            2,
            (10.0,),
            [SetReplicas({"eu-west": 6}), Rollback("v2", "v1")],
            [ActionKind.ROLLBACK],
            id="rollback-kept-over-set-replicas",
        ),
        pytest.param(
            2,
            (),
            _EVERY_MUTATION,
            [ActionKind.SET_TRAFFIC, ActionKind.ROLLBACK],
            id="safety-first-priority-order",
        ),
        pytest.param(
            4,
            (),
            _EVERY_MUTATION,
            [
                ActionKind.SET_REPLICAS,
                ActionKind.SET_TRAFFIC,
                ActionKind.SET_REGION_WEIGHTS,
                ActionKind.ROLLBACK,
            ],
            id="priority-order-with-four-slots",
        ),
    ],
)
def test_rate_limit_keeps_at_most_max_actions_per_hour(
    limit: int, ages: tuple[float, ...], actions: list[Action], kept_kinds: list[ActionKind]
) -> None:
    policy = make_policy(guardrails={"max_actions_per_hour": limit})
    g = guard_input(policy, action_times=tuple(NOW - age for age in ages))
    result = run(rate_limit, actions, g)
    mutating = [a for a in result.actions if a.kind in MUTATING_KINDS]
    assert [a.kind for a in mutating] == kept_kinds
    dropped = len(actions) - len(kept_kinds)
    alerts = [a for a in result.actions if isinstance(a, Alert)]
    if dropped:
        assert len(alerts) == 1
        assert alerts[0].severity == "warning"
        assert f"{dropped} change(s) held back" in alerts[0].message
        assert [c.guard for c in result.changes] == ["rate_limit"] * dropped
    else:
        assert alerts == []
        assert result.changes == []


def test_rate_limit_never_drops_or_counts_non_mutating_actions() -> None:
    policy = make_policy(guardrails={"max_actions_per_hour": 1})
    g = guard_input(policy, action_times=(NOW - 5,))
    hold, alert = Hold("waiting"), Alert("info", "fyi")
    result = run(rate_limit, [hold, SetReplicas({"eu-west": 6}), alert], g)
    assert result.actions[:2] == [hold, alert]
    assert all(a.kind not in MUTATING_KINDS for a in result.actions)


# --------------------------------------------------------------------------- 4. blast radius


@pytest.mark.parametrize(
    ("applied_traffic", "target", "exempt", "expected"),
    [
        pytest.param(
            {"v1": 1.0},
            {"v1": 0.2, "v2": 0.8},
            False,
            {"v1": 0.5, "v2": 0.5},
            id="shift-toward-new-version-capped",
        ),
        pytest.param(
            {"v1": 1.0},
            {"v1": 0.6, "v2": 0.4},
            False,
            {"v1": 0.6, "v2": 0.4},
            id="shift-within-limit-untouched",
        ),
        pytest.param(
            {"v1": 0.2, "v2": 0.8},
            {"v1": 1.0},
            True,
            {"v1": 1.0},
            id="exempt-rollback-not-capped",
        ),
        pytest.param(
            {"v1": 0.2, "v2": 0.8},
            {"v2": 1.0},
            True,
            {"v2": 1.0},
            id="exempt-promotion-not-capped",
        ),
        pytest.param(
            {"v1": 0.2, "v2": 0.8},
            {"v1": 1.0},
            False,
            {"v1": 0.7, "v2": 0.3},
            id="same-move-not-exempt-is-capped",
        ),
    ],
)
def test_blast_radius_caps_traffic_moved_toward_a_version(
    applied_traffic: dict[str, float],
    target: dict[str, float],
    exempt: bool,
    expected: dict[str, float],
) -> None:
    policy = make_policy(guardrails={"max_traffic_shift": 50})
    g = guard_input(policy, traffic=applied_traffic, exempt=exempt)
    result = run(blast_radius, [SetTraffic(target)], g)
    (out,) = result.actions
    assert weights_of(out) == pytest.approx(expected)
    assert bool(result.changes) is (weights_of(out) != target)
    if result.changes:
        assert result.changes[0].guard == "blast_radius"


@pytest.mark.parametrize(
    ("forced", "expected"),
    [
        pytest.param(
            frozenset(), {"eu-west": 0.7, "eu-central": 0.3}, id="move-to-new-region-capped"
        ),
        pytest.param(
            frozenset({"eu-west"}), {"eu-central": 1.0}, id="evacuating-forced-region-free"
        ),
        pytest.param(
            frozenset({"eu-north"}),
            {"eu-west": 0.7, "eu-central": 0.3},
            id="forced-region-not-serving-does-not-lift-cap",
        ),
    ],
)
def test_blast_radius_caps_traffic_moved_toward_a_region(
    forced: frozenset[str], expected: dict[str, float]
) -> None:
    policy = make_policy(guardrails={"max_traffic_shift": 30})
    g = guard_input(policy, regions={"eu-west": 1.0}, forced=forced)
    result = run(blast_radius, [SetRegionWeights({"eu-central": 1.0})], g)
    (out,) = result.actions
    assert weights_of(out) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("scaling", "current", "target", "expected_total"),
    [
        pytest.param({"max_step": 2}, {"eu-west": 4}, {"eu-west": 10}, 6, id="scale-up-capped"),
        pytest.param({"max_step": 3}, {"eu-west": 10}, {"eu-west": 2}, 7, id="scale-down-capped"),
        pytest.param({"max_step": 3}, {"eu-west": 4}, {"eu-west": 7}, 7, id="step-within-limit"),
        pytest.param(
            {"max_step": 2},
            {"eu-west": 2, "eu-central": 2},
            {"eu-west": 6, "eu-central": 6},
            6,
            id="multi-region-capped",
        ),
        pytest.param({"max_step": None}, {"eu-west": 1}, {"eu-west": 20}, 20, id="no-max-step"),
        pytest.param(
            {"min_replicas": 0, "max_step": 2},
            {"eu-west": 5},
            {"eu-west": 0},
            3,
            id="scale-to-zero-capped",
        ),
    ],
)
def test_blast_radius_caps_replica_change_to_max_step(
    scaling: dict[str, Any],
    current: dict[str, int],
    target: dict[str, int],
    expected_total: int,
) -> None:
    g = guard_input(make_policy(scaling=scaling), replicas=current)
    result = run(blast_radius, [SetReplicas(target)], g)
    (out,) = result.actions
    assert isinstance(out, SetReplicas)
    assert out.total == expected_total
    assert bool(result.changes) is (expected_total != sum(target.values()))
    if result.changes:
        assert result.changes[0].guard == "blast_radius"


# --------------------------------------------------------------------------- 5. compliance


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(
            SetRegionWeights({"eu-west": 0.5, "us-east": 0.5}),
            {"eu-west": 1.0},
            id="weights-outside-dropped-and-renormalised",
        ),
        pytest.param(
            SetRegionWeights({"us-east": 1.0}),
            {"eu-west": 0.5, "eu-central": 0.5},
            id="weights-only-outside-spread-over-allowed",
        ),
        pytest.param(
            SetReplicas({"eu-west": 2, "us-east": 2}),
            {"eu-west": 4},
            id="replicas-outside-moved-inside",
        ),
        pytest.param(
            SetReplicas({"us-east": 4}),
            {"eu-west": 2, "eu-central": 2},
            id="replicas-only-outside-spread-over-allowed",
        ),
    ],
)
def test_compliance_removes_regions_outside_the_boundary(
    action: Action, expected: dict[str, float]
) -> None:
    result = run(budget_compliance, [action], guard_input())
    (out,) = result.actions
    got = weights_of(out) if isinstance(out, SetRegionWeights) else replicas_of(out)
    assert got == pytest.approx(expected)
    (change,) = result.changes
    assert change.guard == "compliance"
    assert "us-east" in change.reason


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(SetRegionWeights({"eu-west": 0.4, "eu-central": 0.6}), id="weights-inside"),
        pytest.param(SetReplicas({"eu-west": 3, "eu-central": 1}), id="replicas-inside"),
    ],
)
def test_compliance_leaves_actions_inside_the_boundary_alone(action: Action) -> None:
    result = run(budget_compliance, [action], guard_input())
    assert result.actions == [action]
    assert result.changes == []


# --------------------------------------------------------------------------- 5. budget


@pytest.mark.parametrize(
    ("budget", "min_replicas", "action", "expected_total"),
    [
        pytest.param(5.0, 1, {"eu-west": 10}, 5, id="over-budget-capped-to-ceiling"),
        pytest.param(6.0, 1, {"eu-west": 4, "eu-central": 4}, 5, id="mixed-regions-capped"),
        pytest.param(1.0, 3, {"eu-west": 10}, 3, id="cap-never-below-min-replicas"),
        pytest.param(50.0, 1, {"eu-west": 10}, 10, id="under-budget-untouched"),
    ],
)
def test_budget_caps_replicas_to_the_ceiling(
    budget: float, min_replicas: int, action: dict[str, int], expected_total: int
) -> None:
    policy = make_policy(
        intent={"budget_usd_per_hour": budget}, scaling={"min_replicas": min_replicas}
    )
    result = run(budget_compliance, [SetReplicas(action)], guard_input(policy))
    (out,) = result.actions
    assert isinstance(out, SetReplicas)
    assert out.total == expected_total
    if expected_total != sum(action.values()):
        assert [c.guard for c in result.changes] == ["budget"]
        if expected_total > min_replicas:
            assert replica_cost(out.replicas, CATALOGUE) <= budget
    else:
        assert result.changes == []
    assert result.notes == []


def test_budget_gives_way_when_the_slo_is_at_risk_and_says_so() -> None:
    policy = make_policy(intent={"budget_usd_per_hour": 5.0})
    action = SetReplicas({"eu-west": 10})
    result = run(budget_compliance, [action], guard_input(policy, slo_at_risk=True))
    assert result.actions == [action]
    assert result.changes == []
    (note,) = result.notes
    assert "over the budget ceiling" in note
    assert "protect the SLO" in note


# --------------------------------------------------------------------------- the pipeline


def test_pipeline_runs_in_the_fixed_order() -> None:
    assert [name for name, _ in PIPELINE] == [
        "bounds",
        "cooldown",
        "rate_limit",
        "blast_radius",
        "budget_compliance",
    ]


@pytest.mark.parametrize(
    ("policy_overrides", "g_overrides", "actions", "expected_guards", "check"),
    [
        pytest.param(
            {"scaling": {"max_replicas": 20, "max_step": 3}},
            {"replicas": {"eu-west": 2}},
            [SetReplicas({"eu-west": 50})],
            ["bounds", "blast_radius"],
            lambda acts: replicas_of(acts[0]) == {"eu-west": 5},
            id="bounds-then-blast-radius",
        ),
        pytest.param(
            {"guardrails": {"scale_cooldown_s": 30, "max_actions_per_hour": 1}},
            {"last_scale_at": NOW - 5, "last_direction": 1},
            [SetReplicas({"eu-west": 2}), SetCascadeThreshold(0.5)],
            ["cooldown"],
            lambda acts: [a.kind for a in acts] == [ActionKind.SET_CASCADE_THRESHOLD],
            id="cooldown-drop-does-not-use-a-rate-limit-slot",
        ),
        pytest.param(
            {"guardrails": {"max_actions_per_hour": 1, "max_traffic_shift": 10}},
            {},
            [Rollback("v2", "v1"), SetRegionWeights({"eu-central": 1.0})],
            ["rate_limit"],
            lambda acts: [a.kind for a in acts] == [ActionKind.ROLLBACK, ActionKind.ALERT],
            id="rate-limited-action-never-reaches-blast-radius",
        ),
        pytest.param(
            {"guardrails": {"max_traffic_shift": 30}},
            {},
            [SetRegionWeights({"us-east": 1.0})],
            ["blast_radius", "compliance"],
            lambda acts: weights_of(acts[0]) == {"eu-west": 1.0},
            id="blast-radius-then-compliance",
        ),
        pytest.param(
            {"scaling": {"max_step": 4}, "intent": {"budget_usd_per_hour": 5.0}},
            {"replicas": {"eu-west": 2}},
            [SetReplicas({"eu-west": 12})],
            ["blast_radius", "budget"],
            lambda acts: replicas_of(acts[0]) == {"eu-west": 5},
            id="blast-radius-then-budget",
        ),
    ],
)
def test_apply_guards_runs_every_guard_in_order(
    policy_overrides: dict[str, Any],
    g_overrides: dict[str, Any],
    actions: list[Action],
    expected_guards: list[str],
    check: Any,
) -> None:
    g = guard_input(make_policy(**policy_overrides), **g_overrides)
    result = apply_guards(actions, g)
    assert [c.guard for c in result.changes] == expected_guards
    assert check(result.actions)

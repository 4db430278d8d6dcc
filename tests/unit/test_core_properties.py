"""Properties of `decide` over generated worlds, driven for several ticks.

Each example runs a small closed loop: build a snapshot from the fake applied state, decide,
carry the returned state forward and apply the returned actions to the fake applied state, so
the world evolves the way the controller steers it. The invariant checkers are plain functions
over decisions; the companion tests at the end show each checker catching a broken input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoops.core.decide import decide
from autoops.core.placement import split_replicas
from autoops.core.state import ControllerState, Phase, RolloutState, ScalingState
from autoops.model import (
    MUTATING_KINDS,
    Action,
    AppliedState,
    Decision,
    Promote,
    RegionSignals,
    Rollback,
    SetRegionWeights,
    SetReplicas,
    Snapshot,
    VersionMetrics,
)
from autoops.policy.schema import Policy
from tests.unit.fakes import CATALOGUE, apply_actions, context, make_policy, row, snapshot

REGIONS = CATALOGUE.names()
PROPERTY_SETTINGS = settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- the closed loop


@dataclass(frozen=True)
class Step:
    """One tick of the loop: when, what the world was before deciding, and the decision."""

    now: float
    world: AppliedState
    decision: Decision


def all_actions(decision: Decision) -> tuple[Action, ...]:
    """Applied and pending actions: a pending action must be just as safe once approved."""
    return (*decision.actions, *decision.pending_approval)


def world_rows(
    world: AppliedState,
    load: float | None,
    *,
    rate: float = 100.0,
    errors: float | None = 0.001,
    p99: float | None = 80.0,
) -> tuple[VersionMetrics, ...]:
    """Rows for every serving (version, region), sharing the load and rate by weight."""
    regions = {r: w for r, w in world.region_weights.items() if w > 0}
    versions = {v: w for v, w in world.traffic.items() if w > 0 and v in world.versions}
    region_sum, version_sum = sum(regions.values()), sum(versions.values())
    rows = []
    for v, vw in sorted(versions.items()):
        for r, rw in sorted(regions.items()):
            share = (vw / version_sum) * (rw / region_sum)
            rows.append(
                row(
                    v,
                    r,
                    rate=rate * share,
                    ongoing=None if load is None else load * share,
                    errors=errors,
                    p99=p99,
                    count=1000.0,
                )
            )
    return tuple(rows)


def run_loop(
    policy: Policy,
    world: AppliedState,
    ticks: Sequence[tuple[float, Callable[[float, AppliedState], Snapshot]]],
    state: ControllerState | None = None,
) -> list[Step]:
    """Drive `decide` over (time step, snapshot builder) ticks, evolving state and world."""
    now = 1_000.0
    state = state or ControllerState()
    steps: list[Step] = []
    for dt, build in ticks:
        now += dt
        decision, state = decide(context(now, build(now, world), policy, state))
        steps.append(Step(now, world, decision))
        world = apply_actions(world, decision.actions)
    return steps


# --------------------------------------------------------------------------- invariant checkers


def replica_bound_violations(actions: Iterable[Action], policy: Policy) -> list[str]:
    """SetReplicas totals outside [min_replicas, max_replicas]."""
    low, high = policy.scaling.min_replicas, policy.scaling.max_replicas
    return [
        f"{a.total} replicas outside [{low}, {high}]"
        for a in actions
        if isinstance(a, SetReplicas) and not low <= a.total <= high
    ]


def boundary_violations(actions: Iterable[Action], allowed: Iterable[str]) -> list[str]:
    """Weight or replicas given to a region outside the compliance boundary."""
    inside = set(allowed)
    out: list[str] = []
    for a in actions:
        if isinstance(a, SetRegionWeights):
            out += [f"weight {w} to {r}" for r, w in a.weights.items() if w > 0 and r not in inside]
        elif isinstance(a, SetReplicas):
            out += [
                f"{n} replicas in {r}" for r, n in a.replicas.items() if n > 0 and r not in inside
            ]
    return out


def rate_limit_violations(
    decided: Sequence[tuple[float, Sequence[Action]]], limit: int, window: float = 3600.0
) -> list[str]:
    """Windows [t, t + window) holding more than ``limit`` mutating actions."""
    counts = [(t, sum(1 for a in acts if a.kind in MUTATING_KINDS)) for t, acts in decided]
    out: list[str] = []
    for start, _ in counts:
        total = sum(n for t, n in counts if start <= t < start + window)
        if total > limit:
            out.append(f"{total} mutating actions in the hour from t={start:g} (limit {limit})")
    return out


def missing_data_violations(actions: Iterable[Action], current_total: int) -> list[str]:
    """A scale-down below the current replicas, or a promotion."""
    out: list[str] = []
    for a in actions:
        if isinstance(a, SetReplicas) and a.total < current_total:
            out.append(f"scaled down {current_total} -> {a.total} on missing data")
        if isinstance(a, Promote):
            out.append(f"promoted {a.version} on missing data")
    return out


def rollbacks(actions: Iterable[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, Rollback)]


def replica_changes(actions: Iterable[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, SetReplicas)]


# --------------------------------------------------------------------------- generators


@st.composite
def policies(draw: st.DrawFn, **fixed: Any) -> Policy:
    """A valid policy across the knobs the guards and rules read."""
    low = draw(st.integers(0, 3))
    high = draw(st.integers(max(low, 1), low + 10))
    doc: dict[str, Any] = {
        "intent": {
            "allowed_regions": draw(
                st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True)
            ),
            "objective": draw(st.sampled_from(["latency", "cost", "carbon", "weighted"])),
            "min_regions": draw(st.integers(1, 2)),
            "budget_usd_per_hour": draw(st.none() | st.floats(2.0, 20.0)),
            "carbon_ceiling_g_per_kwh": draw(st.none() | st.just(200.0)),
        },
        "scaling": {
            "min_replicas": low,
            "max_replicas": high,
            "max_step": draw(st.none() | st.integers(1, 4)),
            "upscale_stabilization_s": draw(st.sampled_from([0, 15])),
            "downscale_stabilization_s": draw(st.sampled_from([0, 60])),
            "predictive": {"enabled": draw(st.booleans())},
        },
        "guardrails": {
            "max_actions_per_hour": draw(st.integers(1, 6)),
            "scale_cooldown_s": draw(st.sampled_from([0, 30, 120])),
            "max_traffic_shift": draw(st.sampled_from([10, 30, 100])),
        },
    }
    for section, values in fixed.items():
        doc[section] = {**doc.get(section, {}), **values}
    return make_policy(**doc)


@st.composite
def worlds(
    draw: st.DrawFn,
    policy: Policy,
    regions: Sequence[str] = REGIONS,
    canary: bool | None = None,
    any_size: bool = False,
) -> AppliedState:
    """An applied state serving regions in or out of the boundary.

    Replicas are within bounds unless ``any_size``, where they may start outside them (as after
    an operator tightens the policy).
    """
    serving = draw(st.lists(st.sampled_from(list(regions)), min_size=1, max_size=2, unique=True))
    weights = {r: 1.0 / len(serving) for r in serving}
    low, high = policy.scaling.min_replicas, policy.scaling.max_replicas
    total = draw(st.integers(0, high + 10) if any_size else st.integers(low, high))
    with_canary = draw(st.booleans()) if canary is None else canary
    traffic = {"v1": 0.5, "v2": 0.5} if with_canary else {"v1": 1.0}
    return AppliedState(
        versions=("v1", "v2") if with_canary else ("v1",),
        traffic=traffic,
        region_weights=weights,
        replicas=split_replicas(total, weights),
    )


def region_signals() -> st.SearchStrategy[tuple[RegionSignals, ...]]:
    carbon = st.none() | st.floats(20.0, 600.0)
    health = st.sampled_from([None, None, True, False])
    return st.tuples(
        *(st.builds(RegionSignals, st.just(r), carbon, st.none(), health) for r in REGIONS)
    )


@st.composite
def busy_ticks(draw: st.DrawFn) -> list[tuple[float, Callable[[float, AppliedState], Snapshot]]]:
    """Ticks with load swinging widely, changing grids and flaky regions: many decisions."""
    ticks = []
    for _ in range(draw(st.integers(3, 14))):
        dt = draw(st.sampled_from([5.0, 60.0, 300.0, 1200.0]))
        load = draw(st.floats(0.0, 80.0))
        errors = draw(st.sampled_from([0.001, 0.001, 0.2]))
        sigs = draw(region_signals())

        def build(
            now: float,
            world: AppliedState,
            load: float = load,
            errors: float = errors,
            sigs: Any = sigs,
        ) -> Snapshot:
            return snapshot(now, world_rows(world, load, errors=errors), world, signals=sigs)

        ticks.append((dt, build))
    return ticks


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(data=st.data())
def test_set_replicas_always_within_min_and_max(data: st.DataObject) -> None:
    policy = data.draw(policies())
    world = data.draw(worlds(policy, any_size=True))  # may start outside the bounds
    steps = run_loop(policy, world, data.draw(busy_ticks()))
    for step in steps:
        assert replica_bound_violations(all_actions(step.decision), policy) == []


@PROPERTY_SETTINGS
@given(data=st.data())
def test_traffic_and_replicas_never_leave_the_allowed_regions(data: st.DataObject) -> None:
    policy = data.draw(policies())
    world = data.draw(worlds(policy))  # may start outside the boundary
    steps = run_loop(policy, world, data.draw(busy_ticks()))
    for step in steps:
        assert boundary_violations(all_actions(step.decision), policy.intent.allowed_regions) == []


@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutating_actions_per_hour_never_exceed_the_rate_limit(data: st.DataObject) -> None:
    policy = data.draw(policies())
    world = data.draw(worlds(policy))
    steps = run_loop(policy, world, data.draw(busy_ticks()))
    decided = [(s.now, s.decision.actions) for s in steps]
    assert rate_limit_violations(decided, policy.guardrails.max_actions_per_hour) == []


MISSING_KINDS = ["outage", "empty", "stale", "holes"]


@st.composite
def missing_data_ticks(
    draw: st.DrawFn, policy: Policy
) -> list[tuple[float, Callable[[float, AppliedState], Snapshot]]]:
    """Ticks whose metrics look like a lull and a perfect canary, but cannot be trusted."""
    stale_after = policy.remediations.metrics_stale_after_s
    ticks = []
    for _ in range(draw(st.integers(2, 10))):
        dt = draw(st.sampled_from([5.0, 60.0, 600.0]))
        kind = draw(st.sampled_from(MISSING_KINDS))
        age = draw(st.floats(stale_after + 1.0, 10 * stale_after))
        holes = draw(
            st.lists(st.sampled_from(["ongoing", "rate", "errors"]), min_size=3, max_size=12)
        )

        def build(
            now: float,
            world: AppliedState,
            kind: str = kind,
            age: float = age,
            holes: list[str] = holes,
        ) -> Snapshot:
            # A lull (would scale down) and a healthy canary (would promote)...
            rows = world_rows(world, 0.1)
            if kind == "outage":
                return snapshot(now, rows, world, outage=True)
            if kind == "empty":
                return snapshot(now, (), world)
            if kind == "stale":
                return replace(snapshot(now, rows, world), last_metrics_at=now - age)
            # ...with holes: load missing somewhere, and the canary's rate or errors missing.
            punched = list(rows)
            for i, hole in enumerate(holes):
                j = i % len(punched)
                field = {
                    "ongoing": "ongoing_requests",
                    "rate": "request_rate",
                    "errors": "error_ratio",
                }
                punched[j] = replace(punched[j], **{field[hole]: None})
            punched[0] = replace(punched[0], ongoing_requests=None)
            for j, r in enumerate(punched):
                if r.version == "v2" and r.request_rate is not None and r.error_ratio is not None:
                    punched[j] = replace(r, error_ratio=None)
                    break
            return snapshot(now, tuple(punched), world)

        ticks.append((dt, build))
    return ticks


@PROPERTY_SETTINGS
@given(data=st.data())
def test_missing_data_never_scales_down_nor_promotes(data: st.DataObject) -> None:
    policy = data.draw(
        policies(intent={"budget_usd_per_hour": None}, scaling={"downscale_stabilization_s": 0})
    )
    world = data.draw(worlds(policy, regions=policy.intent.allowed_regions, canary=True))
    # The canary is at its last step, passing long enough: one trusted pass would promote it.
    ripe = ControllerState(
        rollout=RolloutState(
            phase=Phase.PROGRESSING,
            stable_version="v1",
            canary_version="v2",
            step=len(policy.rollout.steps) - 1,
            step_started_at=0.0,
            last_progress_at=1_000.0,
        ),
        scaling=ScalingState(below_since=0.0),
    )
    state = data.draw(st.sampled_from([ripe, ControllerState()]))
    steps = run_loop(policy, world, data.draw(missing_data_ticks(policy)), state)
    for step in steps:
        current = sum(step.world.replicas.values())
        assert missing_data_violations(all_actions(step.decision), current) == []


@st.composite
def fleet_fault_ticks(
    draw: st.DrawFn, policy: Policy
) -> list[tuple[float, Callable[[float, AppliedState], Snapshot]]]:
    """Every version, in every region, errs and/or is slow by the same amount."""
    slo = policy.slo
    ticks = []
    for _ in range(draw(st.integers(2, 12))):
        dt = draw(st.sampled_from([5.0, 15.0, 60.0]))
        bad_errors = draw(st.booleans())
        bad_latency = draw(st.booleans()) or not bad_errors
        errors = draw(st.floats(slo.error_rate * 2, 0.6)) if bad_errors else 0.001
        p99 = draw(st.floats(slo.latency_p99_ms * 1.2, 5_000.0)) if bad_latency else 80.0
        rate = draw(st.floats(10.0, 500.0))

        def build(
            now: float,
            world: AppliedState,
            errors: float = errors,
            p99: float = p99,
            rate: float = rate,
        ) -> Snapshot:
            rows = world_rows(world, 4.0, rate=rate, errors=errors, p99=p99)
            return snapshot(now, rows, world)

        ticks.append((dt, build))
    return ticks


@PROPERTY_SETTINGS
@given(data=st.data())
def test_fault_on_every_version_never_rolls_back(data: st.DataObject) -> None:
    policy = data.draw(policies(rollout={"failed_check_limit": data.draw(st.integers(1, 3))}))
    world = data.draw(worlds(policy, regions=policy.intent.allowed_regions, canary=True))
    mid_rollout = ControllerState(
        rollout=RolloutState(
            phase=Phase.PROGRESSING,
            stable_version="v1",
            canary_version="v2",
            step=data.draw(st.integers(0, len(policy.rollout.steps) - 1)),
            failed_checks=data.draw(st.integers(0, policy.rollout.failed_check_limit - 1)),
            step_started_at=1_000.0,
            last_progress_at=1_000.0,
        )
    )
    state = data.draw(st.sampled_from([mid_rollout, ControllerState()]))
    steps = run_loop(policy, world, data.draw(fleet_fault_ticks(policy)), state)
    for step in steps:
        assert rollbacks(all_actions(step.decision)) == []


@st.composite
def steady_ticks(
    draw: st.DrawFn, policy: Policy, replicas: int
) -> list[tuple[float, Callable[[float, AppliedState], Snapshot]]]:
    """Constant load with noise inside 90% of the tolerance band; rate noise in +/- pairs."""
    target, tol = policy.scaling.target_ongoing_requests, policy.scaling.tolerance
    base_rate = draw(st.floats(20.0, 500.0))
    n = draw(st.integers(10, 30))
    factors = draw(
        st.lists(st.floats(1 - 0.9 * tol, 1 + 0.9 * tol), min_size=2 * n, max_size=2 * n)
    )
    wobble = draw(st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n))
    ticks = []
    for i in range(2 * n):
        # Antithetic pairs (+e, -e): noise around a level, never a trend (|t| < 2.6 < 3).
        noise = wobble[i // 2] * (1 if i % 2 == 0 else -1)
        load = replicas * target * factors[i]
        rate = base_rate * (1 + noise)

        def build(
            now: float, world: AppliedState, load: float = load, rate: float = rate
        ) -> Snapshot:
            return snapshot(now, world_rows(world, load, rate=rate), world)

        ticks.append((policy.tick_interval_s, build))
    return ticks


@pytest.mark.parametrize("predictive", [False, True], ids=["reactive", "predictive"])
@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_noise_inside_the_tolerance_band_never_scales(
    predictive: bool, data: st.DataObject
) -> None:
    policy = make_policy(
        scaling={
            "min_replicas": 1,
            "max_replicas": 50,
            "target_ongoing_requests": data.draw(st.sampled_from([1.0, 2.0, 5.0])),
            "tolerance": data.draw(st.floats(0.05, 0.3)),
            "upscale_stabilization_s": 0,
            "downscale_stabilization_s": 0,
            "predictive": {"enabled": predictive},
        }
    )
    replicas = data.draw(st.integers(1, 20))
    world = AppliedState(
        versions=("v1",),
        traffic={"v1": 1.0},
        region_weights={"eu-west": 1.0},
        replicas={"eu-west": replicas},
    )
    steps = run_loop(policy, world, data.draw(steady_ticks(policy, replicas)))
    for step in steps:
        assert replica_changes(all_actions(step.decision)) == []


# --------------------------------------------------------------------------- the checkers can fail


@pytest.mark.parametrize(
    ("actions", "bad"),
    [
        pytest.param([SetReplicas({"eu-west": 21})], True, id="over-max"),
        pytest.param([SetReplicas({"eu-west": 0})], True, id="under-min"),
        pytest.param([SetReplicas({"eu-west": 10, "eu-central": 11})], True, id="over-max-split"),
        pytest.param(
            [SetReplicas({"eu-west": 20}), SetReplicas({"eu-west": 1})], False, id="edges"
        ),
    ],
)
def test_replica_bound_checker_catches_out_of_bounds_actions(
    actions: list[Action], bad: bool
) -> None:
    policy = make_policy(scaling={"min_replicas": 1, "max_replicas": 20})
    assert bool(replica_bound_violations(actions, policy)) is bad


@pytest.mark.parametrize(
    ("actions", "bad"),
    [
        pytest.param(
            [SetRegionWeights({"eu-west": 0.5, "us-east": 0.5})], True, id="weight-outside"
        ),
        pytest.param([SetReplicas({"eu-west": 1, "us-east": 1})], True, id="replicas-outside"),
        pytest.param(
            [SetRegionWeights({"eu-west": 1.0, "us-east": 0.0})], False, id="zero-outside"
        ),
        pytest.param([SetReplicas({"eu-central": 3, "us-east": 0})], False, id="inside"),
    ],
)
def test_boundary_checker_catches_regions_outside_the_boundary(
    actions: list[Action], bad: bool
) -> None:
    assert bool(boundary_violations(actions, ["eu-west", "eu-central"])) is bad


def _mutations(n: int) -> list[Action]:
    return [SetReplicas({"eu-west": i + 1}) for i in range(n)]


@pytest.mark.parametrize(
    ("decided", "bad"),
    [
        pytest.param([(0.0, _mutations(3))], True, id="burst-over-limit"),
        pytest.param([(0.0, _mutations(1)), (3599.0, _mutations(2))], True, id="spread-over-limit"),
        pytest.param([(0.0, _mutations(2)), (3600.0, _mutations(2))], False, id="next-hour-ok"),
        pytest.param([(0.0, [*_mutations(2), Rollback("v2", "v1")])], True, id="rollback-counts"),
    ],
)
def test_rate_limit_checker_catches_too_many_actions_in_an_hour(
    decided: list[tuple[float, list[Action]]], bad: bool
) -> None:
    assert bool(rate_limit_violations(decided, limit=2)) is bad


@pytest.mark.parametrize(
    ("actions", "bad"),
    [
        pytest.param([SetReplicas({"eu-west": 3})], True, id="scale-down"),
        pytest.param([Promote("v2")], True, id="promote"),
        pytest.param([SetReplicas({"eu-west": 2, "eu-central": 2})], False, id="redistribution"),
        pytest.param([SetReplicas({"eu-west": 6})], False, id="scale-up"),
    ],
)
def test_missing_data_checker_catches_scale_down_and_promotion(
    actions: list[Action], bad: bool
) -> None:
    assert bool(missing_data_violations(actions, current_total=4)) is bad


def test_oscillation_check_catches_a_controller_that_flaps() -> None:
    # A loop whose every other decision scales: the same check the band property uses fires.
    flapping = [(5.0, SetReplicas({"eu-west": 4 + i % 2})) for i in range(4)]
    assert len(replica_changes(a for _, a in flapping)) == 4


# --------------------------------------------------------------------------- the scenarios bite


def _ripe_canary() -> ControllerState:
    return ControllerState(
        rollout=RolloutState(
            phase=Phase.PROGRESSING,
            stable_version="v1",
            canary_version="v2",
            step=1,
            step_started_at=0.0,
            last_progress_at=1_000.0,
        ),
        scaling=ScalingState(below_since=0.0),
    )


_CANARY_WORLD = AppliedState(
    versions=("v1", "v2"),
    traffic={"v1": 0.5, "v2": 0.5},
    region_weights={"eu-west": 1.0},
    replicas={"eu-west": 6},
)


def test_the_missing_data_scenario_with_trusted_data_does_scale_down_and_promote() -> None:
    def lull(now: float, world: AppliedState) -> Snapshot:
        return snapshot(now, world_rows(world, 0.1), world)

    (step,) = run_loop(make_policy(), _CANARY_WORLD, [(5.0, lull)], _ripe_canary())
    assert len(missing_data_violations(all_actions(step.decision), 6)) == 2


def test_the_fleet_fault_scenario_with_a_canary_only_fault_does_roll_back() -> None:
    def canary_fault(now: float, world: AppliedState) -> Snapshot:
        rows = tuple(
            replace(r, error_ratio=0.3) if r.version == "v2" else r for r in world_rows(world, 4.0)
        )
        return snapshot(now, rows, world)

    steps = run_loop(make_policy(), _CANARY_WORLD, [(15.0, canary_fault)] * 3, _ripe_canary())
    assert any(rollbacks(all_actions(s.decision)) for s in steps)


def test_the_band_scenario_with_load_outside_the_band_does_scale() -> None:
    def surge(now: float, world: AppliedState) -> Snapshot:
        return snapshot(now, world_rows(world, 6 * 2.0 * 1.5), world)

    world = replace(_CANARY_WORLD, versions=("v1",), traffic={"v1": 1.0})
    steps = run_loop(make_policy(), world, [(5.0, surge)] * 3)
    assert any(replica_changes(all_actions(s.decision)) for s in steps)

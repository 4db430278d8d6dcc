"""The shortcuts `decide` takes for speed give exactly what the long way gives.

- `builder(cls)` builds the same frozen instances as `cls(...)`.
- An idle rollout with nothing new to roll out skips building progress()'s step: the decision
  and the new state are the ones the full rollout rule gives (checked against it on random
  worlds, with the shortcut switched off).
- The rate-weighted means fall back to the plain mean when every rate is zero.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autoops.core.decide as decide_module
from autoops.core.aggregate import Aggregate, aggregate_version
from autoops.core.canary import Analysis, Check, RolloutStep, idle_stable, progress
from autoops.core.decide import decide
from autoops.core.forecast import TrendSums
from autoops.core.frozen import builder
from autoops.core.guards import GuardInput
from autoops.core.moves import MovePlan
from autoops.core.scaling import ScalingVerdict, append_rate
from autoops.core.state import ControllerState, Phase, RolloutState, ScalingState
from autoops.model import AppliedState, Decision, Finding, FindingKind, SetReplicas, Verdict
from tests.unit.fakes import CATALOGUE, context, make_policy, row, snapshot

SAMPLES: list[tuple[type[Any], tuple[Any, ...], dict[str, Any]]] = [
    (ControllerState, (), {}),
    (ControllerState, (RolloutState(stable_version="v1"),), {"warming_fleet": 3}),
    (ScalingState, (1.0, None, 3.0, 1, ((1.0, 2.0),), None, 4.0, 0.5), {}),
    (TrendSums, (1.0, 2.0), {"n": 3, "syy": 9.0}),
    (ScalingVerdict, (None, "held", ScalingState()), {"overloaded": True}),
    (RolloutStep, ((), ("why",), {"a": 1.0}, RolloutState(), {"v1": 1.0}), {}),
    (Analysis, (Check.PASS, ("ok",)), {}),
    (Aggregate, (1.0, 0.1, 80.0, 0.9, None, 10.0, {}), {}),
    (MovePlan, ({"eu-west": 1.0}, {"eu-west": 2}, True, ()), {"reason": "moving"}),
    (Decision, (5.0,), {"reasons": ("r",), "actions": (SetReplicas({"eu-west": 2}),)}),
]


@pytest.mark.parametrize(
    ("cls", "args", "kwargs"), SAMPLES, ids=lambda v: getattr(v, "__name__", "")
)
def test_builder_builds_the_same_frozen_instance_as_the_class(
    cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    built, expected = builder(cls)(*args, **kwargs), cls(*args, **kwargs)
    assert type(built) is cls
    assert built == expected
    assert repr(built) == repr(expected)
    assert dataclasses.astuple(built) == dataclasses.astuple(expected)
    assert pickle.loads(pickle.dumps(built)) == expected
    field = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, field, None)
    assert inspect.signature(builder(cls)) == inspect.signature(cls)


def test_builder_hashes_like_the_class_and_calls_default_factories_afresh() -> None:
    build = builder(ControllerState)
    assert hash(build()) == hash(ControllerState())
    first, second = builder(Decision)(1.0), builder(Decision)(1.0)
    assert first.evidence == {} and first.evidence is not second.evidence
    assert build().rollout is not build().rollout


def test_guard_input_builder_keeps_keyword_defaults() -> None:
    policy = make_policy()
    args = (policy, CATALOGUE, 1.0, {"v1": 1.0}, {"eu-west": 1.0}, {"eu-west": 2}, (), None, 0)
    assert builder(GuardInput)(*args) == GuardInput(*args)


@dataclasses.dataclass(frozen=True)
class _NoSlots:
    x: int


@dataclasses.dataclass(slots=True)
class _NotFrozen:
    x: int


@dataclasses.dataclass(frozen=True, slots=True)
class _PostInit:
    x: int

    def __post_init__(self) -> None:
        pass


@pytest.mark.parametrize("cls", [_NoSlots, _NotFrozen, _PostInit], ids=lambda c: c.__name__)
def test_builder_refuses_classes_it_cannot_build_like_their_constructor(cls: type[Any]) -> None:
    with pytest.raises(TypeError):
        builder(cls)


# --------------------------------------------------------------------------- idle rollouts


@st.composite
def rollout_worlds(draw: st.DrawFn) -> tuple[Any, ...]:
    """A policy, a world with zero to two new versions, a rollout state and metrics."""
    versions = draw(st.sampled_from([("v1",), ("v1", "v2"), ("v0", "v1", "v2")]))
    traffic = draw(st.sampled_from([{"v1": 1.0}, {"v1": 0.9, "v2": 0.1}, {"v2": 1.0}]))
    world = AppliedState(
        versions=versions,
        traffic=traffic,
        region_weights={"eu-west": 1.0},
        replicas={"eu-west": draw(st.integers(0, 6))},
        shadow_version=draw(st.sampled_from([None, "v2"])),
        shadow_fraction=draw(st.sampled_from([0.0, 0.0, 0.2])),
        cascade_threshold=draw(st.sampled_from([None, 0.8])),
    )
    stable = draw(st.sampled_from([None, "v1", "v1", "v2"]))
    rejected = tuple(draw(st.lists(st.sampled_from(["v0", "v2"]), max_size=2, unique=True)))
    phase = draw(st.sampled_from([Phase.IDLE, Phase.IDLE, *Phase]))
    rollout = RolloutState(
        phase=phase,
        stable_version=stable,
        canary_version=None if phase is Phase.IDLE else "v2",
        step=-1 if phase is Phase.IDLE else 0,
        step_started_at=None if phase is Phase.IDLE else 0.0,
        last_progress_at=None if phase is Phase.IDLE else 0.0,
        rejected_versions=rejected,
    )
    policy = make_policy(
        target={"stable_version": draw(st.sampled_from([None, "v1"]))},
        rollout={"strategy": draw(st.sampled_from(["canary", "shadow"]))},
        degradation={"enabled": draw(st.booleans())},
        guardrails={"require_approval": draw(st.sampled_from([[], ["promote", "set_replicas"]]))},
    )
    rows = tuple(
        row(v, ongoing=draw(st.floats(0.0, 20.0)), errors=draw(st.sampled_from([0.001, 0.2])))
        for v in versions
        if traffic.get(v, 0.0) > 0
    )
    outage = draw(st.booleans())
    findings = tuple(
        Finding(FindingKind.DRIFT, "ks", Verdict.FAIL, "inputs", version=stable)
        for _ in range(draw(st.integers(0, 1)))
    )
    scaling = ScalingState()
    for k in range(draw(st.integers(0, 8))):
        scaling = append_rate(scaling, 5.0 * k, 100.0 + draw(st.floats(-5.0, 5.0)), 24)
    state = ControllerState(rollout=rollout, scaling=scaling)
    return policy, snapshot(100.0, rows, world, outage=outage), state, findings


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rollout_worlds())
def test_the_idle_rollout_shortcut_decides_what_the_full_rollout_rule_decides(
    world: tuple[Any, ...],
) -> None:
    policy, snap, state, findings = world
    ctx = context(100.0, snap, policy, state, findings)
    fast = decide(ctx)
    original = decide_module.idle_stable
    decide_module.idle_stable = lambda *args: None  # type: ignore[assignment]
    try:
        full = decide(ctx)
    finally:
        decide_module.idle_stable = original
    assert repr(fast) == repr(full)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rollout_worlds(), st.booleans())
def test_idle_stable_names_the_rollouts_progress_leaves_as_they_are(
    world: tuple[Any, ...], metrics_ok: bool
) -> None:
    policy, snap, state, findings = world
    stable = idle_stable(state.rollout, snap, metrics_ok)
    step = progress(policy, snap, findings, state.rollout, 100.0, {}, frozenset(), metrics_ok)
    stays = (
        step.state == state.rollout
        and step.actions == ()
        and step.reasons == ()
        and not step.evidence
        and step.pending == ()
        and step.shadow_version is None
        and step.shadow_fraction == 0.0
    )
    if stable is not None:
        assert stays
        assert step.traffic == {stable: 1.0}
    elif state.rollout.phase is Phase.IDLE and state.rollout.stable_version is not None:
        # Idle on a known stable version but not left alone: a new version starts a rollout.
        assert step.state.phase is Phase.PROGRESSING


def test_a_fleet_target_at_rest_takes_the_shortcut_and_changes_nothing() -> None:
    state = ControllerState(rollout=RolloutState(stable_version="v1"))
    ctx = context(10.0, snapshot(10.0, (row("v1", ongoing=4.0),)), state=state)
    assert idle_stable(state.rollout, ctx.snapshot, True) == "v1"
    decision, new_state = decide(ctx)
    assert decision.actions == ()
    assert new_state.rollout is state.rollout


# --------------------------------------------------------------------------- aggregates


@pytest.mark.parametrize(
    ("rates", "expected_error", "expected_p99"),
    [
        pytest.param((0.0, 0.0), 0.02, 100.0, id="all_zero_rates_take_the_plain_mean"),
        pytest.param((30.0, 10.0), 0.015, 90.0, id="rates_weight_the_mean"),
        pytest.param((None, 10.0), 0.03, 120.0, id="a_missing_rate_weighs_nothing"),
    ],
)
def test_error_ratio_and_p99_are_rate_weighted_with_a_plain_mean_when_no_rate(
    rates: tuple[float | None, float], expected_error: float, expected_p99: float
) -> None:
    rows = [
        row("v1", "eu-west", rate=rates[0], errors=0.01, p99=80.0),
        row("v1", "eu-central", rate=rates[1], errors=0.03, p99=120.0),
    ]
    aggregate = aggregate_version(rows)
    assert aggregate.error_ratio == pytest.approx(expected_error)
    assert aggregate.latency_p99_ms == pytest.approx(expected_p99)
    assert aggregate_version(iter(rows)) == aggregate


def test_a_plain_mean_skips_values_that_are_missing_or_invalid() -> None:
    rows = [
        row("v1", rate=0.0, accuracy=None, p99=float("nan")),
        row("v1", rate=0.0, accuracy=0.9, p99=60.0),
        row("v1", rate=0.0, accuracy=0.8, p99=-1.0),
    ]
    aggregate = aggregate_version(rows)
    assert aggregate.accuracy == pytest.approx(0.85)
    assert aggregate.latency_p99_ms == pytest.approx(60.0)

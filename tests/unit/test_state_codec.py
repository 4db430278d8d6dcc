from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.core.forecast import TrendSums
from autoops.core.state import ControllerState, Phase, RolloutState, ScalingState
from autoops.model import (
    Action,
    ActionKind,
    Alert,
    Decision,
    GuardChange,
    Hold,
    Promote,
    Retrain,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)
from autoops.store.codec import (
    ACTION_TYPES,
    action_from_json,
    action_to_json,
    decision_from_json,
    decision_to_json,
    state_from_json,
    state_to_json,
)

numbers = st.floats(allow_nan=False, width=64)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
maybe_time = st.none() | times
names = st.text(min_size=1, max_size=8)
maybe_name = st.none() | names
weights = st.dictionaries(names, st.floats(0, 1), max_size=4)

trend_sums = st.builds(
    TrendSums,
    t0=numbers,
    y0=numbers,
    n=st.integers(0, 10_000),
    st=numbers,
    sy=numbers,
    stt=numbers,
    sty=numbers,
    syy=numbers,
)
rollouts = st.builds(
    RolloutState,
    phase=st.sampled_from(Phase),
    stable_version=maybe_name,
    canary_version=maybe_name,
    step=st.integers(-1, 20),
    failed_checks=st.integers(0, 10),
    step_started_at=maybe_time,
    last_check_at=maybe_time,
    last_progress_at=maybe_time,
    rejected_versions=st.lists(names, max_size=3).map(tuple),
)
scalings = st.builds(
    ScalingState,
    above_since=maybe_time,
    below_since=maybe_time,
    last_scale_at=maybe_time,
    last_direction=st.sampled_from([-1, 0, 1]),
    rate_history=st.lists(st.tuples(times, numbers), max_size=5).map(tuple),
    trend=st.none() | trend_sums,
)
states = st.builds(
    ControllerState,
    rollout=rollouts,
    scaling=scalings,
    action_times=st.lists(times, max_size=5).map(tuple),
    last_region_change_at=maybe_time,
    retrain_requested_at=maybe_time,
    retrain_base_version=maybe_name,
)
actions: st.SearchStrategy[Action] = st.one_of(
    st.builds(
        SetTraffic,
        weights=weights,
        shadow_version=maybe_name,
        shadow_fraction=st.floats(0, 1),
    ),
    st.builds(SetReplicas, replicas=st.dictionaries(names, st.integers(0, 64), max_size=4)),
    st.builds(SetRegionWeights, weights=weights),
    st.builds(SetCascadeThreshold, threshold=st.floats(0, 1)),
    st.builds(Rollback, from_version=names, to_version=names),
    st.builds(Promote, version=names),
    st.builds(Retrain, base_version=names, deadline=times),
    st.builds(Hold, reason=st.text(max_size=20)),
    st.builds(
        Alert,
        severity=st.sampled_from(["info", "warning", "critical"]),
        message=st.text(max_size=20),
    ),
)
decisions = st.builds(
    Decision,
    time=times,
    actions=st.lists(actions, max_size=3).map(tuple),
    reasons=st.lists(st.text(max_size=12), max_size=3).map(tuple),
    evidence=st.dictionaries(names, st.none() | numbers | st.text(max_size=8), max_size=4),
    guard_changes=st.lists(
        st.builds(
            GuardChange,
            guard=names,
            action=st.sampled_from(ActionKind),
            before=names,
            after=names,
            reason=names,
        ),
        max_size=2,
    ).map(tuple),
    pending_approval=st.lists(actions, max_size=2).map(tuple),
    dry_run=st.booleans(),
)


def _through_text(data: dict[str, Any]) -> Any:
    """The data as the store writes and reads it back."""
    return json.loads(json.dumps(data, allow_nan=True))


@settings(deadline=None)
@given(states)
def test_state_survives_a_round_trip_through_json_text(state: ControllerState) -> None:
    assert state_from_json(_through_text(state_to_json(state))) == state


@settings(deadline=None)
@given(actions)
def test_every_action_survives_a_round_trip_through_json_text(action: Action) -> None:
    encoded = action_to_json(action)
    assert next(iter(encoded)) == "kind"
    decoded = action_from_json(_through_text(encoded))
    assert decoded == action
    assert type(decoded) is type(action)


@settings(deadline=None)
@given(decisions)
def test_decision_survives_a_round_trip_through_json_text(decision: Decision) -> None:
    assert decision_from_json(_through_text(decision_to_json(decision))) == decision


def test_every_action_kind_has_a_codec() -> None:
    assert set(ACTION_TYPES) == set(ActionKind)


def test_tuples_come_back_as_tuples_not_lists() -> None:
    state = ControllerState(
        rollout=RolloutState(rejected_versions=("v2",)),
        scaling=ScalingState(rate_history=((1.0, 2.0),)),
    )
    decoded = state_from_json(_through_text(state_to_json(state)))
    assert decoded.rollout.rejected_versions == ("v2",)
    assert isinstance(decoded.scaling.rate_history[0], tuple)


def test_a_field_missing_from_an_older_state_takes_its_default() -> None:
    assert state_from_json({"rollout": {"phase": "progressing"}}) == ControllerState(
        rollout=RolloutState(phase=Phase.PROGRESSING)
    )


def test_integers_are_accepted_where_floats_are_expected() -> None:
    decoded = state_from_json({"action_times": [5, 6.5]})
    assert decoded.action_times == (5.0, 6.5)
    assert all(isinstance(t, float) for t in decoded.action_times)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "state: expected an object"),
        ({"rollout": {"phase": "sideways"}}, "state.rollout.phase: 'sideways' is not one of idle"),
        ({"rollout": {"step": "two"}}, "state.rollout.step: expected an integer"),
        ({"rollout": {"step": True}}, "state.rollout.step: expected an integer"),
        ({"rollout": {"stable_version": 3}}, "state.rollout.stable_version: expected a string"),
        ({"colour": "blue"}, "state.colour: unknown field"),
        ({"scaling": {"rate_history": [[1.0]]}}, "state.scaling.rate_history[0]: expected 2"),
        ({"scaling": {"rate_history": {"a": 1}}}, "state.scaling.rate_history: expected an array"),
        ({"scaling": {"trend": {"t0": 1.0}}}, "state.scaling.trend.y0: missing"),
        ({"action_times": [1.0, "soon"]}, "state.action_times[1]: expected a number"),
    ],
    ids=[
        "not-an-object",
        "unknown-phase",
        "step-not-int",
        "step-bool",
        "version-not-text",
        "unknown-field",
        "pair-too-short",
        "history-not-array",
        "trend-missing-field",
        "time-not-number",
    ],
)
def test_garbled_state_is_refused_naming_the_field(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        state_from_json(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("rollback", "action: expected an object"),
        ({"weights": {}}, "action.kind: missing"),
        ({"kind": "reboot"}, "action.kind: 'reboot' is not one of set_traffic"),
        ({"kind": "promote"}, "action.version: missing"),
        ({"kind": "alert", "severity": "loud", "message": "m"}, "action.severity: 'loud' is not"),
        ({"kind": "set_replicas", "replicas": {"eu": 1.5}}, "action.replicas.eu: expected an int"),
        ({"kind": "set_traffic", "weights": [0.5]}, "action.weights: expected an object"),
        ({"kind": "hold", "reason": "x", "until": 5}, "action.until: unknown field"),
    ],
    ids=[
        "not-an-object",
        "no-kind",
        "unknown-kind",
        "missing-field",
        "bad-literal",
        "fractional-replicas",
        "weights-not-object",
        "unknown-field",
    ],
)
def test_garbled_action_is_refused_naming_the_field(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message):
        action_from_json(data)

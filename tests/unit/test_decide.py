"""decide(ctx): degradation, drift remediation, pause, dry-run, explanations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoops.core.decide import decide
from autoops.core.state import ControllerState
from autoops.model import (
    ActionKind,
    Finding,
    FindingKind,
    Retrain,
    SetCascadeThreshold,
    SetReplicas,
    SetTraffic,
    Verdict,
)
from tests.unit.fakes import applied, context, make_policy, row, snapshot


def cascade_action(decision: object) -> SetCascadeThreshold | None:
    actions = getattr(decision, "actions", ())
    return next((a for a in actions if isinstance(a, SetCascadeThreshold)), None)


@pytest.mark.parametrize(
    ("case", "accuracy", "floor", "ongoing", "expected"),
    [
        ("overload_at_max_degrades", 0.95, 0.9, 60.0, 0.7),
        ("overload_but_accuracy_under_floor_restores", 0.85, 0.9, 60.0, 0.9),
        ("overload_with_unknown_accuracy_holds", None, 0.9, 60.0, None),
        ("no_floor_and_unknown_accuracy_degrades", None, None, 60.0, 0.7),
        ("pressure_gone_restores_toward_normal", 0.95, 0.9, 2.0, 0.9),
    ],
)
def test_cascade_threshold_moves_with_pressure_and_the_accuracy_floor(
    case: str, accuracy: float | None, floor: float | None, ongoing: float, expected: float | None
) -> None:
    policy = make_policy(
        scaling={"max_replicas": 4, "downscale_stabilization_s": 600},
        intent={"accuracy_floor": floor},
        degradation={"normal_threshold": 0.9, "min_threshold": 0.3, "step": 0.1},
    )
    world = applied(replicas={"eu-west": 4}, cascade=0.8)
    snap = snapshot(0, (row("v1", ongoing=ongoing, accuracy=accuracy),), world)
    decision, _ = decide(context(0, snap, policy))
    action = cascade_action(decision)
    if expected is None:
        assert action is None, case
    else:
        assert action is not None, case
        assert action.threshold == pytest.approx(expected), case


def test_overload_scales_to_max_and_says_the_bound_clamped_it() -> None:
    policy = make_policy(scaling={"max_replicas": 4})
    snap = snapshot(0, (row("v1", ongoing=60.0),), applied(replicas={"eu-west": 2}))
    decision, _ = decide(context(0, snap, policy))
    replicas = next(a for a in decision.actions if isinstance(a, SetReplicas))
    assert replicas.total == 4
    assert any(c.guard == "bounds" and "max_replicas" in c.reason for c in decision.guard_changes)


def drift(version: str | None = "v1") -> Finding:
    return Finding(
        FindingKind.DRIFT, "mmd", Verdict.FAIL, "inputs", version, statistics={"p_value": 1e-5}
    )


def test_drift_with_retrain_remediation_requests_one_retrain() -> None:
    policy = make_policy(remediations={"on_drift": "retrain", "retrain_deadline_s": 3600})
    state = ControllerState()
    retrains: list[Retrain] = []
    for t in (0.0, 5.0, 10.0):
        snap = snapshot(t, (row("v1"),))
        decision, state = decide(context(t, snap, policy, state, findings=(drift(),)))
        retrains += [a for a in decision.actions if isinstance(a, Retrain)]
    assert len(retrains) == 1
    assert retrains[0].base_version == "v1"
    assert retrains[0].deadline == pytest.approx(3600.0)


def test_drift_with_alert_remediation_only_alerts() -> None:
    snap = snapshot(0, (row("v1"),))
    decision, _ = decide(context(0, snap, make_policy(), findings=(drift(),)))
    assert [a.kind for a in decision.actions] == [ActionKind.ALERT]


def test_drift_fallback_moves_traffic_to_the_robust_version() -> None:
    policy = make_policy(remediations={"on_drift": "fallback", "fallback_version": "robust"})
    world = applied(versions=("robust", "v1"), traffic={"v1": 1.0})
    decision, state = decide(
        context(0, snapshot(0, (row("v1"),), world), policy, findings=(drift(),))
    )
    rollback = next(a for a in decision.actions if a.kind is ActionKind.ROLLBACK)
    assert rollback == type(rollback)(from_version="v1", to_version="robust")
    assert state.rollout.stable_version == "robust"


def test_paused_controller_changes_nothing_but_says_what_it_would_do() -> None:
    snap = snapshot(0, (row("v1", ongoing=30.0),))
    ctx = context(0, snap, make_policy())
    ctx = type(ctx)(**{f: getattr(ctx, f) for f in ctx.__dataclass_fields__} | {"paused": True})
    decision, state = decide(ctx)
    assert decision.mutating == ()
    assert any("would have applied set_replicas" in r for r in decision.reasons)
    assert state.action_times == ()


def test_dry_run_policy_marks_the_decision() -> None:
    snap = snapshot(0, (row("v1", ongoing=30.0),))
    decision, _ = decide(context(0, snap, make_policy(guardrails={"dry_run": True})))
    assert decision.dry_run
    assert any(a.kind is ActionKind.SET_REPLICAS for a in decision.actions)


def test_steady_state_decides_nothing_and_explains_nothing_to_fix() -> None:
    snap = snapshot(0, (row("v1", ongoing=4.0),))
    decision, state = decide(context(0, snap, make_policy()))
    assert decision.actions == ()
    assert state.rollout.stable_version == "v1"


def test_replicas_needing_approval_wait_until_approved() -> None:
    policy = make_policy(guardrails={"require_approval": ["set_replicas"]})
    snap = snapshot(0, (row("v1", ongoing=30.0),))
    decision, _ = decide(context(0, snap, policy))
    assert decision.mutating == ()
    assert [a.kind for a in decision.pending_approval] == [ActionKind.SET_REPLICAS]
    decision, _ = decide(context(0, snap, policy, approvals=frozenset({"test.set_replicas"})))
    assert [a.kind for a in decision.mutating] == [ActionKind.SET_REPLICAS]


def test_evidence_carries_the_numbers_behind_a_scale_up() -> None:
    snap = snapshot(0, (row("v1", ongoing=30.0, rate=120.0),))
    decision, _ = decide(context(0, snap, make_policy()))
    assert decision.evidence["load"] == pytest.approx(30.0)
    assert decision.evidence["request_rate"] == pytest.approx(120.0)
    assert decision.evidence["replicas"] == 2
    assert any("30.0 requests in flight on 2 replicas" in r for r in decision.reasons)


NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    ("case", "canary"),
    [
        ("nan_error_ratio", {"errors": NAN}),
        ("inf_error_ratio", {"errors": INF}),
        ("nan_rate", {"rate": NAN}),
        ("negative_rate", {"rate": -5.0}),
    ],
)
def test_non_finite_canary_metrics_are_missing_data_not_a_pass(
    case: str, canary: dict[str, float]
) -> None:
    policy = make_policy(rollout={"analysis_interval_s": 1})
    world = applied(versions=("v1", "v2"), traffic={"v1": 0.9, "v2": 0.1})
    state = ControllerState()
    for t in (0.0, 5.0, 10.0, 15.0):
        snap = snapshot(t, (row("v1"), row("v2", **canary)), world)
        decision, state = decide(context(t, snap, policy, state))
        assert ActionKind.PROMOTE not in [a.kind for a in decision.actions], case
    assert state.rollout.step == 0, case
    assert any("no canary metrics" in r for r in decision.reasons), case


@pytest.mark.parametrize("bad", [NAN, INF, -1.0], ids=["nan", "inf", "negative"])
def test_non_finite_load_never_scales_down(bad: float) -> None:
    policy = make_policy(scaling={"downscale_stabilization_s": 0, "min_replicas": 1})
    world = applied(replicas={"eu-west": 6})
    snap = snapshot(0, (row("v1", ongoing=bad), row("v1", "eu-central", ongoing=0.1)), world)
    decision, _ = decide(context(0, snap, policy))
    replicas = [a for a in decision.actions if isinstance(a, SetReplicas)]
    assert all(a.total >= 6 for a in replicas)


def test_drift_that_goes_on_after_the_retrained_version_is_rolled_back_retrains_again() -> None:
    policy = make_policy(remediations={"on_drift": "retrain", "retrain_deadline_s": 3600})
    healthy = row("v1")
    state = ControllerState()
    retrains: list[Retrain] = []
    rolled_back = False
    t = 0.0
    # Drift: one retrain; the retrained v1-r1 appears and is canaried; it errs, is rolled back;
    # the drift goes on, so another retraining is asked for.
    for _ in range(80):
        world_versions = ("v1", "v1-r1") if retrains else ("v1",)
        traffic = (
            {"v1": 0.9, "v1-r1": 0.1}
            if state.rollout.canary_version == "v1-r1" and not rolled_back
            else {"v1": 1.0}
        )
        rows = (healthy, row("v1-r1", errors=0.5)) if retrains else (healthy,)
        snap = snapshot(t, rows, applied(versions=world_versions, traffic=traffic))
        decision, state = decide(context(t, snap, policy, state, findings=(drift(),)))
        retrains += [a for a in decision.actions if isinstance(a, Retrain)]
        rolled_back = rolled_back or any(a.kind is ActionKind.ROLLBACK for a in decision.actions)
        if len(retrains) == 2:
            break
        t += 5.0
    assert rolled_back, "the failing retrained canary was rolled back"
    assert len(retrains) == 2


def test_a_mirror_left_on_with_no_rollout_is_switched_off() -> None:
    """A shadow mirror with nothing being rolled out is ended, even with the weights unchanged."""
    policy = make_policy()
    world = replace(
        applied(traffic={"v1": 1.0}),  # v2 no longer deployed: nothing to roll out
        shadow_version="v2",
        shadow_fraction=0.2,
    )
    state = ControllerState()
    snap = snapshot(0, (row("v1"),), world)
    decision, state = decide(context(0, snap, policy, state))
    traffic = [a for a in decision.actions if isinstance(a, SetTraffic)]
    assert traffic, decision.reasons
    assert traffic[-1].shadow_version is None
    assert traffic[-1].weights.get("v1") == 1.0

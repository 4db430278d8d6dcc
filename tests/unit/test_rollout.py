"""Canary progression and choosing the right fix, through decide(ctx)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from autoops.core.decide import decide
from autoops.core.state import ControllerState, Phase
from autoops.model import (
    ActionKind,
    Alert,
    AppliedState,
    Decision,
    Finding,
    FindingKind,
    Promote,
    RegionSignals,
    Rollback,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
    Verdict,
    VersionMetrics,
)
from autoops.policy.schema import Policy
from tests.unit.fakes import applied, apply_actions, context, make_policy, row, snapshot

RowsAt = Callable[[float, AppliedState], tuple[VersionMetrics, ...]]


def run(
    policy: Policy,
    rows_at: RowsAt,
    ticks: int,
    *,
    start: AppliedState | None = None,
    interval: float = 5.0,
    findings_at: Callable[[float], tuple[Finding, ...]] = lambda t: (),
    signals: tuple[RegionSignals, ...] = (),
    approvals: frozenset[str] = frozenset(),
) -> tuple[list[Decision], ControllerState, AppliedState]:
    """Drive decide() for ``ticks`` passes, applying every action to a fake applied state."""
    world = start or applied(versions=("v1", "v2"))
    state = ControllerState()
    decisions: list[Decision] = []
    for i in range(ticks):
        now = i * interval
        snap = snapshot(now, rows_at(now, world), world, signals)
        decision, state = decide(context(now, snap, policy, state, findings_at(now), approvals))
        decisions.append(decision)
        world = apply_actions(world, decision.actions)
    return decisions, state, world


def kinds(decisions: list[Decision]) -> list[ActionKind]:
    return [a.kind for d in decisions for a in d.actions]


def healthy(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
    del now
    canary_share = world.traffic.get("v2", 0.0)
    return (
        row("v1", rate=100 * (1 - canary_share), ongoing=4.0),
        row("v2", rate=100 * canary_share, count=1000 * canary_share, ongoing=0.0),
    )


def test_healthy_canary_advances_every_step_and_is_promoted() -> None:
    policy = make_policy()
    decisions, state, world = run(policy, healthy, ticks=12)
    splits = [a.weights for d in decisions for a in d.actions if isinstance(a, SetTraffic)]
    assert splits[0] == {"v1": 0.9, "v2": 0.1}
    assert {"v1": 0.5, "v2": 0.5} in splits
    assert ActionKind.PROMOTE in kinds(decisions)
    assert ActionKind.ROLLBACK not in kinds(decisions)
    assert state.rollout.stable_version == "v2"
    assert world.traffic == {"v2": 1.0}


def test_step_is_held_until_the_analysis_interval_has_passed() -> None:
    policy = make_policy(rollout={"analysis_interval_s": 30})
    decisions, state, _ = run(policy, healthy, ticks=5)  # 20 s < 30 s
    assert state.rollout.step == 0
    assert ActionKind.PROMOTE not in kinds(decisions)


@pytest.mark.parametrize(
    ("name", "canary_row"),
    [
        ("too_few_requests", {"count": 5.0}),
        ("missing_error_ratio", {"errors": None}),
        ("missing_rate", {"rate": None}),
    ],
)
def test_inconclusive_canary_holds_without_advancing(
    name: str, canary_row: dict[str, object]
) -> None:
    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1"), row("v2", **canary_row))  # type: ignore[arg-type]

    decisions, state, world = run(make_policy(), rows, ticks=6)
    assert state.rollout.step == 0, name
    assert world.traffic == {"v1": 0.9, "v2": 0.1}
    assert ActionKind.PROMOTE not in kinds(decisions)
    assert ActionKind.ROLLBACK not in kinds(decisions)


def test_rollback_after_failed_checks_reach_the_limit() -> None:
    policy = make_policy(rollout={"fast_rollback_burn_rate": None, "analysis_interval_s": 10})

    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1", errors=0.001), row("v2", errors=0.05, rate=10, count=100))

    decisions, state, world = run(policy, rows, ticks=6)
    rollback_at = next(i for i, d in enumerate(decisions) if ActionKind.ROLLBACK in kinds([d]))
    # first failed check at t=5 (first analysis), second one interval later (t=15)
    assert rollback_at == 3
    assert world.traffic == {"v1": 1.0}
    assert "v2" in state.rollout.rejected_versions
    reasons = " ".join(decisions[rollback_at].reasons)
    assert "2 failed checks" in reasons
    assert decisions[rollback_at].evidence["canary.error_ratio"] == pytest.approx(0.05)


def test_gross_error_burn_rolls_back_at_the_first_analysis() -> None:
    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1"), row("v2", errors=0.2, rate=10, count=100))

    decisions, _, world = run(make_policy(), rows, ticks=3)
    assert kinds([decisions[1]]).count(ActionKind.ROLLBACK) == 1
    assert world.traffic == {"v1": 1.0}


def test_canary_that_answers_wrongly_but_fast_is_rolled_back_on_accuracy() -> None:
    policy = make_policy(rollout={"failed_check_limit": 1})

    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1", accuracy=0.96), row("v2", accuracy=0.70, p99=60, count=200))

    decisions, _, _ = run(policy, rows, ticks=3)
    rollback = next(a for d in decisions for a in d.actions if isinstance(a, Rollback))
    assert rollback.from_version == "v2"
    assert any("accuracy" in r for d in decisions for r in d.reasons)


def test_critical_judge_finding_rolls_back_at_once() -> None:
    def findings(now: float) -> tuple[Finding, ...]:
        if now < 5:
            return ()
        return (
            Finding(
                FindingKind.CANARY,
                "sequential",
                Verdict.FAIL,
                "latency_p99_ms",
                "v2",
                statistics={"p_value": 1e-6},
                critical=True,
            ),
        )

    decisions, _, _ = run(make_policy(), healthy, ticks=3, findings_at=findings)
    assert ActionKind.ROLLBACK in kinds([decisions[1]])
    assert decisions[1].evidence["judge.latency_p99_ms.p_value"] == pytest.approx(1e-6)


def test_fault_on_every_version_alerts_and_never_rolls_back() -> None:
    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1", errors=0.2, p99=900), row("v2", errors=0.21, p99=950, count=200))

    decisions, state, _ = run(make_policy(), rows, ticks=40)  # 200 s > progress deadline
    assert ActionKind.ROLLBACK not in kinds(decisions)
    assert any(
        isinstance(a, Alert) and "every version" in a.message for d in decisions for a in d.actions
    )
    assert state.rollout.phase is Phase.PROGRESSING


@pytest.mark.parametrize(
    ("base", "canary", "rolled_back"),
    [
        # Seen live: 30% errors everywhere, a 25% canary with ~27 requests in the window.
        pytest.param((0.2565, 80.0), (0.32, 27.0), False, id="fleet-fault-within-sampling-noise"),
        pytest.param((0.30, 80.0), (0.36, 27.0), False, id="fleet-fault-small-canary-window"),
        pytest.param((0.30, 10_000.0), (0.36, 3_000.0), True, id="canary-worse-on-much-data"),
        pytest.param((0.30, 80.0), (0.95, 27.0), True, id="canary-far-worse-than-the-fleet"),
    ],
)
def test_a_fleet_fault_blames_the_canary_only_beyond_sampling_noise(
    base: tuple[float, float], canary: tuple[float, float], rolled_back: bool
) -> None:
    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (
            row("v1", errors=base[0], count=base[1]),
            row("v2", errors=canary[0], count=canary[1]),
        )

    decisions, _, _ = run(make_policy(), rows, ticks=20)
    assert (ActionKind.ROLLBACK in kinds(decisions)) is rolled_back
    if not rolled_back:
        assert any(
            isinstance(a, Alert) and "every version" in a.message
            for d in decisions
            for a in d.actions
        )


def test_load_spike_during_canary_scales_out_and_the_canary_goes_on() -> None:
    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        share = world.traffic.get("v2", 0.0)
        load = 30.0 if now >= 10 else 4.0
        return (
            row("v1", rate=100 * (1 - share), ongoing=load * (1 - share)),
            row("v2", rate=100 * share, count=1000 * share, ongoing=load * share),
        )

    decisions, state, _world = run(make_policy(), rows, ticks=12)
    scale_ups = [a for d in decisions for a in d.actions if isinstance(a, SetReplicas)]
    assert scale_ups and scale_ups[0].total == 15
    assert ActionKind.ROLLBACK not in kinds(decisions)
    assert ActionKind.PROMOTE in kinds(decisions)
    assert state.rollout.stable_version == "v2"


def test_region_failing_during_canary_is_rerouted_without_blaming_the_canary() -> None:
    start = applied(
        versions=("v1", "v2"),
        regions={"eu-west": 0.5, "eu-central": 0.5},
        replicas={"eu-west": 2, "eu-central": 2},
    )

    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now
        share = world.traffic.get("v2", 0.0)
        central = world.region_weights.get("eu-central", 0.0)
        return (
            row("v1", "eu-west", rate=50 * (1 - share), ongoing=2.0),
            row("v2", "eu-west", rate=50 * share, count=500 * share, ongoing=0.0),
            row("v1", "eu-central", rate=50 * (1 - share) * central, errors=0.5, ongoing=2.0),
            row("v2", "eu-central", rate=50 * share * central, errors=0.5, count=50, ongoing=0.0),
        )

    decisions, _, world = run(make_policy(), rows, ticks=12, start=start)
    assert ActionKind.ROLLBACK not in kinds(decisions)
    reroute = next(a for d in decisions for a in d.actions if isinstance(a, SetRegionWeights))
    assert reroute.weights.get("eu-central", 0.0) == 0.0
    assert world.replicas.get("eu-central", 0) == 0
    assert ActionKind.PROMOTE in kinds(decisions)


def test_metrics_outage_holds_everything() -> None:
    policy = make_policy()
    state = ControllerState()
    world = applied(versions=("v1", "v2"))
    decision, state = decide(context(0, snapshot(0, healthy(0, world), world), policy, state))
    world = apply_actions(world, decision.actions)
    for t in (5.0, 10.0, 15.0, 20.0, 60.0):
        snap = snapshot(t, (), world, outage=True)
        decision, state = decide(context(t, snap, policy, state))
        assert decision.mutating == ()
        assert any(a.kind is ActionKind.HOLD for a in decision.actions)
        assert "metrics outage" in decision.reasons[0]
    assert state.rollout.step == 0


def test_metrics_outage_falls_back_to_stable_when_the_policy_says_so() -> None:
    policy = make_policy(remediations={"on_metrics_outage": "fallback_to_stable"})
    world = applied(versions=("v1", "v2"))
    decision, state = decide(context(0, snapshot(0, healthy(0, world), world), policy))
    world = apply_actions(world, decision.actions)
    assert world.traffic == {"v1": 0.9, "v2": 0.1}
    decision, state = decide(context(5, snapshot(5, (), world, outage=True), policy, state))
    world = apply_actions(world, decision.actions)
    assert world.traffic == {"v1": 1.0}
    assert state.rollout.phase is Phase.PAUSED
    decision, state = decide(context(10, snapshot(10, healthy(10, world), world), policy, state))
    world = apply_actions(world, decision.actions)
    assert state.rollout.phase is Phase.PROGRESSING
    assert world.traffic == {"v1": 0.9, "v2": 0.1}


def test_stale_metrics_count_as_missing() -> None:
    world = applied()
    snap = snapshot(100, (row("v1", ongoing=0.1),), world)
    snap = replace(snap, last_metrics_at=0.0)
    decision, _ = decide(context(100, snap, make_policy(scaling={"downscale_stabilization_s": 0})))
    assert decision.mutating == ()
    assert "old" in decision.reasons[0]


def test_promotion_waits_for_approval_then_proceeds() -> None:
    policy = make_policy(guardrails={"require_approval": ["promote"]})
    decisions, state, world = run(policy, healthy, ticks=12)
    assert ActionKind.PROMOTE not in kinds(decisions)
    assert state.rollout.phase is Phase.WAITING_APPROVAL
    assert any(isinstance(a, Promote) for a in decisions[-1].pending_approval)
    approved = frozenset({"test.promote.v2"})
    decisions, state, world = run(policy, healthy, ticks=12, approvals=approved)
    assert ActionKind.PROMOTE in kinds(decisions)
    assert world.traffic == {"v2": 1.0}


def test_a_rolled_back_version_is_not_canaried_again() -> None:
    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1"), row("v2", errors=0.3, rate=10, count=100))

    decisions, state, world = run(make_policy(), rows, ticks=10)
    assert kinds(decisions).count(ActionKind.ROLLBACK) == 1
    assert world.traffic == {"v1": 1.0}
    assert state.rollout.phase is Phase.IDLE


def test_progress_deadline_rolls_back_a_canary_that_never_gets_data() -> None:
    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1"), row("v2", count=1.0))

    decisions, _, _ = run(make_policy(), rows, ticks=30)  # 145 s > 120 s deadline
    rollback = [d for d in decisions if ActionKind.ROLLBACK in kinds([d])]
    assert len(rollback) == 1
    assert any("deadline" in r for r in rollback[0].reasons)


def test_blue_green_mirrors_then_switches_all_traffic_at_once() -> None:
    policy = make_policy(rollout={"strategy": "blue_green", "steps": [100]})

    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now
        mirrored = world.shadow_version == "v2"
        return (
            row("v1", rate=100 * world.traffic.get("v1", 0.0)),
            row(
                "v2",
                rate=100 * world.traffic.get("v2", 0.0),
                shadow_disagreement=0.01 if mirrored else None,
            ),
        )

    decisions, state, world = run(policy, rows, ticks=6)
    first = next(a for d in decisions for a in d.actions if isinstance(a, SetTraffic))
    assert first.weights == {"v1": 1.0} and first.shadow_version == "v2"
    assert ActionKind.PROMOTE in kinds(decisions)
    assert world.traffic == {"v2": 1.0}
    assert state.rollout.stable_version == "v2"


def test_judge_failure_counts_even_when_the_core_lacks_requests_for_its_own_rules() -> None:
    """The judge's statistics stand on their own: too few requests for the core's threshold
    rules must not discard a critical judge finding."""

    def rows(now: float, world: AppliedState) -> tuple[VersionMetrics, ...]:
        del now, world
        return (row("v1"), row("v2", count=5.0))  # under min_requests=20

    def findings(now: float) -> tuple[Finding, ...]:
        if now < 5:
            return ()
        return (
            Finding(
                FindingKind.CANARY,
                "sequential",
                Verdict.FAIL,
                "error_ratio",
                "v2",
                statistics={"e_value": 250.0},
                critical=True,
            ),
        )

    decisions, _, world = run(make_policy(), rows, ticks=3, findings_at=findings)
    assert ActionKind.ROLLBACK in kinds([decisions[1]])
    assert world.traffic == {"v1": 1.0}

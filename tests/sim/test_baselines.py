"""Each baseline reproduces its documented rule on small, hand-checked cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from autoops.core.decide import decide
from autoops.core.state import ControllerState
from autoops.model import (
    AppliedState,
    Decision,
    Promote,
    RegionSignals,
    Rollback,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
    VersionMetrics,
)
from autoops.policy.schema import Policy
from autoops.sim.api import Controller
from autoops.sim.baselines import (
    BASELINES,
    AutoOpsController,
    CarbonAgnosticPlacement,
    CarbonOracle,
    FlaggerCanary,
    KubernetesHPA,
    RayAutoscalingConfig,
    RayPolicyState,
    RayServeDefault,
    StaticReplicas,
    ray_serve_decision,
)
from tests.unit.fakes import applied, apply_actions, context, make_policy, row, snapshot

# --------------------------------------------------------------------------- drivers


def load_row(ongoing: float | None, healthy: int, region: str = "eu-west") -> VersionMetrics:
    """A stable-version row with this load and this many ready replicas."""
    return replace(row("v1", region, ongoing=ongoing), healthy_replicas=healthy)


def drive_scaler(
    controller: Controller,
    start: int,
    loads: Sequence[tuple[float, float]],
    policy: Policy | None = None,
) -> list[tuple[float, int]]:
    """Run (time, ongoing) ticks on one region, applying each decision; replicas after each."""
    state = applied(replicas={"eu-west": start})
    out: list[tuple[float, int]] = []
    for now, ongoing in loads:
        rows = (load_row(ongoing, state.replicas["eu-west"]),)
        decision = controller.decide(context(now, snapshot(now, rows, state), policy))
        state = apply_actions(state, decision.actions)
        out.append((now, state.replicas["eu-west"]))
    return out


def first_change(timeline: list[tuple[float, int]], start: int) -> tuple[float, int] | None:
    """The first (time, replicas) that differs from ``start``."""
    return next(((t, n) for t, n in timeline if n != start), None)


# --------------------------------------------------------------------------- static


def test_static_never_acts_under_any_load() -> None:
    timeline = drive_scaler(StaticReplicas(), 2, [(t, 50.0) for t in range(0, 3600, 60)])
    assert first_change(timeline, 2) is None


def test_static_pins_its_replicas_once() -> None:
    # applied {eu-west: 2}, pinned {eu-west: 3}: one SetReplicas on the first tick, then none.
    timeline = drive_scaler(StaticReplicas({"eu-west": 3}), 2, [(0, 50.0), (10, 0.0), (20, 99.0)])
    assert timeline == [(0, 3), (10, 3), (20, 3)]


# --------------------------------------------------------------------------- Ray Serve default


@pytest.mark.parametrize(
    ("total", "current", "target", "config", "expected"),
    [
        # _core: 2 * (10 / (2 * 2)) = 5.0; factor 1: ceil(2 + 1 * 3) = 5
        (10.0, 2, 2, RayAutoscalingConfig(upscale_delay_s=0), 5),
        # factor 0.5: ceil(2 + 0.5 * (5 - 2)) = ceil(3.5) = 4
        (10.0, 2, 2, RayAutoscalingConfig(upscale_delay_s=0, upscaling_factor=0.5), 4),
        # 5 * (8 / 10) = 4.0; factor 0.1: ceil(5 - 0.1) = 5 == current, ceil(4) < 5, so 5 - 1 = 4
        (8.0, 5, 5, RayAutoscalingConfig(downscale_delay_s=0, downscaling_factor=0.1), 4),
        # 3 * (0 / 6) = 0 -> downscale from 3 keeps max(1, 0) = 1; bounds [1, 100] -> 1
        (0.0, 3, 3, RayAutoscalingConfig(downscale_delay_s=0), 1),
        # desired 5 clipped by apply_bounds to max_replicas 3
        (10.0, 2, 2, RayAutoscalingConfig(upscale_delay_s=0, max_replicas=3), 3),
        # cold start: 0 running, 4 in flight -> max(ceil(1 * 1.0), target 0) = 1, no delay
        (4.0, 0, 0, RayAutoscalingConfig(), 1),
        # 5 * (9 / 10) = 4.5 -> ceil(5 - 0.5) = 5 == current but ceil(4.5) = 5 is not < 5: hold
        (9.0, 5, 5, RayAutoscalingConfig(downscale_delay_s=0), 5),
    ],
    ids=[
        "queue-length-rule",
        "upscaling-factor-smooths",
        "stuck-downscale-steps-one",
        "no-load-floors-at-one",
        "max-bound",
        "cold-start-fast-path",
        "fractional-desired-rounds-up",
    ],
)
def test_ray_serve_arithmetic_matches_the_source(
    total: float, current: int, target: int, config: RayAutoscalingConfig, expected: int
) -> None:
    assert ray_serve_decision(config, RayPolicyState(), total, current, target, 0.0) == expected


@pytest.mark.parametrize(
    ("controller", "start", "loads", "expected"),
    [
        # 10 in flight on 2 replicas, target 2: desired 2 * 10 / 4 = 5. The scale-up run starts
        # at t=0 and acts once now - 0 >= upscale_delay_s = 30: at t=30, not before.
        (RayServeDefault(), 2, [(t, 10.0) for t in range(0, 60, 10)], (30, 5)),
        # 2 in flight on 5 replicas: desired 5 * 2 / 10 = 1. The run starts at t=0 and acts
        # once now - 0 >= downscale_delay_s = 600: at t=600 (every tick before it holds 5).
        (RayServeDefault(), 5, [(t, 2.0) for t in range(0, 700, 60)], (600, 1)),
        # A tick at exactly the target (4 in flight on 2 = 2 each) resets the run: up again from
        # t=20, so the scale-up lands at 20 + 30 = 50 (look-back 1 s: one sample per window).
        (
            RayServeDefault(look_back_period_s=1),
            2,
            [(0, 10.0), (10, 4.0), (20, 10.0), (30, 10.0), (40, 10.0), (50, 10.0), (60, 10.0)],
            (50, 5),
        ),
        # Look-back mean over 30 s: t=0 4, t=10 16 -> mean 10 -> desired 5, run from t=10;
        # t=20 mean(4,16,16)=12, t=30 window (0,30] -> mean(16,16,16)=16 -> 2*16/4 = 8 at t=40.
        (RayServeDefault(), 2, [(0, 4.0), *[(t, 16.0) for t in range(10, 60, 10)]], (40, 8)),
    ],
    ids=["upscale-after-30s", "downscale-after-600s", "reversal-resets-delay", "look-back-mean"],
)
def test_ray_serve_default_scales_only_after_its_delay(
    controller: RayServeDefault,
    start: int,
    loads: list[tuple[float, float]],
    expected: tuple[float, int],
) -> None:
    assert first_change(drive_scaler(controller, start, loads), start) == expected


def test_ray_serve_default_holds_through_a_metrics_outage() -> None:
    ray = RayServeDefault()
    state = applied(replicas={"eu-west": 5})
    # t=0: low load starts a downscale run; then 700 s of outage must not complete it.
    ray.decide(context(0, snapshot(0, (load_row(2.0, 5),), state)))
    for now in range(60, 700, 60):
        out = ray.decide(context(now, snapshot(now, (), state, outage=True)))
        assert out.actions == ()
    assert ray.states["eu-west"].decision_timestamp == 0


# --------------------------------------------------------------------------- Kubernetes HPA


@pytest.mark.parametrize(
    ("start", "ongoing", "expected"),
    [
        # 12 in flight on 4 = 3 each, target 2: ratio 1.5 -> ceil(4 * 1.5) = 6
        (4, 12.0, 6),
        # 8.4 on 4 = 2.1 each: ratio 1.05, |1.05 - 1| <= 0.1 -> no change
        (4, 8.4, 4),
        # 7.4 on 4 = 1.85 each: ratio 0.925 within tolerance -> no change
        (4, 7.4, 4),
        # 40 on 2 = 20 each: ratio 10 -> 20, but default scale-up limit max(2 + 4, 2 * 2) = 6
        (2, 40.0, 6),
    ],
    ids=["150-percent-of-target", "within-tolerance-up", "within-tolerance-down", "rate-limit"],
)
def test_hpa_recommends_ceil_current_times_ratio(start: int, ongoing: float, expected: int) -> None:
    timeline = drive_scaler(KubernetesHPA(target_per_replica=2.0), start, [(0, ongoing)])
    assert timeline == [(0, expected)]


def test_hpa_scale_down_holds_the_window_maximum_for_300s() -> None:
    # t=0: 12 on 6 = ratio 1.0 -> recommendation 6. From t=15: 6 on 6 = ratio 0.5 -> 3.
    # Scale-down takes the max recommendation with timestamp after now - 300: the t=0 "6"
    # counts until t=300 (strictly after the cutoff), so 6 holds to t=285 and 3 comes at t=300.
    loads = [(0, 12.0), *[(t, 6.0) for t in range(15, 330, 15)]]
    timeline = drive_scaler(KubernetesHPA(target_per_replica=2.0), 6, loads)
    assert first_change(timeline, 6) == (300, 3)


def test_hpa_acts_only_on_its_sync_period() -> None:
    # t=0 sync: 12 on 4 -> 6. Load doubles at t=5, but the next sync is t=15: 24 on 6 = ratio 2
    # -> ceil(6 * 2) = 12; scale-up limit max(6 + 4, 6 * 2) = 12 (the t=0 +2 event is not
    # strictly inside the 15 s period ending at t=15).
    loads = [(0, 12.0), (5, 24.0), (10, 24.0), (15, 24.0)]
    timeline = drive_scaler(KubernetesHPA(target_per_replica=2.0), 4, loads)
    assert timeline == [(0, 6), (5, 6), (10, 6), (15, 12)]


# --------------------------------------------------------------------------- Flagger


def drive_canary(
    flagger: FlaggerCanary, canary_row: VersionMetrics, until: int, tick: int = 20
) -> list[tuple[float, Decision]]:
    """Run a v1 -> v2 canary for ``until`` seconds; the decisions that had actions."""
    state = applied(versions=("v1", "v2"), traffic={"v1": 1.0})
    acted: list[tuple[float, Decision]] = []
    for now in range(0, until, tick):
        rows = (row("v1"), canary_row)
        decision = flagger.decide(context(now, snapshot(now, rows, state)))
        state = apply_actions(state, decision.actions)
        if decision.actions:
            acted.append((now, decision))
    return acted


@pytest.mark.parametrize(
    "canary_row",
    [row("v2", errors=0.05), row("v2", p99=900.0), row("v2", errors=None)],
    ids=["error-rate", "latency", "no-values-found"],
)
def test_flagger_rolls_back_threshold_intervals_after_the_first_failed_check(
    canary_row: VersionMetrics,
) -> None:
    # Interval 60: t=0 new revision detected; t=60 weight 0 -> 10 (no analysis at weight 0);
    # t=120, 180, 240, 300, 360 checks fail (failedChecks 1..5); t=420 failedChecks >= 5 ->
    # rollback, 420 - 120 = 300 = threshold (5) * interval (60).
    acted = drive_canary(FlaggerCanary(), canary_row, until=900)
    assert [(t, type(d.actions[0])) for t, d in acted] == [(60, SetTraffic), (420, Rollback)]
    assert acted[1][1].actions == (Rollback("v2", "v1"),)


def test_flagger_promotes_a_healthy_canary_after_max_weight_over_step_passes() -> None:
    # t=0 detect; t=60 -> 10%; passes at t=120, 180, 240, 300 -> 20, 30, 40, 50%; the pass at
    # t=360 finds 50% >= max_weight: promote. Passes: 120..360 = 5 = 50 / 10. Then nothing:
    # the old primary v1 is retired, not a new revision.
    acted = drive_canary(FlaggerCanary(), row("v2"), until=900)
    weights = [a.weights["v2"] for _, d in acted for a in d.actions if isinstance(a, SetTraffic)]
    assert weights == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert acted[-1][0] == 360
    assert acted[-1][1].actions == (Promote("v2"),)


# --------------------------------------------------------------------------- placement


def carbon(values: dict[str, float]) -> tuple[RegionSignals, ...]:
    """Signals with these carbon intensities (healthy, no price)."""
    return tuple(RegionSignals(r, carbon_intensity=c, healthy=True) for r, c in values.items())


THREE = make_policy(intent={"allowed_regions": ["eu-west", "eu-central", "eu-north"]})


@pytest.mark.parametrize(
    ("objective", "grid", "expected"),
    [
        # latency to users: eu-west 20 ms, eu-central 25, eu-north 40 -> eu-west, whatever the grid
        ("latency", {"eu-west": 500.0, "eu-central": 300.0, "eu-north": 20.0}, "eu-west"),
        ("latency", {"eu-west": 20.0, "eu-central": 300.0, "eu-north": 500.0}, "eu-west"),
        # $/h: eu-west 1.0, eu-central 1.2, eu-north 0.9 (no price signal) -> eu-north
        ("cost", {"eu-west": 20.0, "eu-central": 300.0, "eu-north": 500.0}, "eu-north"),
        ("cost", {"eu-west": 500.0, "eu-central": 300.0, "eu-north": 20.0}, "eu-north"),
    ],
    ids=["latency-dirty-west", "latency-clean-west", "cost-dirty-north", "cost-clean-north"],
)
def test_carbon_agnostic_ignores_carbon(
    objective: str, grid: dict[str, float], expected: str
) -> None:
    state = applied(regions={"eu-central": 1.0}, replicas={"eu-central": 2})
    rows = (load_row(4.0, 2, "eu-central"),)
    ctx = context(0, snapshot(0, rows, state, carbon(grid)), THREE)
    decision = CarbonAgnosticPlacement(objective).decide(ctx)
    # 4 in flight on 2 replicas at target 2: the total stays 2, all moved to the chosen region.
    assert decision.actions == (
        SetRegionWeights({expected: 1.0}),
        SetReplicas({"eu-central": 0, expected: 2}),
    )


HOURS = {
    0: carbon({"eu-west": 300.0, "eu-central": 200.0, "eu-north": 30.0}),
    1: carbon({"eu-west": 300.0, "eu-central": 10.0, "eu-north": 30.0}),
}


@pytest.mark.parametrize(
    ("now", "signals", "expected_weights", "expected_replicas"),
    [
        # hour 0: eu-north greenest (30); 7 in flight / target 2 -> ceil(3.5) = 4 replicas
        (100.0, HOURS, {"eu-north": 1.0}, {"eu-west": 0, "eu-north": 4}),
        # 60 s before hour 1, prewarm 120 s: eu-central (10) greenest next -> 4 started there too
        (3540.0, HOURS, {"eu-north": 1.0}, {"eu-west": 0, "eu-north": 4, "eu-central": 4}),
        # hour 1: eu-central greenest
        (3700.0, HOURS, {"eu-central": 1.0}, {"eu-west": 0, "eu-central": 4}),
        # eu-north unhealthy: the greenest healthy allowed region is eu-central (200)
        (
            100.0,
            {0: (*HOURS[0][:2], RegionSignals("eu-north", carbon_intensity=30.0, healthy=False))},
            {"eu-central": 1.0},
            {"eu-west": 0, "eu-central": 4},
        ),
    ],
    ids=["greenest-now", "prewarms-next-greenest", "follows-the-hour", "skips-unhealthy"],
)
def test_oracle_puts_everything_in_the_greenest_allowed_region(
    now: float,
    signals: dict[int, tuple[RegionSignals, ...]],
    expected_weights: dict[str, float],
    expected_replicas: dict[str, int],
) -> None:
    state = applied(replicas={"eu-west": 2})
    ctx = context(now, snapshot(now, (load_row(7.0, 2),), state), THREE)
    decision = CarbonOracle(signals).decide(ctx)
    assert decision.actions == (
        SetRegionWeights(expected_weights),
        SetReplicas(expected_replicas),
    )


def test_oracle_reads_signals_from_a_function() -> None:
    oracle = CarbonOracle(lambda t: HOURS[int(t // 3600)], prewarm_s=0)
    ctx = context(0, snapshot(0, (load_row(7.0, 2),), applied()), THREE)
    assert oracle.greenest(ctx, 0.0) == "eu-north"
    assert oracle.greenest(ctx, 3600.0) == "eu-central"


# --------------------------------------------------------------------------- AutoOps and registry


def test_autoops_controller_carries_its_state_between_ticks() -> None:
    controller = AutoOpsController()
    state: AppliedState = applied()
    expected = ControllerState()
    for now in (0.0, 5.0, 10.0):
        ctx = context(now, snapshot(now, (row("v1"),), state), state=ControllerState())
        direct, expected = decide(replace(ctx, state=expected))
        assert controller.decide(ctx) == direct
        state = apply_actions(state, direct.actions)
    assert controller.state == expected
    assert len(controller.state.scaling.rate_history) == 3


def test_registry_builds_every_baseline_under_its_name() -> None:
    assert set(BASELINES) == {
        "static",
        "ray_serve_default",
        "hpa",
        "flagger",
        "carbon_agnostic",
        "oracle",
    }
    for name, factory in BASELINES.items():
        controller = factory(HOURS) if name == "oracle" else factory()
        assert controller.name == name

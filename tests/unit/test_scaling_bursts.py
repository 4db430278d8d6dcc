"""Scaling through bursts: a ramp seen early, sizing by Little's law, scale-in without flaps."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.core.decide import decide
from autoops.core.forecast import TrendSums, linear_trend, onset_forecast
from autoops.core.scaling import decide_scaling, learn_service_time
from autoops.core.state import ControllerState, ScalingState
from autoops.model import SetReplicas
from autoops.policy.schema import Scaling
from tests.unit.fakes import applied, context, make_policy, row, snapshot

# Request rates one pass apart (5 s) as the simulator's metrics showed them at the start of a
# burst: flat around 122 rps with 2% noise, then the first two readings of a 60 s ramp.
BURST_START = (
    124.6, 127.6, 122.9, 119.6, 121.2, 125.2, 120.3, 121.0, 120.7, 117.5, 122.8, 119.1,
    118.3, 115.1, 122.2, 119.9, 120.8, 119.2, 125.7, 124.4, 123.8, 123.6, 132.4, 145.2,
)  # fmt: skip
SERVICE_S = 0.025


def points(
    rates: tuple[float, ...] | list[float], step: float = 5.0
) -> tuple[tuple[float, float], ...]:
    """(time, rate) points one step apart, starting at 0."""
    return tuple((i * step, r) for i, r in enumerate(rates))


def rule(**overrides: Any) -> Scaling:
    """canary-latency's scaling: target 2 in flight, 10% band, a 90 s forecast horizon."""
    base: dict[str, Any] = {
        "min_replicas": 2,
        "upscale_stabilization_s": 10,
        "downscale_stabilization_s": 300,
        "predictive": {"enabled": True, "horizon_s": 90},
    }
    base.update(overrides)
    return make_policy(scaling=base).scaling


def noisy(level: float, n: int, seed: int, sd: float = 0.02) -> list[float]:
    """``n`` readings of a constant rate with seeded relative noise."""
    rng = random.Random(seed)
    return [level * (1 + rng.gauss(0.0, sd)) for _ in range(n)]


# --------------------------------------------------------------------------- onset forecast


def test_onset_sees_a_ramp_that_began_in_the_newest_points() -> None:
    history = points(BURST_START)
    onset = onset_forecast(history, TrendSums.of(history), 45.0)
    assert onset is not None
    assert onset.slope > 1.0  # about 1.4 rps/s: the ramp, not the flat stretch before
    assert onset.value > 190.0
    whole = linear_trend(history, 45.0)
    # The line through the whole history averages the ramp with the flat stretch.
    assert whole is None or whole.value < onset.value


@pytest.mark.parametrize(
    "rates",
    [
        pytest.param([*BURST_START[:-2], 123.0, 145.2], id="one-high-reading"),
        pytest.param([*BURST_START[:-2], 118.0, 121.0], id="no-rise"),
        pytest.param(noisy(150.0, 24, seed=4), id="noise"),
        pytest.param([200.0 - 2.0 * i for i in range(24)], id="falling"),
        pytest.param(BURST_START[-9:], id="too-few-points"),
    ],
)
def test_onset_needs_two_readings_well_above_the_earlier_line(rates: list[float]) -> None:
    history = points(rates)
    assert onset_forecast(history, TrendSums.of(history), 45.0) is None


@settings(deadline=None, max_examples=200)
@given(
    start=st.floats(0.0, 1_000.0),
    slope=st.floats(-5.0, 5.0),
    n=st.integers(10, 40),
    step=st.sampled_from([1.0, 5.0, 15.0]),
)
def test_onset_never_fires_while_the_newest_points_stay_on_the_line(
    start: float, slope: float, n: int, step: float
) -> None:
    # A steady ramp is the whole-history trend's job: nothing began in the newest points.
    history = tuple((i * step, max(0.0, start + slope * i * step)) for i in range(n))
    if any(y == 0.0 for _, y in history):
        return  # clipped at zero: not a line
    assert onset_forecast(history, TrendSums.of(history), 60.0) is None


def test_noise_alone_rarely_looks_like_an_onset() -> None:
    # 2% noise, 2,000 windows: a Gaussian 2-sigma pair plus a 4-sigma slope is rare.
    fired = 0
    for seed in range(2_000):
        history = points(noisy(120.0, 24, seed))
        fired += onset_forecast(history, TrendSums.of(history), 45.0) is not None
    assert fired <= 10


# --------------------------------------------------------------------------- scale-out early


def test_a_ramp_in_the_newest_points_scales_out_before_the_trend_is_significant() -> None:
    history = points(BURST_START)
    rate = BURST_START[-1]
    verdict = decide_scaling(
        rule(), ScalingState(rate_history=history), 115.0, rate * SERVICE_S, True, rate, 2
    )
    assert verdict.desired is not None and verdict.desired >= 3
    assert "new ramp" in verdict.reason


def test_a_ramp_is_not_extrapolated_without_predictive_scaling() -> None:
    history = points(BURST_START)
    rate = BURST_START[-1]
    off = rule(predictive={"enabled": False, "horizon_s": 90})
    verdict = decide_scaling(
        off, ScalingState(rate_history=history), 115.0, rate * SERVICE_S, True, rate, 2
    )
    assert verdict.desired is None


# --------------------------------------------------------------------------- Little's law


def starting(service_s: float | None = SERVICE_S, ago: float = 10.0) -> ScalingState:
    """At t=100, ``ago`` seconds after a scale-up, above the band for 20 s (past the window)."""
    return ScalingState(
        above_since=80.0, last_scale_at=100.0 - ago, last_direction=1, service_s=service_s
    )


def test_the_queue_for_replicas_still_starting_does_not_size_the_scale_out() -> None:
    # 300 rps on 2 ready replicas of the 4 asked for: 18.7 in flight, most of them queued.
    # 300 rps x 25 ms = 7.5 in flight once the others are up: 4 replicas carry it.
    verdict = decide_scaling(rule(), starting(), 100.0, 18.7, True, 300.0, 4)
    assert verdict.desired is None
    assert "queued for the replicas starting" in verdict.reason


def test_the_arrival_rate_still_scales_out_while_replicas_start() -> None:
    # 480 rps x 25 ms = 12 in flight: 6 replicas, whatever is queued.
    verdict = decide_scaling(rule(), starting(), 100.0, 30.0, True, 480.0, 4)
    assert verdict.desired == 6


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(starting(ago=200.0), id="nothing-starting"),
        pytest.param(starting(service_s=None), id="no-service-time-yet"),
    ],
)
def test_requests_in_flight_size_the_scale_out_when_no_replica_is_starting(
    state: ScalingState,
) -> None:
    # A queue with no capacity on its way is load: sized from the count, as before.
    verdict = decide_scaling(rule(), state, 100.0, 18.7, True, 300.0, 4)
    assert verdict.desired == 10


def test_a_queue_for_starting_replicas_never_starts_a_scale_in() -> None:
    # 100 rps x 25 ms is 2.5 in flight, under the band for 4 replicas; but 18.7 are in flight
    # (the ready replicas queue): the count says where the band is, so nothing scales in.
    verdict = decide_scaling(
        rule(downscale_stabilization_s=0), starting(), 100.0, 18.7, True, 100.0, 4
    )
    assert verdict.desired is None
    assert verdict.state.below_since is None


@pytest.mark.parametrize(
    ("ready", "ago", "desired"),
    [
        pytest.param(4, 10.0, 10, id="all-ready-just-after-a-scale-up"),
        pytest.param(2, 200.0, None, id="two-still-starting-long-after"),
    ],
)
def test_the_ready_count_says_whether_replicas_are_starting(
    ready: int, ago: float, desired: int | None
) -> None:
    # Where the serving system reports ready replicas, that count decides, not the clock:
    # once they all serve, 18.7 in flight is load (heavier requests, say), not a queue.
    verdict = decide_scaling(rule(), starting(ago=ago), 100.0, 18.7, True, 300.0, 4, ready)
    assert verdict.desired == desired


@pytest.mark.parametrize(("ready", "expected"), [(2, []), (4, [10])])
def test_decide_passes_the_ready_replicas_to_the_scaling_rule(
    ready: int, expected: list[int]
) -> None:
    policy = make_policy(scaling={"min_replicas": 2, "upscale_stabilization_s": 0})
    world = replace(applied(replicas={"eu-west": 4}), ready_replicas={"eu-west": ready})
    rows = (row("v1", rate=300.0, ongoing=18.7),)
    state = ControllerState(scaling=ScalingState(service_s=SERVICE_S))
    decision, _ = decide(context(100.0, snapshot(100.0, rows, world), policy, state))
    assert [a.total for a in decision.actions if isinstance(a, SetReplicas)] == expected


@pytest.mark.parametrize(
    ("load", "rate", "current", "pending", "expected"),
    [
        pytest.param(2.5, 100.0, 2, False, 0.025, id="in-band-learns"),
        pytest.param(5.0, 100.0, 2, False, None, id="above-target-is-a-queue"),
        pytest.param(2.5, 100.0, 2, True, None, id="replicas-starting"),
        pytest.param(0.0, 0.0, 2, False, None, id="idle"),
    ],
)
def test_the_service_time_is_learned_only_without_a_queue(
    load: float, rate: float, current: int, pending: bool, expected: float | None
) -> None:
    state = learn_service_time(ScalingState(), load, rate, current, 2.0, pending)
    assert state.service_s == (None if expected is None else pytest.approx(expected))


def test_the_service_time_follows_new_readings_smoothly() -> None:
    state = ScalingState(service_s=0.025)
    for _ in range(40):
        state = learn_service_time(state, 4.0, 100.0, 2, 2.0, False)
    assert state.service_s == pytest.approx(0.04, rel=1e-3)


# --------------------------------------------------------------------------- scale-in


def below_for(window_s: float, now: float, peak: float) -> ScalingState:
    """A state whose load has been below the band for ``window_s`` with this busiest reading."""
    return ScalingState(below_since=now - window_s, below_peak=peak)


def test_scale_in_waits_while_the_rate_rises() -> None:
    # 10.8 in flight on 10 replicas is below the band, but the rate climbs 0.8 rps/s: in 60 s
    # it is 102 rps, 20.4 in flight (Little's law), which needs the 10 replicas again.
    history = points([10.0 + 4.0 * i for i in range(12)])
    state = ScalingState(
        below_since=55.0 - 400.0, below_peak=10.8, rate_history=history, service_s=0.2
    )
    verdict = decide_scaling(
        rule(predictive={"enabled": True, "horizon_s": 60}), state, 55.0, 10.8, True, 54.0, 10
    )
    assert verdict.desired is None
    assert "rate rises" in verdict.reason
    assert verdict.state.below_since == 55.0  # the window starts again


def test_scale_in_goes_ahead_on_a_steady_rate() -> None:
    history = points([54.0] * 12)
    state = ScalingState(below_since=55.0 - 400.0, below_peak=10.8, rate_history=history)
    verdict = decide_scaling(rule(), state, 55.0, 10.8, True, 54.0, 10)
    assert verdict.desired == 6


@pytest.mark.parametrize(
    ("peak", "current", "desired"),
    [
        pytest.param(3.0, 2, None, id="busiest-reading-on-the-target-held"),
        pytest.param(2.7, 2, 1, id="a-tolerance-under-the-target-scales-in"),
        pytest.param(8.5, 6, 4, id="larger-pool"),
    ],
)
def test_scale_in_keeps_the_busiest_reading_a_tolerance_under_the_target(
    peak: float, current: int, desired: int | None
) -> None:
    # Target 3, tolerance 10%: at most 3 / 1.1 = 2.73 each after the scale-in. A smaller pool
    # queues more, so 3.0 on one replica would cross the band's edge (3.3) and scale back.
    scaling = rule(target_ongoing_requests=3, min_replicas=1)
    state = below_for(400.0, 1000.0, peak)
    verdict = decide_scaling(scaling, state, 1000.0, peak * 0.9, True, 50.0, current)
    assert verdict.desired == desired
    if desired is None:
        assert verdict.state.below_since == 1000.0  # held: the window starts again

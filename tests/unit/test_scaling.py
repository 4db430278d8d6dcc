"""Reactive and predictive scaling (`decide_scaling`) and the replica split across regions."""

from __future__ import annotations

from typing import Any

import pytest

from autoops.core.decide import decide
from autoops.core.placement import split_replicas
from autoops.core.scaling import append_rate, decide_scaling, scaling_load
from autoops.core.state import ControllerState, ScalingState
from autoops.model import SetReplicas
from autoops.policy.schema import Scaling
from tests.unit.fakes import applied, context, make_policy, row, snapshot


def scaling(**overrides: Any) -> Scaling:
    """The test policy's scaling rule: target 2 in flight per replica, tolerance 10%."""
    return make_policy(scaling=overrides).scaling


# --------------------------------------------------------------------------- reactive: the band


@pytest.mark.parametrize(
    ("load", "current", "desired"),
    [
        pytest.param(20.0, 10, None, id="on-target-held"),
        pytest.param(21.9, 10, None, id="just-under-upper-band-held"),
        pytest.param(18.1, 10, None, id="just-over-lower-band-held"),
        pytest.param(22.5, 10, 12, id="over-the-band-scales-up"),
        pytest.param(30.0, 10, 15, id="load-per-target-sets-replicas"),
        # Scale-in keeps the busiest reading a tolerance under the target: 10 / (2 / 1.1) -> 6.
        pytest.param(10.0, 10, 6, id="under-the-band-scales-down"),
        pytest.param(3.0, 0, 2, id="zero-replicas-with-load-scales-up"),
        pytest.param(0.0, 0, None, id="zero-replicas-without-load-held"),
        pytest.param(0.5, 1, None, id="at-min-replicas-no-scale-down"),
    ],
)
def test_reactive_scaling_acts_only_outside_the_tolerance_band(
    load: float, current: int, desired: int | None
) -> None:
    rule = scaling(upscale_stabilization_s=0, downscale_stabilization_s=0)
    verdict = decide_scaling(rule, ScalingState(), 100.0, load, True, 50.0, current)
    assert verdict.desired == desired


@pytest.mark.parametrize(
    ("tolerance", "load", "desired"),
    [
        pytest.param(0.0, 20.5, 11, id="zero-tolerance-any-excess-scales"),
        pytest.param(0.3, 25.0, None, id="wide-tolerance-absorbs-25pct"),
        pytest.param(0.3, 26.5, 14, id="wide-tolerance-exceeded"),
        pytest.param(0.3, 15.0, None, id="wide-tolerance-absorbs-25pct-drop"),
    ],
)
def test_tolerance_sets_the_width_of_the_band(
    tolerance: float, load: float, desired: int | None
) -> None:
    rule = scaling(tolerance=tolerance, upscale_stabilization_s=0, downscale_stabilization_s=0)
    verdict = decide_scaling(rule, ScalingState(), 100.0, load, True, 50.0, 10)
    assert verdict.desired == desired


def test_overloaded_when_load_needs_more_than_max_replicas() -> None:
    rule = scaling(max_replicas=20, upscale_stabilization_s=0)
    verdict = decide_scaling(rule, ScalingState(), 100.0, 60.0, True, 50.0, 10)
    assert verdict.desired == 30
    assert verdict.overloaded


# --------------------------------------------------------------------------- stabilisation


def run_ticks(
    rule: Scaling, loads: list[tuple[float, float]], current: int
) -> list[tuple[int | None, ScalingState]]:
    """Feed (time, load) points through the rule, carrying the state forward."""
    state = ScalingState()
    out: list[tuple[int | None, ScalingState]] = []
    for now, load in loads:
        verdict = decide_scaling(rule, state, now, load, True, 50.0, current)
        state = verdict.state
        out.append((verdict.desired, state))
    return out


@pytest.mark.parametrize(
    ("loads", "expected"),
    [
        pytest.param(
            [(100, 30), (110, 30), (115, 30)],
            [None, None, 15],
            id="up-after-stabilisation-window",
        ),
        pytest.param(
            [(100, 30), (110, 20), (115, 30), (125, 30), (130, 30)],
            [None, None, None, None, 15],
            id="dip-into-band-restarts-up-window",
        ),
        pytest.param(
            [(100, 10), (200, 10), (400, 10)],
            [None, None, 6],
            id="down-after-stabilisation-window",
        ),
        pytest.param(
            [(100, 10), (300, 20), (350, 10), (600, 10), (650, 10)],
            [None, None, None, None, 6],
            id="return-to-band-restarts-down-window",
        ),
        pytest.param(
            [(100, 10), (200, 30), (215, 30)],
            [None, None, 15],
            id="spike-after-lull-restarts-up-window",
        ),
    ],
)
def test_stabilisation_waits_for_load_to_stay_outside_the_band(
    loads: list[tuple[float, float]], expected: list[int | None]
) -> None:
    rule = scaling(upscale_stabilization_s=15, downscale_stabilization_s=300)
    assert [desired for desired, _ in run_ticks(rule, loads, 10)] == expected


@pytest.mark.parametrize(
    ("load", "above", "below"),
    [
        pytest.param(30.0, 100.0, None, id="above-starts-up-timer"),
        pytest.param(10.0, None, 100.0, id="below-starts-down-timer"),
        pytest.param(20.0, None, None, id="in-band-clears-timers"),
    ],
)
def test_stabilisation_timers_record_when_load_left_the_band(
    load: float, above: float | None, below: float | None
) -> None:
    rule = scaling(upscale_stabilization_s=15, downscale_stabilization_s=300)
    start = ScalingState(above_since=None, below_since=None)
    verdict = decide_scaling(rule, start, 100.0, load, True, 50.0, 10)
    assert (verdict.state.above_since, verdict.state.below_since) == (above, below)


@pytest.mark.parametrize(
    ("loads", "desired"),
    [
        pytest.param([7, 7, 7, 7, 7, 0], None, id="one-empty-reading-in-a-steady-spike-held"),
        pytest.param([5, 1, 0, 2, 0, 0], 3, id="sized-for-the-busiest-reading"),
        pytest.param([1, 0, 0, 1, 0, 0], 1, id="steady-low-load-scales-in"),
        pytest.param([5, 5, 8, 1, 1, 1], None, id="reading-in-the-band-restarts-the-window"),
        pytest.param([5, 7, 1, 1, 1, 1], None, id="reading-needing-every-replica-restarts"),
    ],
)
def test_scale_down_fits_the_busiest_reading_of_a_window_that_all_needed_fewer_replicas(
    loads: list[float], desired: int | None
) -> None:
    # Requests in flight is an instantaneous gauge: 7 on 4 replicas (1.75 each, just under
    # the band) still needs 4, and a reading of 0 between bursts is noise, not a target.
    rule = scaling(upscale_stabilization_s=0, downscale_stabilization_s=10)
    state = ScalingState()
    verdicts: list[int | None] = []
    for i, load in enumerate(loads):
        verdict = decide_scaling(rule, state, 2.0 * i, load, True, 40.0, 4)
        state = verdict.state
        verdicts.append(verdict.desired)
    assert verdicts == [None] * (len(loads) - 1) + [desired]


# --------------------------------------------------------------------------- missing data


@pytest.mark.parametrize(
    ("load", "complete", "desired"),
    [
        pytest.param(None, False, None, id="missing-load-holds"),
        pytest.param(2.0, False, None, id="partial-low-load-never-scales-down"),
        pytest.param(40.0, False, 20, id="partial-high-load-may-scale-up"),
        pytest.param(2.0, True, 2, id="complete-low-load-scales-down"),
    ],
)
def test_missing_load_never_scales_down(
    load: float | None, complete: bool, desired: int | None
) -> None:
    rule = scaling(upscale_stabilization_s=0, downscale_stabilization_s=0)
    waiting = ScalingState(above_since=0.0, below_since=0.0)
    verdict = decide_scaling(rule, waiting, 100.0, load, complete, None, 10)
    assert verdict.desired == desired


def test_missing_load_clears_the_stabilisation_timers() -> None:
    rule = scaling(upscale_stabilization_s=15, downscale_stabilization_s=300)
    waiting = ScalingState(above_since=50.0, below_since=None)
    verdict = decide_scaling(rule, waiting, 100.0, None, False, None, 10)
    assert verdict.desired is None
    assert (verdict.state.above_since, verdict.state.below_since) == (None, None)


NAN = float("nan")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([(10.0, 3.0), (5.0, 1.0)], (4.0, True), id="every-row-counted"),
        pytest.param([(10.0, 3.0), (0.0, None)], (3.0, True), id="idle-row-without-gauge-is-0"),
        pytest.param([(0.0, None), (0.0, None)], (0.0, True), id="all-idle-is-no-load"),
        pytest.param([(10.0, 3.0), (4.0, None)], (3.0, False), id="serving-row-without-gauge"),
        pytest.param([(10.0, 3.0), (None, None)], (3.0, False), id="row-without-any-rate"),
        pytest.param([(10.0, 3.0), (0.0, NAN)], (3.0, False), id="invalid-gauge-is-missing"),
        pytest.param([(4.0, None)], (None, False), id="no-row-says-anything"),
        pytest.param([], (None, False), id="no-rows"),
    ],
)
def test_scaling_load_counts_an_idle_row_whose_gauge_lapsed_as_no_load(
    rows: list[tuple[float | None, float | None]], expected: tuple[float | None, bool]
) -> None:
    regions = ("eu-west", "eu-central")
    metrics = tuple(
        row("v1", regions[i % 2], rate=rate, ongoing=ongoing)
        for i, (rate, ongoing) in enumerate(rows)
    )
    assert scaling_load(snapshot(0.0, metrics)) == expected


def test_a_region_that_stopped_serving_does_not_block_scale_down_forever() -> None:
    # Traffic left eu-central: its request counter stays (rate 0) but Ray dropped its
    # in-flight gauge. The load in eu-west is low: the controller scales in after the window.
    policy = make_policy(scaling={"downscale_stabilization_s": 10, "max_step": None})
    world = applied(replicas={"eu-west": 4})
    rows = (row("v1", ongoing=1.0, rate=12.0), row("v1", "eu-central", ongoing=None, rate=0.0))
    state = ControllerState()
    totals: list[int] = []
    for t in (0.0, 2.0, 6.0, 10.0, 12.0):
        decision, state = decide(context(t, snapshot(t, rows, world), policy, state))
        totals += [a.total for a in decision.actions if isinstance(a, SetReplicas)]
    assert totals == [1]


# --------------------------------------------------------------------------- predictive


def ramp(
    start: float, slope: float, n: int = 12, step: float = 5.0
) -> tuple[tuple[float, float], ...]:
    """A steady ramp of request rate ending at t = (n-1)*step."""
    return tuple((i * step, start + slope * i * step) for i in range(n))


@pytest.mark.parametrize(
    ("enabled", "desired"),
    [
        pytest.param(True, 18, id="predictive-scales-up-ahead-of-the-ramp"),
        pytest.param(False, None, id="reactive-alone-waits"),
    ],
)
def test_predictive_scales_up_before_reactive_would(enabled: bool, desired: int | None) -> None:
    # Rate climbs 0.4 rps/s to 32 rps now; 20 in flight on 10 replicas is on target, but in 60 s
    # the rate is 56 rps, i.e. 35 in flight (Little's law), 18 replicas.
    rule = scaling(predictive={"enabled": enabled, "horizon_s": 60})
    state = ScalingState(rate_history=ramp(10.0, 0.4))
    verdict = decide_scaling(rule, state, 55.0, 20.0, True, 32.0, 10)
    assert verdict.desired == desired
    if enabled:
        assert "forecast" in verdict.reason


def test_predictive_scale_up_reports_overload_beyond_max_replicas() -> None:
    rule = scaling(max_replicas=12, predictive={"enabled": True, "horizon_s": 60})
    state = ScalingState(rate_history=ramp(10.0, 0.4))
    verdict = decide_scaling(rule, state, 55.0, 20.0, True, 32.0, 10)
    assert verdict.desired == 18
    assert verdict.overloaded


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(
            tuple((i * 5.0, 32.0 + (1.0 if i % 2 else -1.0)) for i in range(24)),
            id="constant-noisy-rate",
        ),
        pytest.param(ramp(60.0, -0.4), id="falling-rate"),
        pytest.param(ramp(32.0, 0.4, n=3), id="too-few-points"),
    ],
)
def test_predictive_does_not_scale_without_a_rising_trend(
    history: tuple[tuple[float, float], ...],
) -> None:
    rule = scaling(predictive={"enabled": True, "horizon_s": 60})
    verdict = decide_scaling(rule, ScalingState(rate_history=history), 120.0, 20.0, True, 32.0, 10)
    assert verdict.desired is None


def test_append_rate_keeps_a_bounded_history_and_skips_missing_rates() -> None:
    state = ScalingState()
    for i, rate in enumerate([1.0, None, 3.0, 4.0, 5.0]):
        state = append_rate(state, float(i), rate, keep=3)
    assert state.rate_history == ((2.0, 3.0), (3.0, 4.0), (4.0, 5.0))


# --------------------------------------------------------------------------- split_replicas


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        pytest.param(4, {"a": 1.0}, {"a": 4}, id="one-region-gets-all"),
        pytest.param(5, {"a": 0.5, "b": 0.5}, {"a": 3, "b": 2}, id="tie-broken-by-name"),
        pytest.param(10, {"a": 0.7, "b": 0.3}, {"a": 7, "b": 3}, id="proportional"),
        pytest.param(3, {"a": 0.9, "b": 0.05, "c": 0.05}, {"a": 1, "b": 1, "c": 1}, id="one-each"),
        pytest.param(
            4, {"a": 0.98, "b": 0.01, "c": 0.01}, {"a": 2, "b": 1, "c": 1}, id="floor-one"
        ),
        pytest.param(2, {"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 1, "b": 1, "c": 0}, id="too-few"),
        pytest.param(6, {"a": 1.0, "b": 0.0}, {"a": 6, "b": 0}, id="zero-weight-gets-zero"),
        pytest.param(0, {"a": 0.5, "b": 0.5}, {"a": 0, "b": 0}, id="zero-total"),
        pytest.param(3, {"a": 0.0}, {"a": 0}, id="no-weight-anywhere"),
    ],
)
def test_split_replicas_golden(
    total: int, weights: dict[str, float], expected: dict[str, int]
) -> None:
    assert split_replicas(total, weights) == expected


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param({"a": 1.0}, id="one"),
        pytest.param({"a": 0.5, "b": 0.5}, id="even"),
        pytest.param({"a": 0.6, "b": 0.3, "c": 0.1}, id="skewed"),
        pytest.param({"a": 0.97, "b": 0.01, "c": 0.01, "d": 0.01}, id="very-skewed"),
        pytest.param({"a": 0.4, "b": 0.0, "c": 0.6}, id="with-zero"),
        pytest.param({"a": 3.0, "b": 1.0}, id="unnormalised"),
    ],
)
@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 10, 101])
def test_split_replicas_preserves_the_total_and_feeds_every_used_region(
    total: int, weights: dict[str, float]
) -> None:
    out = split_replicas(total, weights)
    used = [r for r, w in weights.items() if w > 0]
    assert set(out) == set(weights)
    assert sum(out.values()) == total
    assert all(out[r] == 0 for r, w in weights.items() if w <= 0)
    if total >= len(used):
        assert all(out[r] >= 1 for r in used)

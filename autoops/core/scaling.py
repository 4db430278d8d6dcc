"""Reactive and predictive scaling: how many replicas the load needs (before guards)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from autoops.core.forecast import TrendSums, trend_from_sums
from autoops.core.state import ScalingState
from autoops.model import Snapshot
from autoops.policy.schema import Scaling

IN_BAND = "load per replica within the tolerance band: replicas held"
REBASE_S = 3600.0
"""Rebuild the trend sums from the points when their origin is this old."""


@dataclass(frozen=True, slots=True)
class ScalingVerdict:
    """The scaling rule's answer: a total replica target (or None to keep), and why."""

    desired: int | None
    reason: str
    state: ScalingState
    overloaded: bool = False
    """Load is above the band even at the desired replicas (capacity pressure)."""


def scaling_load(snapshot: Snapshot) -> tuple[float | None, bool]:
    """Requests in flight over every row, and whether every row's count is known.

    A row without a valid in-flight value makes the total a lower bound (incomplete: it may
    only scale up), except a row that saw no request in the window: Ray drops a gauge that is
    not set again within its TTL, so a pair the ingress stopped routing to loses its in-flight
    series while its request counter stays, and nothing is in flight where nothing arrived.
    Returns (None, False) when no row says anything about load.
    """
    total = 0.0
    known = False
    complete = True
    for row in snapshot.metrics:
        value = row.ongoing_requests
        if value is not None and 0.0 <= value < math.inf:
            known = True
            total += value
        elif value is None and row.request_rate == 0.0:
            known = True  # idle: its in-flight gauge lapsed, its counter saw nothing
        else:
            complete = False
    if not known:
        return None, False
    return total, complete


def append_rate(state: ScalingState, now: float, rate: float | None, keep: int) -> ScalingState:
    """Add one (time, rate) point to the bounded history; missing rates are not recorded.

    The trend sums move with the window in O(1); they are rebuilt from the points when
    absent, out of step, or an hour past their origin (so rounding never accumulates).
    """
    if rate is None:
        return state
    old = state.rate_history
    full = len(old) >= keep
    history = (*old[len(old) - keep + 1 :], (now, rate)) if full else (*old, (now, rate))
    trend = state.trend
    if trend is None or trend.n != len(old) or now - trend.t0 > REBASE_S or len(old) > keep:
        trend = TrendSums.of(history)
    elif full:
        t_old, y_old = old[0]
        trend = trend.slide(now, rate, t_old, y_old)
    else:
        trend = trend.add(now, rate)
    return ScalingState(
        state.above_since,
        state.below_since,
        state.last_scale_at,
        state.last_direction,
        history,
        trend,
        state.below_peak,
    )


def cleared_timers(state: ScalingState) -> ScalingState:
    """The state with both stabilisation timers stopped (the same object when already stopped)."""
    if state.above_since is None and state.below_since is None:
        return state
    return replace(state, above_since=None, below_since=None)


def decide_scaling(
    policy: Scaling,
    state: ScalingState,
    now: float,
    load: float | None,
    load_complete: bool,
    rate: float | None,
    current: int,
) -> ScalingVerdict:
    """Return the total replicas the load calls for, honouring the band and stabilisation.

    Missing load never scales down; partial load (a lower bound) may only scale up.
    """
    target = policy.target_ongoing_requests
    if load is None:
        cleared = cleared_timers(state)
        return ScalingVerdict(None, "no load data: replicas held", cleared)
    capacity = max(current, 1)
    per_replica = load / capacity
    needed = math.ceil(load / target) if load > 0 else 0
    upper = target * (1 + policy.tolerance)
    lower = target * (1 - policy.tolerance)

    # Predictive: a significant upward trend, converted to load by Little's law.
    if policy.predictive.enabled and rate and rate > 0:
        history = state.rate_history
        sums = state.trend
        if sums is None or sums.n != len(history):
            sums = TrendSums.of(history)
        forecast = (
            trend_from_sums(sums, history[-1][0], policy.predictive.horizon_s)
            if len(history) >= 4
            else None
        )
        if forecast is not None and forecast.slope > 0:
            predicted_load = forecast.value * (load / rate)
            predicted_need = math.ceil(predicted_load / target)
            if predicted_load / capacity > upper and predicted_need > current:
                return ScalingVerdict(
                    predicted_need,
                    f"forecast {forecast.value:.1f} rps in {policy.predictive.horizon_s:g}s "
                    f"(trend {forecast.slope:+.2f} rps/s, t={forecast.t_stat:.1f}) needs "
                    f"{predicted_need} replicas for {predicted_load:.1f} in flight",
                    replace(state, above_since=state.above_since or now, below_since=None),
                    overloaded=predicted_need > policy.max_replicas,
                )

    if per_replica > upper or (current == 0 and load > 0):
        above = state.above_since if state.above_since is not None else now
        new_state = replace(state, above_since=above, below_since=None)
        waited = now - above
        overloaded = needed > policy.max_replicas
        if waited >= policy.upscale_stabilization_s:
            return ScalingVerdict(
                needed,
                f"{load:.1f} requests in flight on {current} replicas "
                f"({per_replica:.2f} each > {upper:.2f}): {needed} replicas needed",
                new_state,
                overloaded=overloaded,
            )
        return ScalingVerdict(
            None,
            f"load above the band for {waited:.0f}s of {policy.upscale_stabilization_s:g}s",
            new_state,
            overloaded=overloaded,
        )
    if per_replica < lower and current > policy.min_replicas:
        if not load_complete:
            cleared = cleared_timers(state)
            return ScalingVerdict(None, "load data incomplete: no scale-down", cleared)
        if needed < current:
            return _scale_down(policy, state, now, load, current)
    # The steady case runs every pass for every target: its reason is a constant (the
    # decision's evidence carries the numbers).
    return ScalingVerdict(None, IN_BAND, cleared_timers(state))


def _scale_down(
    policy: Scaling, state: ScalingState, now: float, load: float, current: int
) -> ScalingVerdict:
    """Scale in once every reading of the whole window needed fewer replicas; fit its peak.

    Requests in flight is an instantaneous gauge: one reading between bursts may show none.
    Sizing the scale-in by the last reading would drop replicas the rest of the window needed
    (and scale straight back up); the busiest reading of the window sets the target instead,
    and a reading that needs every replica starts the window again.
    """
    target = policy.target_ongoing_requests
    below = state.below_since
    peak = load if below is None else max(state.below_peak, load)
    below = now if below is None else below
    new_state = replace(state, above_since=None, below_since=below, below_peak=peak)
    waited = now - below
    if waited < policy.downscale_stabilization_s:
        return ScalingVerdict(
            None,
            f"load below the band for {waited:.0f}s of {policy.downscale_stabilization_s:g}s",
            new_state,
        )
    desired = math.ceil(peak / target) if peak > 0 else 0
    return ScalingVerdict(
        desired,
        f"at most {peak:.1f} requests in flight on {current} replicas for {waited:.0f}s "
        f"({peak / current:.2f} each < {target * (1 - policy.tolerance):.2f}): "
        f"{desired} replicas",
        new_state,
    )

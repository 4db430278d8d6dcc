"""Reactive and predictive scaling: how many replicas the load needs (before guards)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoops.core.forecast import (
    TrendForecast,
    TrendSums,
    onset_forecast,
    trend_from_sums,
)
from autoops.core.frozen import builder
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


_state = builder(ScalingState)
_verdict = builder(ScalingVerdict)


def _timers(
    state: ScalingState, above_since: float | None, below_since: float | None, below_peak: float
) -> ScalingState:
    """The state with its stabilisation timers (and the peak below the band) replaced."""
    return _state(
        above_since,
        below_since,
        state.last_scale_at,
        state.last_direction,
        state.rate_history,
        state.trend,
        below_peak,
        state.service_s,
    )


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
    size = len(old)
    full = size >= keep
    history = (old[size - keep + 1 :] if full else old) + ((now, rate),)
    trend = state.trend
    if trend is None or trend.n != size or now - trend.t0 > REBASE_S or size > keep:
        trend = TrendSums.of(history)
    elif full:
        t_old, y_old = old[0]
        trend = trend.slide(now, rate, t_old, y_old)
    else:
        trend = trend.add(now, rate)
    return _state(
        state.above_since,
        state.below_since,
        state.last_scale_at,
        state.last_direction,
        history,
        trend,
        state.below_peak,
        state.service_s,
    )


def cleared_timers(state: ScalingState) -> ScalingState:
    """The state with both stabilisation timers stopped (the same object when already stopped)."""
    if state.above_since is None and state.below_since is None:
        return state
    return _timers(state, None, None, state.below_peak)


@dataclass(frozen=True, slots=True)
class _Band:
    """The scaling values every pass reads, read once per policy (as plain attributes)."""

    scaling: Scaling
    target: float
    upper: float
    lower: float
    min_replicas: int
    predictive: bool
    horizon_s: float


_BANDS: dict[int, _Band] = {}


def _band(policy: Scaling) -> _Band:
    """The policy's band, memoised by identity (the targets of a policy share its object)."""
    hit = _BANDS.get(id(policy))
    if hit is not None and hit.scaling is policy:
        return hit
    target = policy.target_ongoing_requests
    band = _Band(
        policy,
        target,
        target * (1 + policy.tolerance),
        target * (1 - policy.tolerance),
        policy.min_replicas,
        policy.predictive.enabled,
        policy.predictive.horizon_s,
    )
    if len(_BANDS) > 1024:
        _BANDS.clear()
    _BANDS[id(policy)] = band
    return band


def decide_scaling(
    policy: Scaling,
    state: ScalingState,
    now: float,
    load: float | None,
    load_complete: bool,
    rate: float | None,
    current: int,
    ready: int | None = None,
) -> ScalingVerdict:
    """Return the total replicas the load calls for, honouring the band and stabilisation.

    Missing load never scales down; partial load (a lower bound) may only scale up. The
    requests in flight say whether the replicas are above or below the band; while replicas
    asked for are still starting, a scale-up is sized from the arrival rate instead
    (``sizing_load``), so the queue on the ready replicas is not counted twice. ``ready``:
    replicas serving now, when the serving system says (see ``capacity_pending``).
    """
    band = _band(policy)
    target = band.target
    if load is None:
        cleared = cleared_timers(state)
        return _verdict(None, "no load data: replicas held", cleared)
    pending = capacity_pending(policy, state, now, current, ready)
    state = learn_service_time(state, load, rate, current, target, pending)
    sized = sizing_load(state, load, rate, pending)
    capacity = current if current > 1 else 1
    per_replica = load / capacity
    upper = band.upper
    lower = band.lower

    outlook = _forecast(band.horizon_s, state) if band.predictive and rate and rate > 0 else None
    predicted_load = outlook.forecast.value * (sized / rate) if outlook and rate else None
    if outlook is not None and predicted_load is not None:
        predicted_need = math.ceil(predicted_load / target)
        if predicted_load / capacity > upper and predicted_need > current:
            return _verdict(
                predicted_need,
                f"{outlook.describe()} needs {predicted_need} replicas for "
                f"{predicted_load:.1f} in flight",
                _timers(state, state.above_since or now, None, state.below_peak),
                overloaded=predicted_need > policy.max_replicas,
            )

    if per_replica > upper or (current == 0 and load > 0):
        return _scale_up(policy, state, now, load, sized, current)
    if per_replica < lower and current > band.min_replicas:
        if not load_complete:
            cleared = cleared_timers(state)
            return _verdict(None, "load data incomplete: no scale-down", cleared)
        if math.ceil(load / target) < current:
            return _scale_down(policy, state, now, load, current, predicted_load)
    # The steady case runs every pass for every target: its reason is a constant (the
    # decision's evidence carries the numbers).
    return _verdict(None, IN_BAND, cleared_timers(state))


def _scale_up(
    policy: Scaling, state: ScalingState, now: float, load: float, sized: float, current: int
) -> ScalingVerdict:
    """Scale out once the load stayed above the band for the stabilisation window.

    ``sized`` is the load the replicas will carry (``load`` itself unless replicas are
    starting); when the replicas asked for already carry it, the pass holds.
    """
    target = policy.target_ongoing_requests
    needed = math.ceil(sized / target) if sized > 0 else 0
    above = state.above_since if state.above_since is not None else now
    new_state = _timers(state, above, None, state.below_peak)
    waited = now - above
    overloaded = needed > policy.max_replicas
    if waited < policy.upscale_stabilization_s:
        return _verdict(
            None,
            f"load above the band for {waited:.0f}s of {policy.upscale_stabilization_s:g}s",
            new_state,
            overloaded=overloaded,
        )
    why = (
        f"{load:.1f} requests in flight on {current} replicas "
        f"({load / max(current, 1):.2f} each > {target * (1 + policy.tolerance):.2f})"
    )
    if sized < load:
        why += f", {load - sized:.1f} of them queued for the replicas starting"
        if needed <= current:
            return _verdict(None, f"{why}: held", new_state)
    return _verdict(needed, f"{why}: {needed} replicas needed", new_state, overloaded=overloaded)


def capacity_pending(
    policy: Scaling, state: ScalingState, now: float, current: int, ready: int | None = None
) -> bool:
    """Whether replicas asked for are still starting.

    With the count of ready replicas (``ready``), fewer ready than asked for. Without it, a
    scale-up younger than the predictive horizon (the policy's lead over the cold start).
    """
    if ready is not None:
        return ready < current
    return (
        state.last_direction > 0
        and state.last_scale_at is not None
        and now - state.last_scale_at < policy.predictive.horizon_s
    )


SERVICE_EWMA = 0.2
"""Weight of the newest reading in the service-time estimate."""


def learn_service_time(
    state: ScalingState,
    load: float,
    rate: float | None,
    current: int,
    target: float,
    pending: bool,
) -> ScalingState:
    """Update the service time (in flight per request/s) from a reading without a queue.

    A reading counts when the replicas carry at most the target each and none is starting:
    requests in flight are then requests being served, and in flight / rate is the service
    time (Little's law).
    """
    if pending or not rate or rate <= 0 or load <= 0 or load > target * max(current, 1):
        return state
    observed = load / rate
    old = state.service_s
    value = observed if old is None else old + SERVICE_EWMA * (observed - old)
    return _state(
        state.above_since,
        state.below_since,
        state.last_scale_at,
        state.last_direction,
        state.rate_history,
        state.trend,
        state.below_peak,
        value,
    )


def sizing_load(state: ScalingState, load: float, rate: float | None, pending: bool) -> float:
    """Requests in flight the replicas will carry: the queue on the ready ones left out.

    While asked-for replicas start, the ready ones queue what the new ones will serve, and
    queued requests count as in flight: sizing from that count overshoots (and scales back in
    after, a flap). Until they are up, the load is the arrival rate times the service time
    measured without a queue (Little's law), never more than the count itself.
    """
    if not pending or state.service_s is None or not rate or rate <= 0:
        return load
    return min(load, rate * state.service_s)


ONSET_LEAD = 0.5
"""Share of the horizon a ramp seen only in the newest points is extrapolated over: how long
it lasts is not known yet (a burst may level off within seconds); once the whole history
shows the trend, the full horizon applies."""


@dataclass(frozen=True, slots=True)
class RateOutlook:
    """A rising forecast of the request rate, how far ahead it looks, and what it rests on."""

    forecast: TrendForecast
    horizon_s: float
    source: str
    """``trend`` (the whole history) or ``new ramp`` (the newest points, see onset_forecast)."""

    def describe(self) -> str:
        """The forecast in words, for a decision's reason."""
        f = self.forecast
        stat = "t" if self.source == "trend" else "z"
        return (
            f"forecast {f.value:.1f} rps in {self.horizon_s:g}s "
            f"({self.source} {f.slope:+.2f} rps/s, {stat}={f.t_stat:.1f})"
        )


def rate_forecast(policy: Scaling, state: ScalingState) -> RateOutlook | None:
    """The higher of the history's rising trend and a ramp that began in the newest points.

    A line through the whole history lags a ramp that began a few points ago (its slope is
    averaged with the flat stretch before), and the replicas it asks for arrive a cold start
    later still; the newest points alone see the ramp a few passes earlier.
    """
    if not policy.predictive.enabled:
        return None
    return _forecast(policy.predictive.horizon_s, state)


def _forecast(horizon: float, state: ScalingState) -> RateOutlook | None:
    """``rate_forecast`` of an enabled forecast looking ``horizon`` seconds ahead."""
    history = state.rate_history
    if len(history) < 4:
        return None
    sums = state.trend
    if sums is None or sums.n != len(history):
        sums = TrendSums.of(history)
    best: RateOutlook | None = None
    trend = trend_from_sums(sums, history[-1][0], horizon)
    if trend is not None and trend.slope > 0:
        best = RateOutlook(trend, horizon, "trend")
    onset = onset_forecast(history, sums, horizon * ONSET_LEAD)
    if onset is not None and (best is None or onset.value > best.forecast.value):
        best = RateOutlook(onset, horizon * ONSET_LEAD, "new ramp")
    return best


def _scale_down(
    policy: Scaling,
    state: ScalingState,
    now: float,
    load: float,
    current: int,
    predicted_load: float | None = None,
) -> ScalingVerdict:
    """Scale in once every reading of the whole window needed fewer replicas; fit its peak.

    Requests in flight is an instantaneous gauge: one reading between bursts may show none.
    Sizing the scale-in by the last reading would drop replicas the rest of the window needed
    (and scale straight back up); the busiest reading of the window sets the target instead,
    and a reading that needs every replica starts the window again.

    The smaller pool must carry that reading a tolerance under the target: fewer replicas
    queue more, and queued requests count as in flight, so a pool sized to carry the busiest
    reading exactly at the target crosses the band's upper edge on its own and scales straight
    back up (a flap). While the rate rises (``predicted_load``: the load a significant upward
    trend forecasts), no scale-in goes below what the forecast needs either. A scale-in that
    would remove nothing starts the window again, so a later one rests on fresh readings.
    """
    target = policy.target_ongoing_requests
    below = state.below_since
    peak = load if below is None else max(state.below_peak, load)
    below = now if below is None else below
    new_state = _timers(state, None, below, peak)
    waited = now - below
    if waited < policy.downscale_stabilization_s:
        return _verdict(
            None,
            f"load below the band for {waited:.0f}s of {policy.downscale_stabilization_s:g}s",
            new_state,
        )
    headroom = target / (1 + policy.tolerance)
    desired = math.ceil(peak / headroom) if peak > 0 else 0
    why = (
        f"at most {peak:.1f} requests in flight on {current} replicas for {waited:.0f}s "
        f"({peak / current:.2f} each < {target * (1 - policy.tolerance):.2f})"
    )
    if predicted_load is not None and math.ceil(predicted_load / target) > desired:
        desired = math.ceil(predicted_load / target)
        why += f", but the rate rises: {predicted_load:.1f} in flight forecast"
    if desired >= current:
        restarted = _timers(new_state, new_state.above_since, now, load)
        return _verdict(None, f"{why}: {desired} replicas needed, none removed", restarted)
    return _verdict(desired, f"{why}: {desired} replicas (at most {headroom:.2f} each)", new_state)

"""Short-horizon forecasts of request rate (pure; fitted on the past only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from autoops.core.frozen import builder


@dataclass(frozen=True, slots=True)
class TrendForecast:
    """A linear-trend forecast with the evidence for the trend."""

    value: float
    """Forecast rate at the horizon."""
    slope: float
    """Fitted change per second."""
    t_stat: float
    """Slope divided by its standard error."""
    level: float
    """Fitted rate now."""


@dataclass(frozen=True, slots=True)
class TrendSums:
    """Least-squares sums of (t, y) points taken relative to an origin, updatable in O(1).

    The controller keeps these in its state so each pass adds the newest point and removes
    the oldest instead of refitting the whole history; the origin keeps the sums small.
    """

    t0: float
    y0: float
    n: int = 0
    st: float = 0.0
    sy: float = 0.0
    stt: float = 0.0
    sty: float = 0.0
    syy: float = 0.0

    @classmethod
    def of(cls, points: Sequence[tuple[float, float]]) -> TrendSums:
        """Sums over ``points``, with the first point as the origin."""
        if not points:
            return cls(0.0, 0.0)
        t0, y0 = points[0]
        st = sy = stt = sty = syy = 0.0
        for t_abs, y_abs in points:
            t = t_abs - t0
            y = y_abs - y0
            st += t
            sy += y
            stt += t * t
            sty += t * y
            syy += y * y
        return cls(t0, y0, len(points), st, sy, stt, sty, syy)

    def slide(self, t_new: float, y_new: float, t_old: float, y_old: float) -> TrendSums:
        """The sums with (t_new, y_new) added and (t_old, y_old) removed, in one step."""
        t, y = t_new - self.t0, y_new - self.y0
        u, v = t_old - self.t0, y_old - self.y0
        return _sums(
            self.t0,
            self.y0,
            self.n,
            self.st + t - u,
            self.sy + y - v,
            self.stt + t * t - u * u,
            self.sty + t * y - u * v,
            self.syy + y * y - v * v,
        )

    def add(self, t_abs: float, y_abs: float, sign: int = 1) -> TrendSums:
        """The sums with one point added (``sign=1``) or removed (``sign=-1``)."""
        t = t_abs - self.t0
        y = y_abs - self.y0
        return _sums(
            self.t0,
            self.y0,
            self.n + sign,
            self.st + sign * t,
            self.sy + sign * y,
            self.stt + sign * t * t,
            self.sty + sign * t * y,
            self.syy + sign * y * y,
        )


_sums = builder(TrendSums)


def trend_from_sums(
    sums: TrendSums, t_last: float, horizon_s: float, min_t_stat: float = 3.0
) -> TrendForecast | None:
    """The forecast ``horizon_s`` after ``t_last`` from least-squares sums (see linear_trend)."""
    n = sums.n
    if n < 4:
        return None
    st, sy, syy = sums.st, sums.sy, sums.syy
    fit = _fit(n, st, sy, sums.stt, sums.sty, syy)
    if fit is None:
        return None
    slope, residual, sxx = fit
    if residual <= 1e-12 * _at_least(syy, 1e-12):
        t_stat = math.copysign(math.inf, slope) if slope != 0 else 0.0
    else:
        se = math.sqrt(residual / (n - 2) / sxx)
        t_stat = slope / se if se > 0 else 0.0
    if abs(t_stat) < min_t_stat:
        return None
    level = sums.y0 + _intercept(n, st, sy, slope) + slope * (t_last - sums.t0)
    return TrendForecast(
        value=max(0.0, level + slope * horizon_s), slope=slope, t_stat=t_stat, level=level
    )


ONSET_POINTS = 4
"""The newest points the onset test fits on their own (about 20 s at a 5 s pass)."""
ONSET_MIN_Z = 4.0
"""How many standard errors the newest points' slope must exceed the earlier line's by."""
ONSET_RISE = 2.0
"""How many noise deviations each of the two newest points must stand above the earlier line:
one high reading (noise, or a scrape that caught a spike) is not yet a ramp."""
NOISE_FLOOR = 0.005
"""The rate noise assumed at least (relative): exactly flat points are not noiseless data."""


def _at_least(value: float, floor: float) -> float:
    """``max(value, floor)`` without the call (the same value, NaN included)."""
    return floor if floor > value else value


def _fit(
    n: int, st: float, sy: float, stt: float, sty: float, syy: float
) -> tuple[float, float, float] | None:
    """(slope, residual sum of squares, Sxx) of a least-squares line from its sums; None for
    fewer than 3 points or no spread in time (its intercept: ``_intercept``)."""
    if n < 3:
        return None
    sxx = stt - st * st / n
    if sxx <= 1e-9 * _at_least(stt, 1.0):
        return None
    sxy = sty - st * sy / n
    slope = sxy / sxx
    return slope, _at_least(syy - sy * sy / n - slope * sxy, 0.0), sxx


def _slope(n: int, st: float, sy: float, stt: float, sty: float) -> tuple[float, float] | None:
    """(slope, Sxx) of the least-squares line ``_fit`` gives, without its residual."""
    if n < 3:
        return None
    sxx = stt - st * st / n
    if sxx <= 1e-9 * _at_least(stt, 1.0):
        return None
    return (sty - st * sy / n) / sxx, sxx


def _intercept(n: int, st: float, sy: float, slope: float) -> float:
    """The intercept of the least-squares line of slope ``slope`` through these sums."""
    return sy / n - slope * st / n


def onset_forecast(
    points: Sequence[tuple[float, float]],
    sums: TrendSums,
    horizon_s: float,
    recent: int = ONSET_POINTS,
    min_z: float = ONSET_MIN_Z,
) -> TrendForecast | None:
    """A rise that began in the newest ``recent`` points, forecast from those points alone.

    A line fitted over the whole history lags a ramp that began a few points ago: its slope
    is averaged with the flat stretch before. Here the earlier points give the line and the
    noise (their residual variance, at least ``NOISE_FLOOR`` of the rate); the rise counts
    when the two newest points both stand ``ONSET_RISE`` noise deviations above that line
    (one high reading is not yet a ramp) and the newest points' own slope exceeds the
    line's by ``min_z`` standard errors. ``sums`` are the sums over ``points``: the earlier
    points' are theirs less the newest points', in O(recent). None without such a rise.
    """
    if len(points) < recent + 6 or sums.n != len(points) or recent < 3:
        return None
    newest = points[-recent:]
    t0, y0 = sums.t0, sums.y0
    nt = ny = ntt = nty = nyy = 0.0
    for t_abs, y_abs in newest:
        t, y = t_abs - t0, y_abs - y0
        nt += t
        ny += y
        ntt += t * t
        nty += t * y
        nyy += y * y
    noise_floor = (NOISE_FLOOR * (ny / recent + y0)) ** 2
    # The newest points' own slope first: it is cheap, and a flat series ends here half the
    # time. The tests below are pure, so their order does not change the answer.
    now = _slope(recent, nt, ny, ntt, nty)
    if now is None or now[0] <= 0:
        return None
    slope, sxx_now = now
    n = sums.n - recent
    st_before, sy_before = sums.st - nt, sums.sy - ny
    before = _fit(n, st_before, sy_before, sums.stt - ntt, sums.sty - nty, sums.syy - nyy)
    if before is None:
        return None
    slope_before, residual_before, sxx_before = before
    var = _at_least(_at_least(residual_before / (n - 2), noise_floor), 1e-12)
    margin = ONSET_RISE * math.sqrt(var) + _intercept(n, st_before, sy_before, slope_before) + y0
    for t_abs, y_abs in newest[-2:]:
        if y_abs < margin + slope_before * (t_abs - t0):
            return None
    z = (slope - slope_before) / math.sqrt(var / sxx_now + var / sxx_before)
    if z < min_z:
        return None
    level = sums.y0 + _intercept(recent, nt, ny, slope) + slope * (newest[-1][0] - sums.t0)
    return TrendForecast(
        value=max(0.0, level + slope * horizon_s), slope=slope, t_stat=z, level=level
    )


def linear_trend(
    points: Sequence[tuple[float, float]], horizon_s: float, min_t_stat: float = 3.0
) -> TrendForecast | None:
    """Forecast ``horizon_s`` ahead from a least-squares line, or None without a real trend.

    A trend counts only when its t statistic reaches ``min_t_stat``, so noise around a constant
    level never produces a forecast ramp.
    """
    if len(points) < 4:
        return None
    return trend_from_sums(TrendSums.of(points), points[-1][0], horizon_s, min_t_stat)


def holt(
    values: Sequence[float], horizon_steps: int, alpha: float = 0.5, beta: float = 0.3
) -> float | None:
    """Holt's linear smoothing forecast ``horizon_steps`` ahead (None if too short)."""
    if len(values) < 2:
        return None
    level = values[0]
    trend = values[1] - values[0]
    for y in values[1:]:
        previous = level
        level = alpha * y + (1 - alpha) * (level + trend)
        trend = beta * (level - previous) + (1 - beta) * trend
    return level + horizon_steps * trend

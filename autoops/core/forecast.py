"""Short-horizon forecasts of request rate (pure; fitted on the past only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


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
        return TrendSums(
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
        return TrendSums(
            self.t0,
            self.y0,
            self.n + sign,
            self.st + sign * t,
            self.sy + sign * y,
            self.stt + sign * t * t,
            self.sty + sign * t * y,
            self.syy + sign * y * y,
        )


def trend_from_sums(
    sums: TrendSums, t_last: float, horizon_s: float, min_t_stat: float = 3.0
) -> TrendForecast | None:
    """The forecast ``horizon_s`` after ``t_last`` from least-squares sums (see linear_trend)."""
    n = sums.n
    if n < 4:
        return None
    line = _line(n, sums.st, sums.sy, sums.stt, sums.sty, sums.syy)
    if line is None:
        return None
    slope, intercept, residual, sxx = line
    if residual <= 1e-12 * max(sums.syy, 1e-12):
        t_stat = math.copysign(math.inf, slope) if slope != 0 else 0.0
    else:
        se = math.sqrt(residual / (n - 2) / sxx)
        t_stat = slope / se if se > 0 else 0.0
    if abs(t_stat) < min_t_stat:
        return None
    level = sums.y0 + intercept + slope * (t_last - sums.t0)
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


def _line(
    n: int, st: float, sy: float, stt: float, sty: float, syy: float
) -> tuple[float, float, float, float] | None:
    """(slope, intercept, residual sum of squares, Sxx) of a least-squares line from its sums;
    None for fewer than 3 points or no spread in time."""
    if n < 3:
        return None
    sxx = stt - st * st / n
    if sxx <= 1e-9 * max(stt, 1.0):
        return None
    sxy = sty - st * sy / n
    slope = sxy / sxx
    intercept = sy / n - slope * st / n
    return slope, intercept, max(syy - sy * sy / n - slope * sxy, 0.0), sxx


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
    nt = ny = ntt = nty = nyy = 0.0
    for t_abs, y_abs in newest:
        t, y = t_abs - sums.t0, y_abs - sums.y0
        nt += t
        ny += y
        ntt += t * t
        nty += t * y
        nyy += y * y
    n = sums.n - recent
    before = _line(n, sums.st - nt, sums.sy - ny, sums.stt - ntt, sums.sty - nty, sums.syy - nyy)
    if before is None:
        return None
    slope_before, intercept_before, residual_before, sxx_before = before
    var = max(residual_before / (n - 2), (NOISE_FLOOR * (ny / recent + sums.y0)) ** 2, 1e-12)
    margin = ONSET_RISE * math.sqrt(var) + intercept_before + sums.y0
    for t_abs, y_abs in newest[-2:]:
        if y_abs < margin + slope_before * (t_abs - sums.t0):
            return None
    now = _line(recent, nt, ny, ntt, nty, nyy)
    if now is None or now[0] <= 0:
        return None
    slope, intercept = now[0], now[1]
    z = (slope - slope_before) / math.sqrt(var / now[3] + var / sxx_before)
    if z < min_z:
        return None
    level = sums.y0 + intercept + slope * (newest[-1][0] - sums.t0)
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

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


def linear_trend(
    points: Sequence[tuple[float, float]], horizon_s: float, min_t_stat: float = 3.0
) -> TrendForecast | None:
    """Forecast ``horizon_s`` ahead from a least-squares line, or None without a real trend.

    A trend counts only when its t statistic reaches ``min_t_stat``, so noise around a constant
    level never produces a forecast ramp.
    """
    n = len(points)
    if n < 4:
        return None
    # One pass; times and values relative to the first point for numerical stability.
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
    sxx = stt - st * st / n
    if sxx <= 0:
        return None
    sxy = sty - st * sy / n
    slope = sxy / sxx
    mean_t = st / n
    intercept = sy / n - slope * mean_t
    residual = max(syy - sy * sy / n - slope * sxy, 0.0)
    dof = n - 2
    if residual <= 1e-12 * max(syy, 1e-12):
        t_stat = math.copysign(math.inf, slope) if slope != 0 else 0.0
    else:
        se = math.sqrt(residual / dof / sxx)
        t_stat = slope / se if se > 0 else 0.0
    if abs(t_stat) < min_t_stat:
        return None
    t_now = points[-1][0] - t0
    level = y0 + intercept + slope * t_now
    return TrendForecast(
        value=max(0.0, level + slope * horizon_s), slope=slope, t_stat=t_stat, level=level
    )


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

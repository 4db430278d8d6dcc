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
    mean_t = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mean_t) ** 2 for p in points)
    if sxx <= 0:
        return None
    sxy = sum((p[0] - mean_t) * (p[1] - mean_y) for p in points)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_t
    residual = sum((p[1] - (intercept + slope * p[0])) ** 2 for p in points)
    dof = n - 2
    if residual <= 0:
        t_stat = math.inf if slope != 0 else 0.0
    else:
        se = math.sqrt(residual / dof / sxx)
        t_stat = slope / se if se > 0 else 0.0
    if abs(t_stat) < min_t_stat:
        return None
    t_now = points[-1][0]
    level = intercept + slope * t_now
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

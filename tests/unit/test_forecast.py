"""`linear_trend` on hand-computed points, and no forecast without a real trend."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.core.forecast import TrendSums, holt, linear_trend, trend_from_sums
from autoops.core.scaling import append_rate
from autoops.core.state import ScalingState

Points = tuple[tuple[float, float], ...]


@pytest.mark.parametrize(
    ("points", "horizon", "value", "slope", "t_stat", "level"),
    [
        # y = 1 + 2t exactly: no residual, infinite t; level 7 at t=3, +2*2 in 2 s.
        pytest.param(
            ((0, 1), (1, 3), (2, 5), (3, 7)), 2.0, 11.0, 2.0, math.inf, 7.0, id="exact-line"
        ),
        # mean t 1.5, mean y 1; Sxx 5, Sxy 3 -> slope 0.6, intercept 0.1; residuals
        # -0.1, 0.3, -0.3, 0.1 -> SSE 0.2, se sqrt(0.2/2/5) -> t 3*sqrt(2); level 1.9 at t=3.
        pytest.param(
            ((0, 0), (1, 1), (2, 1), (3, 2)), 5.0, 4.9, 0.6, 3 * math.sqrt(2), 1.9, id="noisy-line"
        ),
        # The same shape far from the origin (epoch seconds, large rates): same slope and t.
        pytest.param(
            ((1e9, 1000), (1e9 + 1, 1001), (1e9 + 2, 1001), (1e9 + 3, 1002)),
            5.0,
            1004.9,
            0.6,
            3 * math.sqrt(2),
            1001.9,
            id="noisy-line-at-epoch-time",
        ),
        # y = 10 - 2t: a falling trend is still a trend; the forecast never goes below zero.
        pytest.param(
            ((0, 10), (1, 8), (2, 6), (3, 4)), 5.0, 0.0, -2.0, -math.inf, 4.0, id="falling-clamped"
        ),
        # Rate every 5 s rising 0.4 rps/s from 10 to 32: 60 s ahead is 56.
        pytest.param(
            tuple((i * 5.0, 10.0 + 2.0 * i) for i in range(12)),
            60.0,
            56.0,
            0.4,
            math.inf,
            32.0,
            id="ramp-every-5s",
        ),
    ],
)
def test_linear_trend_golden(
    points: Points, horizon: float, value: float, slope: float, t_stat: float, level: float
) -> None:
    forecast = linear_trend(points, horizon)
    assert forecast is not None
    assert forecast.value == pytest.approx(value, abs=1e-6)
    assert forecast.slope == pytest.approx(slope, rel=1e-6)
    assert forecast.level == pytest.approx(level, abs=1e-6)
    if math.isinf(t_stat):
        assert math.isinf(forecast.t_stat)
        assert (forecast.t_stat > 0) == (t_stat > 0)
    else:
        assert forecast.t_stat == pytest.approx(t_stat, rel=1e-6)


@pytest.mark.parametrize(
    ("points", "min_t"),
    [
        pytest.param(((0, 1), (1, 3), (2, 5)), 3.0, id="fewer-than-four-points"),
        pytest.param(((5, 1), (5, 2), (5, 3), (5, 4)), 3.0, id="all-at-one-time"),
        pytest.param(tuple((float(i), 42.0) for i in range(10)), 3.0, id="flat"),
        pytest.param(((0, 0), (1, 1), (2, 1), (3, 2)), 5.0, id="trend-under-min-t-stat"),
        pytest.param(
            tuple((i * 5.0, 100.0 + (3.0, -2.0, 1.0, -3.0, 2.0, -1.0)[i % 6]) for i in range(24)),
            3.0,
            id="constant-rate-with-noise",
        ),
        pytest.param(
            tuple((i * 5.0, 100.0 + (4.0 if i % 2 else -4.0)) for i in range(24)),
            3.0,
            id="alternating-noise",
        ),
        pytest.param(
            ((0, 100), (5, 97), (10, 104), (15, 99), (20, 101), (25, 96), (30, 103), (35, 100)),
            3.0,
            id="irregular-noise",
        ),
    ],
)
def test_linear_trend_gives_no_forecast_without_a_real_trend(points: Points, min_t: float) -> None:
    assert linear_trend(points, 60.0, min_t_stat=min_t) is None


def test_linear_trend_uses_the_last_point_as_now() -> None:
    points = ((0, 0), (1, 1), (2, 2), (3, 3))
    shifted = tuple((t + 100, y) for t, y in points)
    a, b = linear_trend(points, 10.0), linear_trend(shifted, 10.0)
    assert a is not None and b is not None
    assert (a.value, a.level, a.slope) == pytest.approx((b.value, b.level, b.slope))


@pytest.mark.parametrize(
    ("values", "steps", "expected"),
    [
        pytest.param([1.0], 1, None, id="too-short"),
        pytest.param([5.0, 5.0, 5.0, 5.0], 3, 5.0, id="flat-stays-flat"),
        pytest.param([0.0, 1.0, 2.0, 3.0], 2, 5.0, id="exact-line-extrapolated"),
    ],
)
def test_holt_golden(values: list[float], steps: int, expected: float | None) -> None:
    result = holt(values, steps)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@settings(deadline=None, max_examples=60)
@given(
    rates=st.lists(st.floats(0.0, 5_000.0), min_size=1, max_size=200),
    keep=st.integers(4, 40),
    step=st.sampled_from([1.0, 5.0, 15.0]),
    start=st.sampled_from([0.0, 1.7e9]),
)
def test_sliding_trend_sums_agree_with_a_full_refit(
    rates: list[float], keep: int, step: float, start: float
) -> None:
    state = ScalingState()
    for i, rate in enumerate(rates):
        state = append_rate(state, start + i * step, rate, keep)
    assert state.trend is not None
    full = TrendSums.of(state.rate_history)
    assert state.trend.n == full.n == len(state.rate_history)
    incremental = trend_from_sums(state.trend, state.rate_history[-1][0], 60.0)
    refit = linear_trend(state.rate_history, 60.0)
    assert (incremental is None) == (refit is None) or _borderline(state.rate_history)
    if incremental is not None and refit is not None:
        assert incremental.value == pytest.approx(refit.value, rel=1e-6, abs=1e-6)
        assert incremental.slope == pytest.approx(refit.slope, rel=1e-6, abs=1e-9)


def _borderline(points: tuple[tuple[float, float], ...]) -> bool:
    """True when the t statistic sits so close to the threshold that rounding may flip it."""
    fit = linear_trend(points, 60.0, min_t_stat=0.0)
    return fit is not None and abs(abs(fit.t_stat) - 3.0) < 1e-6

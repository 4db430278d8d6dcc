"""Streaming anomaly detectors for metric series (pure: no I/O, no clock).

Every detector is causal (the score after ``update(x)`` uses only the observations so far),
treats ``None``/NaN/inf as a missing point (score 0, no alarm, state untouched), and follows
:class:`autoops.core.detect.base.StreamingDetector`.

:class:`DefaultDetector` watches four views of the series, each a simple model with an error:

- level: the point against the median of the previous ``level_window`` points (spikes);
- seasonal: the point against the median of the same phase in the last ``seasons`` seasons,
  once an autocorrelation peak shows a season (a missing daily jump, a flattened day);
- shift: the median of the last ``shift_short`` points against the median of the
  ``shift_long`` points before them (level shifts smaller than past spikes);
- volatility: the mean absolute step over the last ``volatility_window`` points (a noisier
  regime).

Each error is scored by its ratio to the largest error of the same view over the trailing
``record_window`` points: an anomaly is a new extreme, by ``record_margin``, in some view. This
adapts to each series' scale, noise and tails with no per-series setting. The score is
``ratio / (ratio + record_margin)`` (0.5 exactly at the margin) and the alarm fires at 0.5, then
stays quiet for ``suppress`` points so that one incident raises one alarm.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

__all__ = [
    "DEFAULT_CONFIG",
    "AnomalyConfig",
    "DefaultDetector",
    "ErrorRecordScore",
    "RobustZScore",
    "SeasonalPeriod",
]


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Hyperparameters of the default detector (frozen once; see the README for how)."""

    level_window: int = 20
    """Points in the median that forecasts the next point (level model)."""
    record_window: int = 5000
    """Trailing points whose largest forecast error a new point must exceed."""
    record_margin: float = 1.05
    """How many times that largest error the new error must reach to alarm."""
    shift_short: int = 5
    """Points in the recent median compared with the baseline (level-shift model)."""
    shift_long: int = 256
    """Points before them whose median is the baseline (level-shift model)."""
    volatility_window: int = 30
    """Points in the mean absolute step (volatility model; 0 disables it)."""
    season_history: int = 4096
    """Points kept to estimate the season and forecast from past seasons."""
    season_refresh: int = 256
    """Points between two estimates of the season."""
    season_min_acf: float = 0.5
    """Autocorrelation at the season's lag needed to use the seasonal model."""
    seasons: int = 3
    """Past seasons whose median forecasts the next point (seasonal model)."""
    warmup: int = 64
    """Points seen before any alarm."""
    suppress: int = 50
    """Points after an alarm during which no new alarm is raised."""
    threshold: float = 0.5
    """Score at which the detector alarms (score = ratio / (ratio + margin))."""

    def as_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (for benchmark JSON)."""
        return asdict(self)


DEFAULT_CONFIG = AnomalyConfig()


def _is_missing(x: float | None) -> bool:
    """True for None, NaN and infinities."""
    return x is None or not math.isfinite(x)


class RobustZScore:
    """Robust z-score of each point against the median and IQR of the previous ``window``."""

    def __init__(self, window: int = 256, threshold: float = 6.0, min_points: int = 16) -> None:
        if window < 4:
            raise ValueError(f"window must be >= 4, got {window}")
        self.window = window
        self.threshold = threshold
        self.min_points = min_points
        self._reset()

    def _reset(self) -> None:
        self._fifo: deque[float] = deque()
        self._sorted: list[float] = []
        self._z = 0.0

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._reset()

    @property
    def z(self) -> float:
        """Signed robust z-score of the last observation (0 when missing or warming up)."""
        return self._z

    @property
    def score(self) -> float:
        """|z| / (|z| + threshold): 0.5 at the threshold."""
        a = abs(self._z)
        return a / (a + self.threshold)

    @property
    def alarm(self) -> bool:
        """True when |z| reached the threshold."""
        return abs(self._z) >= self.threshold

    def update(self, x: float | None) -> Self:
        """Score one observation, then add it to the window."""
        if x is None or _is_missing(x):
            self._z = 0.0
            return self
        n = len(self._sorted)
        if n >= self.min_points:
            med = _quantile(self._sorted, 0.5)
            iqr = _quantile(self._sorted, 0.75) - _quantile(self._sorted, 0.25)
            scale = max(iqr / 1.349, 1e-9 * max(1.0, abs(med)))
            self._z = (x - med) / scale
        else:
            self._z = 0.0
        self._fifo.append(x)
        bisect.insort(self._sorted, x)
        if len(self._fifo) > self.window:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        return self


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of a sorted, non-empty list."""
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class SeasonalPeriod:
    """Estimates the dominant season (in points) from the autocorrelation of recent history."""

    def __init__(self, min_lag: int = 8, min_acf: float = 0.5) -> None:
        self.min_lag = min_lag
        self.min_acf = min_acf

    def estimate(self, history: np.ndarray[Any, np.dtype[np.float64]]) -> int | None:
        """The first lag whose autocorrelation peak nears the highest one, or None below min_acf."""
        n = history.size
        max_lag = n // 3
        if max_lag <= self.min_lag + 2:
            return None
        x = history - history.mean()
        var = float(x @ x)
        if var <= 0.0:
            return None
        size = 1 << (2 * n - 1).bit_length()
        spec = np.fft.rfft(x, size)
        acf = np.fft.irfft(spec * np.conj(spec), size)[: max_lag + 1] / var
        # Unbiased: correct for the shrinking overlap at long lags.
        acf = acf * n / (n - np.arange(max_lag + 1))
        # A season's peak comes after the autocorrelation first crosses zero.
        negative = np.flatnonzero(acf[1 : max_lag + 1] < 0.0)
        if negative.size == 0:
            return None
        first = max(self.min_lag, int(negative[0]) + 1)
        if first >= max_lag:
            return None
        lags = np.arange(first, max_lag)
        inner = acf[first:max_lag]
        left = acf[first - 1 : max_lag - 1]
        right = acf[first + 1 : max_lag + 1]
        peaks = lags[(inner > left) & (inner >= right) & (inner >= self.min_acf)]
        if peaks.size == 0:
            return None
        # Multiples of the season peak almost as high: take the first near the best.
        best = float(acf[peaks].max())
        return int(peaks[acf[peaks] >= 0.9 * best][0])


class _SlidingMax:
    """Maximum of the last ``window`` pushed values (monotonic deque, O(1) amortised)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._t = 0
        self._q: deque[tuple[int, float]] = deque()

    def push(self, value: float) -> None:
        """Add a value, dropping those older than the window."""
        while self._q and self._q[-1][1] <= value:
            self._q.pop()
        self._q.append((self._t, value))
        self._t += 1
        while self._q[0][0] <= self._t - 1 - self.window:
            self._q.popleft()

    @property
    def count(self) -> int:
        """How many values were pushed (capped at the window)."""
        return min(self._t, self.window)

    @property
    def value(self) -> float:
        """The maximum, or 0 when empty."""
        return self._q[0][1] if self._q else 0.0


class ErrorRecordScore:
    """How far an error exceeds the largest error of a trailing window (a "record" ratio)."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._max = _SlidingMax(window)

    def ratio(self, error: float, floor: float) -> float:
        """|error| over the trailing max (at least ``floor``); then remember |error|."""
        a = abs(error)
        reference = max(self._max.value, floor)
        self._max.push(a)
        return a / reference if reference > 0 else 0.0

    @property
    def count(self) -> int:
        """Errors remembered."""
        return self._max.count


class DefaultDetector:
    """The frozen default: level and seasonal forecasts, scored by new extremes of their errors."""

    def __init__(self, config: AnomalyConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self._period_finder = SeasonalPeriod(min_acf=config.season_min_acf)
        self._reset()

    def _reset(self) -> None:
        c = self.config
        self._history = np.zeros(c.season_history)
        self._n = 0  # observed points so far
        self._recent: deque[float] = deque(maxlen=c.level_window)
        self._level = ErrorRecordScore(c.record_window)
        self._seasonal = ErrorRecordScore(c.record_window)
        self._shift = ErrorRecordScore(c.record_window)
        self._short: deque[float] = deque(maxlen=c.shift_short)
        self._steps: deque[float] = deque()
        self._step_sum = 0.0
        self._last: float | None = None
        self._volatility = ErrorRecordScore(c.record_window)
        self._long_fifo: deque[float] = deque()
        self._long_sorted: list[float] = []
        self._period: int | None = None
        self._since_alarm = c.suppress + 1
        self._score = 0.0
        self._alarm = False
        self._abs_sum = 0.0

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._reset()

    @property
    def score(self) -> float:
        """Anomaly score in [0, 1] of the last observation."""
        return self._score

    @property
    def alarm(self) -> bool:
        """True when the last observation raised an alarm."""
        return self._alarm

    @property
    def period(self) -> int | None:
        """The season in points currently used, or None."""
        return self._period

    def _past(self, lag: int) -> float:
        """The observation ``lag`` points back (1 = the previous one)."""
        return float(self._history[(self._n - lag) % self.config.season_history])

    def update(self, x: float | None) -> Self:
        """Consume one observation (None or NaN when the point is missing)."""
        c = self.config
        self._since_alarm += 1
        if x is None or _is_missing(x):
            self._score = 0.0
            self._alarm = False
            return self
        ratio = 0.0
        self._abs_sum += abs(x)
        floor = 1e-6 * (self._abs_sum / (self._n + 1) + 1e-9)
        if self._recent:
            forecast = _median(self._recent)
            ratio = self._level.ratio(x - forecast, floor)
        period = self._period
        if period is not None and self._n >= period * c.seasons:
            past = [self._past(period * k) for k in range(1, c.seasons + 1)]
            seasonal = self._seasonal.ratio(x - _median(past), floor)
            if self._seasonal.count >= c.warmup:
                ratio = max(ratio, seasonal)
        if len(self._short) == c.shift_short:
            old = self._short.popleft()
            self._long_fifo.append(old)
            bisect.insort(self._long_sorted, old)
            if len(self._long_fifo) > c.shift_long:
                gone = self._long_fifo.popleft()
                del self._long_sorted[bisect.bisect_left(self._long_sorted, gone)]
        self._short.append(x)
        if len(self._long_sorted) >= c.shift_short:
            shift = _median(self._short) - _quantile(self._long_sorted, 0.5)
            ratio = max(ratio, self._shift.ratio(shift, floor))
        if c.volatility_window > 0 and self._last is not None:
            step = abs(x - self._last)
            self._steps.append(step)
            self._step_sum += step
            if len(self._steps) > c.volatility_window:
                self._step_sum -= self._steps.popleft()
            if len(self._steps) == c.volatility_window:
                vol = self._volatility.ratio(self._step_sum / c.volatility_window, floor)
                ratio = max(ratio, vol)
        self._last = x
        self._history[self._n % c.season_history] = x
        self._n += 1
        self._recent.append(x)
        if self._n % c.season_refresh == 0:
            self._refresh_period()
        if self._n <= c.warmup or self._level.count < c.warmup:
            ratio = 0.0
        self._score = ratio / (ratio + c.record_margin) if ratio > 0 else 0.0
        self._alarm = self._score >= c.threshold and self._since_alarm > c.suppress
        if self._alarm:
            self._since_alarm = 0
        return self

    def _refresh_period(self) -> None:
        """Re-estimate the season from the history kept so far."""
        size = min(self._n, self.config.season_history)
        end = self._n % self.config.season_history
        if self._n >= self.config.season_history:
            history = np.concatenate((self._history[end:], self._history[:end]))
        else:
            history = self._history[:size]
        period = self._period_finder.estimate(history)
        self._period = period


def _median(values: deque[float] | list[float]) -> float:
    """Median of a small collection."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])

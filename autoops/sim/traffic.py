"""Traffic for replays: a seeded synthetic day, and loaders for real request and rate traces.

Every source implements :class:`autoops.sim.api.TrafficSource`: ``rate(t)`` (requests per
second, for the fluid model) and ``requests(start, end)`` (arrivals, for the per-request model).
Simulated time starts at 0; every source offers nothing outside ``[0, duration_s)``.

Sources whose traffic is a *rate* (the synthetic generator, the Alibaba QPS trace) draw
Poisson arrivals from it. Arrivals are generated block by block (blocks of ``BLOCK_S`` seconds
aligned on 0), each block from its own random stream seeded by ``(seed, block index)``, so the
requests of a window do not depend on how the caller slices time.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoops.sim.api import Request

__all__ = [
    "BLOCK_S",
    "AlibabaQpsTrace",
    "AzureRequestTrace",
    "SyntheticTraffic",
    "TraceError",
]

FloatArray = npt.NDArray[np.float64]

BLOCK_S = 60.0
"""Length of one block of Poisson arrivals, seconds (each block has its own seeded stream)."""
_STEP_S = 1.0
"""Inside a block, the rate is taken as piecewise linear between points this far apart."""
_CACHE_BLOCKS = 8


class TraceError(ValueError):
    """A trace file that cannot be read: missing, wrong header, or a bad value (file, line)."""


# --------------------------------------------------------------------------- Poisson arrivals


class _PoissonArrivals:
    """Seeded, slicing-independent Poisson arrivals from a rate function (a mixin)."""

    _seed: int
    _duration: float
    _salt: int = 0

    def _rate_array(self, ts: FloatArray) -> FloatArray:
        """The rate at each time of ``ts`` (vectorised ``rate``); 0 outside the source."""
        raise NotImplementedError

    def _init_arrivals(self, seed: int, duration_s: float, salt: int) -> None:
        self._seed = int(seed)
        self._duration = float(duration_s)
        self._salt = salt
        self._blocks: OrderedDict[int, FloatArray] = OrderedDict()

    def _block(self, index: int) -> FloatArray:
        """Arrival times of block ``index`` (sorted), generated once and cached."""
        cached = self._blocks.get(index)
        if cached is not None:
            self._blocks.move_to_end(index)
            return cached
        times = self._generate_block(index)
        self._blocks[index] = times
        if len(self._blocks) > _CACHE_BLOCKS:
            self._blocks.popitem(last=False)
        return times

    def _generate_block(self, index: int) -> FloatArray:
        """Inhomogeneous Poisson arrivals in one block, by inverting the integrated rate.

        The rate is sampled every ``_STEP_S`` seconds and taken as linear in between (exact for
        a piecewise-linear rate whose knots fall on that grid). The count is Poisson with mean
        the integral over the block; each arrival is a uniform draw on the integrated rate,
        mapped back to time by solving the quadratic of its linear segment.
        """
        lo = index * BLOCK_S
        hi = min(lo + BLOCK_S, self._duration)
        if hi <= lo:
            return np.empty(0)
        steps = max(1, math.ceil((hi - lo) / _STEP_S - 1e-9))
        knots = np.linspace(lo, hi, steps + 1)
        # the rate at the upper edge of the block is its left limit (still inside the source)
        rates = self._rate_array(np.minimum(knots, np.nextafter(hi, lo)))
        rates = np.maximum(rates, 0.0)
        widths = np.diff(knots)
        areas = 0.5 * (rates[:-1] + rates[1:]) * widths
        cum = np.concatenate(([0.0], np.cumsum(areas)))
        total = float(cum[-1])
        rng = np.random.default_rng(np.random.SeedSequence([self._seed, self._salt, index]))
        count = int(rng.poisson(total)) if total > 0 else 0
        if count == 0:
            return np.empty(0)
        u = np.sort(rng.uniform(0.0, total, size=count))
        seg = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, steps - 1)
        r0 = rates[seg]
        slope = (rates[seg + 1] - r0) / widths[seg]
        rest = u - cum[seg]
        disc = np.sqrt(np.maximum(r0 * r0 + 2.0 * slope * rest, 0.0))
        denom = r0 + disc
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.where(denom > 0, 2.0 * rest / denom, 0.0)
        times = np.clip(knots[seg] + offset, lo, np.nextafter(hi, lo))
        return np.sort(times)

    def requests(self, start: float, end: float) -> Iterator[Request]:
        """Requests arriving in [start, end), in time order (seeded Poisson, sizes 1.0)."""
        start = max(start, 0.0)
        end = min(end, self._duration)
        if end <= start:
            return
        first = math.floor(start / BLOCK_S)
        last = math.floor(end / BLOCK_S)
        for index in range(first, last + 1):
            times = self._block(index)
            if times.size == 0:
                continue
            i = int(np.searchsorted(times, start, side="left"))
            j = int(np.searchsorted(times, end, side="left"))
            for t in times[i:j].tolist():
                yield Request(time=t)


# --------------------------------------------------------------------------- synthetic


class SyntheticTraffic(_PoissonArrivals):
    """A seeded synthetic load: a diurnal cycle, random bursts and a slow drift.

    ``rate(t) = scale * diurnal(t) * drift(t) * burst(t)``, where

    * ``diurnal(t) = base_share + (1 - base_share) * (1 - cos(2π (t - 4 h) / 24 h)) / 2``:
      sim time 0 is midnight, the trough (``base_share`` of the peak) is at 04:00 and the
      peak at 16:00 each day;
    * ``drift(t) = (1 + drift_per_day) ** (t / 1 day)``: slow compound growth (or decay, when
      negative);
    * ``burst(t) = 1 + amplitude`` inside a burst (linear ramps of up to 60 s at each edge), 1
      outside. Bursts start as a Poisson process of ``burst_rate_per_hour`` and never overlap;
      each lasts 1 to 10 minutes and adds 50% to 150% to the rate (uniform draws);
    * ``scale`` is chosen so that the highest rate over the run (every whole second and every
      burst edge) is ``peak_rps``.

    Everything is drawn from ``seed``: the same seed gives the same rates and requests.
    """

    def __init__(
        self,
        duration_s: float,
        peak_rps: float,
        seed: int,
        base_share: float = 0.3,
        burst_rate_per_hour: float = 0.5,
        drift_per_day: float = 0.05,
    ) -> None:
        if duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        if peak_rps <= 0:
            raise ValueError(f"peak_rps must be positive, got {peak_rps}")
        if not 0.0 <= base_share <= 1.0:
            raise ValueError(f"base_share must be in [0, 1], got {base_share}")
        if burst_rate_per_hour < 0:
            raise ValueError(f"burst_rate_per_hour must be >= 0, got {burst_rate_per_hour}")
        if drift_per_day <= -1.0:
            raise ValueError(f"drift_per_day must be > -1, got {drift_per_day}")
        self._init_arrivals(seed, duration_s, salt=1)
        self.peak_rps = float(peak_rps)
        self.base_share = float(base_share)
        self.burst_rate_per_hour = float(burst_rate_per_hour)
        self.drift_per_day = float(drift_per_day)
        self._log_drift = math.log1p(drift_per_day) / 86_400.0
        starts: list[float] = []
        ends: list[float] = []
        ramps: list[float] = []
        amps: list[float] = []
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
        if burst_rate_per_hour > 0:
            t = 0.0
            mean_gap = 3600.0 / burst_rate_per_hour
            while True:
                t += float(rng.exponential(mean_gap))
                if t >= duration_s:
                    break
                length = float(rng.uniform(60.0, 600.0))
                starts.append(t)
                ends.append(t + length)
                ramps.append(min(60.0, length / 4.0))
                amps.append(float(rng.uniform(0.5, 1.5)))
                t += length
        self._starts = starts
        self._ends = ends
        self._ramps = ramps
        self._amps = amps
        self._scale = 1.0
        grid = np.concatenate(
            (np.arange(0.0, duration_s, 1.0), np.array(starts) + np.array(ramps), np.array(ends))
        )
        grid = grid[(grid >= 0) & (grid < duration_s)]
        self._scale = self.peak_rps / float(np.max(self._rate_array(grid)))

    @property
    def duration_s(self) -> float:
        """How long the source lasts, seconds."""
        return self._duration

    @property
    def bursts(self) -> tuple[tuple[float, float, float], ...]:
        """Every burst as ``(start_s, end_s, amplitude)`` (rate multiplied by 1 + amplitude)."""
        return tuple(zip(self._starts, self._ends, self._amps, strict=True))

    def _shape(self, t: float) -> float:
        diurnal = self.base_share + (1.0 - self.base_share) * 0.5 * (
            1.0 - math.cos(2.0 * math.pi * (t - 4 * 3600.0) / 86_400.0)
        )
        value = diurnal * math.exp(self._log_drift * t)
        i = bisect.bisect_right(self._starts, t) - 1
        if i >= 0 and t < self._ends[i]:
            value *= 1.0 + self._amps[i] * self._ramp(t, i)
        return value

    def _ramp(self, t: float, i: int) -> float:
        ramp = self._ramps[i]
        return min(1.0, (t - self._starts[i]) / ramp, (self._ends[i] - t) / ramp)

    def rate(self, t: float) -> float:
        """Requests per second at ``t`` (0 outside [0, duration_s)); O(log bursts)."""
        if not 0.0 <= t < self._duration:
            return 0.0
        return self._scale * self._shape(t)

    def rates(self, ts: Sequence[float] | FloatArray) -> FloatArray:
        """``rate`` at many times at once."""
        return self._rate_array(np.asarray(ts, dtype=np.float64))

    def _rate_array(self, ts: FloatArray) -> FloatArray:
        diurnal = self.base_share + (1.0 - self.base_share) * 0.5 * (
            1.0 - np.cos(2.0 * np.pi * (ts - 4 * 3600.0) / 86_400.0)
        )
        value = diurnal * np.exp(self._log_drift * ts)
        if self._starts:
            starts = np.asarray(self._starts)
            ends = np.asarray(self._ends)
            ramps = np.asarray(self._ramps)
            amps = np.asarray(self._amps)
            i = np.searchsorted(starts, ts, side="right") - 1
            ic = np.clip(i, 0, None)
            inside = (i >= 0) & (ts < ends[ic])
            ramp = np.minimum(
                1.0, np.minimum((ts - starts[ic]) / ramps[ic], (ends[ic] - ts) / ramps[ic])
            )
            value = value * np.where(inside, 1.0 + amps[ic] * np.clip(ramp, 0.0, 1.0), 1.0)
        out: FloatArray = self._scale * value
        return np.where((ts >= 0) & (ts < self._duration), out, 0.0)


# --------------------------------------------------------------------------- file helpers


def _open_rows(path: Path, required: Sequence[str]) -> tuple[list[str], Iterator[list[str]]]:
    """The header and the remaining rows of a CSV file; TraceError naming what is wrong."""
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    handle = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(handle)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        handle.close()
        raise TraceError(f"{path}: empty file (expected header {','.join(required)})") from None
    missing = [c for c in required if c not in header]
    if missing:
        handle.close()
        raise TraceError(
            f"{path}: line 1: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"header is {','.join(header)!r}, expected {','.join(required)!r}"
        )

    def rows() -> Iterator[list[str]]:
        with handle:
            yield from reader

    return header, rows()


def _number(path: Path, line: int, column: str, text: str) -> float:
    """``text`` as a finite float, or a TraceError naming file, line and column."""
    try:
        value = float(text)
    except ValueError:
        raise TraceError(
            f"{path}: line {line}: column {column!r}: not a number: {text!r}"
        ) from None
    if not math.isfinite(value):
        raise TraceError(f"{path}: line {line}: column {column!r}: not finite: {text!r}")
    return value


def _cell(path: Path, line: int, row: list[str], index: int, column: str) -> str:
    if index >= len(row):
        raise TraceError(f"{path}: line {line}: column {column!r}: missing value")
    return row[index].strip()


# --------------------------------------------------------------------------- Azure


class AzureRequestTrace:
    """A request trace in the Azure LLM format (``TIMESTAMP,ContextTokens,GeneratedTokens``).

    * Arrival times are seconds since the first request (timestamps such as
      ``2023-11-16 18:15:46.6805900``; rows are sorted by time when they are not).
    * ``size`` = (ContextTokens + GeneratedTokens) / the mean of that sum over the trace, so
      sizes average 1.
    * ``duration_s`` ends at the first whole trace second after the last request (so
      ``requests(0, duration_s)`` returns every request), divided by the time scale below.
    * ``rate(t)`` = requests in a sliding window of ``window_s`` *trace* seconds centred on
      ``t``, divided by that window's length in simulated time; near either end the window is
      shifted (not shortened) to stay inside ``[0, duration_s)``.
    * ``peak_rps``: when given, the time axis is compressed (or stretched) by one factor
      ``k = peak_rps / native peak``, where the native peak is the largest ``rate`` of the
      unscaled trace; every arrival time is divided by ``k``, so the trace's shape is kept and
      the largest ``rate`` becomes exactly ``peak_rps``.
    """

    COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

    def __init__(
        self,
        times: Sequence[float] | FloatArray,
        sizes: Sequence[float] | FloatArray,
        duration_s: float,
        window_s: float,
        source: str = "",
    ) -> None:
        self._times: list[float] = [float(t) for t in times]
        self._sizes: list[float] = [float(s) for s in sizes]
        if len(self._times) != len(self._sizes):
            raise ValueError("times and sizes differ in length")
        self._duration = float(duration_s)
        self._window = float(window_s)
        self.source = source
        self.peak_rps = self._peak()

    @classmethod
    def load(
        cls, path: str | Path, peak_rps: float | None = None, window_s: float = 10.0
    ) -> AzureRequestTrace:
        """Read the trace at ``path``; optionally rescale time so the peak rate is ``peak_rps``."""
        path = Path(path)
        header, rows = _open_rows(path, cls.COLUMNS)
        it, ic, ig = (header.index(c) for c in cls.COLUMNS)
        stamps: list[float] = []
        tokens: list[float] = []
        epoch = datetime(1970, 1, 1)
        for line, row in enumerate(rows, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            text = _cell(path, line, row, it, "TIMESTAMP")
            try:
                stamp = datetime.fromisoformat(text)
            except ValueError:
                raise TraceError(
                    f"{path}: line {line}: column 'TIMESTAMP': not a timestamp: {text!r}"
                ) from None
            if stamp.tzinfo is not None:
                stamp = stamp.astimezone(UTC).replace(tzinfo=None)
            ctx = _number(path, line, "ContextTokens", _cell(path, line, row, ic, "ContextTokens"))
            gen = _number(
                path, line, "GeneratedTokens", _cell(path, line, row, ig, "GeneratedTokens")
            )
            if ctx < 0 or gen < 0:
                raise TraceError(f"{path}: line {line}: negative token count")
            stamps.append((stamp - epoch).total_seconds())
            tokens.append(ctx + gen)
        if not stamps:
            raise TraceError(f"{path}: no requests")
        order = np.argsort(np.asarray(stamps), kind="stable")
        t = np.asarray(stamps)[order]
        t = t - t[0]
        tok = np.asarray(tokens)[order]
        mean = float(tok.mean())
        sizes = tok / mean if mean > 0 else np.ones_like(tok)
        duration = math.floor(float(t[-1])) + 1.0
        window = min(float(window_s), duration)
        trace = cls(t, sizes, duration, window, source=str(path))
        if peak_rps is not None:
            trace = trace.scaled(peak_rps)
        return trace

    def scaled(self, peak_rps: float) -> AzureRequestTrace:
        """The same trace with its time axis scaled so that the peak ``rate`` is ``peak_rps``."""
        if peak_rps <= 0:
            raise ValueError(f"peak_rps must be positive, got {peak_rps}")
        k = peak_rps / self.peak_rps
        trace = AzureRequestTrace(
            [t / k for t in self._times],
            self._sizes,
            self._duration / k,
            self._window / k,
            source=self.source,
        )
        trace.peak_rps = float(peak_rps)
        return trace

    @property
    def duration_s(self) -> float:
        """How long the trace lasts, seconds of simulated time."""
        return self._duration

    @property
    def window_s(self) -> float:
        """The rate window, seconds of simulated time."""
        return self._window

    def __len__(self) -> int:
        return len(self._times)

    def _peak(self) -> float:
        """The largest ``rate`` over the trace (every window starts at a request, or is shifted)."""
        if not self._times:
            return 0.0
        t = np.asarray(self._times)
        starts = np.minimum(t, max(self._duration - self._window, 0.0))
        counts = np.searchsorted(t, starts + self._window, side="left") - np.searchsorted(
            t, starts, side="left"
        )
        return float(counts.max()) / self._window

    def rate(self, t: float) -> float:
        """Requests per second in the window centred on ``t`` (0 outside the trace); O(log n)."""
        if not 0.0 <= t < self._duration:
            return 0.0
        lo = min(max(t - self._window / 2.0, 0.0), max(self._duration - self._window, 0.0))
        hi = lo + self._window
        count = bisect.bisect_left(self._times, hi) - bisect.bisect_left(self._times, lo)
        return count / self._window

    def rates(self, ts: Sequence[float] | FloatArray) -> FloatArray:
        """``rate`` at many times at once."""
        t = np.asarray(ts, dtype=np.float64)
        arrivals = np.asarray(self._times)
        lo = np.clip(t - self._window / 2.0, 0.0, max(self._duration - self._window, 0.0))
        counts = np.searchsorted(arrivals, lo + self._window, side="left") - np.searchsorted(
            arrivals, lo, side="left"
        )
        out: FloatArray = np.where((t >= 0) & (t < self._duration), counts / self._window, 0.0)
        return out

    def requests(self, start: float, end: float) -> Iterator[Request]:
        """The trace's requests arriving in [start, end), in time order."""
        i = bisect.bisect_left(self._times, start)
        j = bisect.bisect_left(self._times, end)
        for k in range(i, j):
            yield Request(time=self._times[k], size=self._sizes[k])


# --------------------------------------------------------------------------- Alibaba


class AlibabaQpsTrace(_PoissonArrivals):
    """A rate trace in the Alibaba GenAI QPS format (``timestamp_anon,value,container_ip,...``).

    What the loader does, exactly:

    1. Each row is one container's QPS (``value``, requests per second) at ``timestamp_anon``
       (seconds; anonymised, so only differences matter). In the shared trace the samples lie
       on a 57 s grid and only non-zero values are listed, so a missing container counts as 0.
       ``container_ip`` and ``request_type`` are not used: every row counts.
    2. Time 0 is the first sample. Time is cut into windows of ``window_s`` seconds from 0.
    3. The system QPS of a window is the **sum** of the values of its rows divided by the
       number of distinct sampling instants in it: the summed per-container QPS averaged over
       the instants. With one instant per window this is the plain per-window sum; it also
       keeps a window that happens to catch two instants (a 57 s grid in 60 s windows) from
       counting its containers twice. A window without any row has QPS 0.
    4. ``rate(t)`` interpolates linearly between window centres, holds the first and last
       window's values before the first and after the last centre, and is 0 outside
       ``[0, duration_s)``, where ``duration_s`` = number of windows * ``window_s``.
    5. ``peak_rps``: when given, every window value is multiplied by ``peak_rps / max window
       value``, so the peak of ``rate`` is exactly ``peak_rps``; the time axis is unchanged.
    6. ``requests(start, end)``: Poisson arrivals from ``rate`` (sizes 1.0), seeded by
       ``seed`` and independent of how time is sliced.
    """

    COLUMNS = ("timestamp_anon", "value", "container_ip", "request_type")

    def __init__(
        self,
        window_values: Sequence[float] | FloatArray,
        window_s: float,
        seed: int = 0,
        source: str = "",
    ) -> None:
        values = np.asarray(window_values, dtype=np.float64)
        if values.size == 0:
            raise ValueError("no windows")
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = float(window_s)
        self.window_values = values
        self.source = source
        self._init_arrivals(seed, values.size * self.window_s, salt=2)
        self._centres: list[float] = ((np.arange(values.size) + 0.5) * self.window_s).tolist()
        self._values: list[float] = values.tolist()
        self._centres_arr = np.asarray(self._centres)

    @classmethod
    def load(
        cls,
        path: str | Path,
        peak_rps: float | None = None,
        window_s: float = 60.0,
        seed: int = 0,
    ) -> AlibabaQpsTrace:
        """Read the trace at ``path``: per-window system QPS, optionally scaled to ``peak_rps``."""
        path = Path(path)
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        header, rows = _open_rows(path, cls.COLUMNS[:2])
        its, iv = header.index("timestamp_anon"), header.index("value")
        stamps: list[float] = []
        values: list[float] = []
        for line, row in enumerate(rows, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            ts = _number(
                path, line, "timestamp_anon", _cell(path, line, row, its, "timestamp_anon")
            )
            value = _number(path, line, "value", _cell(path, line, row, iv, "value"))
            if value < 0:
                raise TraceError(f"{path}: line {line}: column 'value': negative QPS {value}")
            stamps.append(ts)
            values.append(value)
        if not stamps:
            raise TraceError(f"{path}: no samples")
        t = np.asarray(stamps)
        t = t - t.min()
        v = np.asarray(values)
        index = np.floor(t / window_s).astype(np.int64)
        n = int(index.max()) + 1
        sums = np.bincount(index, weights=v, minlength=n)
        instants = np.unique(t)
        per_window = np.bincount(np.floor(instants / window_s).astype(np.int64), minlength=n)
        qps = np.where(per_window > 0, sums / np.maximum(per_window, 1), 0.0)
        if peak_rps is not None:
            if peak_rps <= 0:
                raise ValueError(f"peak_rps must be positive, got {peak_rps}")
            peak = float(qps.max())
            if peak <= 0:
                raise TraceError(f"{path}: every value is 0; cannot scale to a peak")
            qps = qps * (peak_rps / peak)
        return cls(qps, window_s, seed=seed, source=str(path))

    @property
    def duration_s(self) -> float:
        """How long the trace lasts, seconds."""
        return self._duration

    @property
    def peak_rps(self) -> float:
        """The highest window rate (the peak of ``rate``)."""
        return float(self.window_values.max())

    def rate(self, t: float) -> float:
        """Interpolated system QPS at ``t`` (0 outside [0, duration_s)); O(log n)."""
        if not 0.0 <= t < self._duration:
            return 0.0
        c = self._centres
        v = self._values
        i = bisect.bisect_right(c, t)
        if i == 0:
            return v[0]
        if i == len(c):
            return v[-1]
        frac = (t - c[i - 1]) / (c[i] - c[i - 1])
        return v[i - 1] + frac * (v[i] - v[i - 1])

    def rates(self, ts: Sequence[float] | FloatArray) -> FloatArray:
        """``rate`` at many times at once."""
        return self._rate_array(np.asarray(ts, dtype=np.float64))

    def _rate_array(self, ts: FloatArray) -> FloatArray:
        out = np.interp(ts, self._centres_arr, self.window_values)
        result: FloatArray = np.where((ts >= 0) & (ts < self._duration), out, 0.0)
        return result

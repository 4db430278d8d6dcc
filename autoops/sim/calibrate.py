"""Calibration: fit the simulator to a live recording, and check its prediction against it.

``fit`` reads the passes of ``autoops run --record`` and estimates:

- the **service time** of one request. Per pass, the stable version's mean time in the system
  by Little's law (``ongoing_requests / request_rate``) is turned into a service time by
  inverting the simulator's own queueing model (``queueing.pool_load``) at that pass's rate and
  healthy replicas (the applied target where the count is missing); the estimate is the
  median over every pass with enough traffic. Outage passes, missing or non-finite values,
  passes under ``min_rps`` and passes where the model would be saturated (it cannot tell the
  service time there) are left out. A live Serve version is its own deployment, so the
  stable version's rows are taken with their own rate and replicas. A cross-check from
  p50 latency assumes what the simulator assumes, an exponential time in the system
  (p50 = ln 2 x mean); a live histogram need not follow it.
- the **cold start**: from each applied ``SetReplicas`` that raised a region's replicas, to the
  first later pass whose metrics show that many healthy replicas of the stable version there.
  That is the time until the *metrics* show the replicas ready (Serve's start-up plus the
  scrape and query delay), known to within half a pass interval; a scale-up superseded, not
  applied, or still short when the recording ends is counted as censored and not used.
- how well the queueing model with those parameters reproduces each pass's recorded p99 of
  the stable version (per-pass error).

``compare`` replays the recording through the fluid simulator with those parameters and the
same ``decide(ctx)`` the live loop runs, then sets the prediction beside the recording: p99
(median and worst) and the time from the first pass with failing canary metrics to the
rollback. What the simulator is given, and what is inferred rather than known:

- offered load: the recorded request rate summed over the deployed versions (a Prometheus
  rate over the analysis window, so smoothed and late), linear between passes;
- the world's start: the recorded replicas, all in the policy's first allowed region with
  every request on the stable version (the engine's only start); a note says when the
  recording started otherwise;
- faults: each non-stable version's excess over the stable version in the same pass (error
  ratio, p99, accuracy) becomes an injected fault for that pass's interval, held after the
  version's last observation; before its first observation it behaves as the stable one.
  The stable version keeps its median recorded error ratio and accuracy;
- metrics outages and region signals (carbon, price, health) as recorded; the detectors'
  findings, operator approvals and pause as recorded at the latest pass at or before each tick;
- the controller starts from the recorded state of the first pass; the simulated metrics
  have no delay and no noise (the recorded rates already carry both, and the fitted cold start
  already includes the metrics' delay).

A pass "fails" when ``core.canary.analyse`` with the given policy judges the canary (the
rolled-back version) FAIL or CRITICAL on that pass's snapshot alone; the controller then still
needs its failed-check limit, which is what the time to rollback measures.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autoops.contract import VersionFaults
from autoops.core.aggregate import aggregate_version, degraded_regions, rows_by_version, valid
from autoops.core.canary import Check, analyse
from autoops.core.decide import decide
from autoops.core.placement import signal_map
from autoops.core.state import DecisionContext
from autoops.model import (
    Decision,
    Finding,
    RegionSignals,
    Rollback,
    SetReplicas,
    Snapshot,
    VersionMetrics,
)
from autoops.policy.schema import Policy
from autoops.regions.loader import load_catalogue
from autoops.regions.model import RegionCatalogue
from autoops.sim.api import Request
from autoops.sim.engine import (
    MetricsOutage,
    ScheduledFault,
    SimConfig,
    VersionBehaviour,
    simulate,
)
from autoops.sim.queueing import MAX_UTILISATION, pool_load
from autoops.sim.replay import RecordedPass

DEFAULT_SLOTS = 4
"""Requests one replica serves at once, unless told (the simulator's default)."""
MIN_RPS = 1.0
"""A pass's stable version needs at least this many requests per second to count."""
LN2 = math.log(2.0)
_FAILING = (Check.FAIL, Check.CRITICAL)


class CalibrationError(ValueError):
    """A recording that cannot be calibrated against; the message says why."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Estimate:
    """A fitted parameter: its value (None when nothing supports it) and what it rests on."""

    value: float | None
    points: int
    method: str
    spread: float | None = None
    """Interquartile range of the points (None under two points)."""

    def to_json(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "value": self.value,
            "points": self.points,
            "method": self.method,
            "spread": self.spread,
        }


@dataclass(frozen=True, slots=True)
class ColdStart:
    """One observed scale-up: when it was decided and how long until the replicas showed."""

    region: str
    decided_at: float
    """Recorded time of the pass that decided it."""
    from_replicas: int
    to_replicas: int
    seconds: float
    """Midpoint of the interval in which the replicas became healthy."""
    resolution_s: float
    """Half the width of that interval: the estimate is within this of the truth."""

    def to_json(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "region": self.region,
            "decided_at": self.decided_at,
            "from_replicas": self.from_replicas,
            "to_replicas": self.to_replicas,
            "seconds": self.seconds,
            "resolution_s": self.resolution_s,
        }


@dataclass(frozen=True, slots=True)
class P99Error:
    """The queueing model's p99 beside the recorded one, for one pass and region."""

    time: float
    region: str
    version: str
    recorded_ms: float
    predicted_ms: float

    @property
    def relative(self) -> float:
        """predicted / recorded - 1 (negative: the model is too optimistic)."""
        return self.predicted_ms / self.recorded_ms - 1.0

    def to_json(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "time": self.time,
            "region": self.region,
            "version": self.version,
            "recorded_ms": self.recorded_ms,
            "predicted_ms": self.predicted_ms,
            "relative": self.relative,
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    """The simulator's parameters as fitted to a recording, and how well they fit."""

    passes: int
    outage_passes: int
    replica_slots: int
    service_s: Estimate
    service_s_p50: Estimate
    """Cross-check from p50 latency (assumes the simulator's exponential time in the system)."""
    cold_start_s: Estimate
    cold_starts: tuple[ColdStart, ...]
    censored_scale_ups: int
    """Scale-ups with no readiness seen (superseded, not applied, or the recording ended)."""
    p99: tuple[P99Error, ...]

    def p99_fit(self) -> dict[str, float | int | None]:
        """Median and worst absolute relative p99 error, and the median signed one (bias)."""
        rel = [e.relative for e in self.p99]
        if not rel:
            return {"points": 0, "median_abs": None, "worst_abs": None, "bias": None}
        return {
            "points": len(rel),
            "median_abs": statistics.median(abs(r) for r in rel),
            "worst_abs": max(abs(r) for r in rel),
            "bias": statistics.median(rel),
        }

    def to_json(self) -> dict[str, Any]:
        """JSON data for ``--json``."""
        return {
            "passes": self.passes,
            "outage_passes": self.outage_passes,
            "replica_slots": self.replica_slots,
            "service_s": self.service_s.to_json(),
            "service_s_p50": self.service_s_p50.to_json(),
            "cold_start_s": self.cold_start_s.to_json(),
            "cold_starts": [c.to_json() for c in self.cold_starts],
            "censored_scale_ups": self.censored_scale_ups,
            "p99_fit": self.p99_fit(),
            "p99": [e.to_json() for e in self.p99],
        }


# --------------------------------------------------------------------------- fitting


def service_from_mean(mean_s: float, rate_rps: float, replicas: int, slots: int) -> float | None:
    """The service time at which the queueing model's mean time in the system is ``mean_s``.

    None where there is no answer the model can vouch for: a bad input, or a pool that
    would be saturated (past ``MAX_UTILISATION`` the model drops the excess instead).
    """
    if not (0.0 < mean_s < math.inf) or replicas < 1 or slots < 1 or not valid(rate_rps):
        return None
    lo, hi = 0.0, mean_s  # mean(s) >= s, and mean(s) rises with s
    for _ in range(80):
        mid = (lo + hi) / 2
        if pool_load(rate_rps, replicas, mid, slots).mean_s < mean_s:
            lo = mid
        else:
            hi = mid
    service = (lo + hi) / 2
    if rate_rps * service / (replicas * slots) >= MAX_UTILISATION:
        return None
    return service


def stable_version(recorded: RecordedPass) -> str | None:
    """The version the live controller held stable at that pass (else the most-served one)."""
    if recorded.state.rollout.stable_version:
        return recorded.state.rollout.stable_version
    traffic = recorded.snapshot.applied.traffic
    return max(traffic, key=lambda v: (traffic[v], v)) if traffic else None


def _stable_rows(recorded: RecordedPass, min_rps: float) -> Iterator[VersionMetrics]:
    """The stable version's rows with enough traffic and at least one replica.

    A row without a healthy-replica count takes the region's applied target instead.
    """
    if recorded.snapshot.metrics_outage:
        return
    stable = stable_version(recorded)
    targets = recorded.snapshot.applied.replicas
    for row in recorded.snapshot.metrics:
        rate, replicas = row.request_rate, row.healthy_replicas
        if row.version != stable or rate is None or not valid(rate) or rate < min_rps:
            continue
        if replicas is None:
            replicas = targets.get(row.region)
            row = replace(row, healthy_replicas=replicas)
        if replicas is None or replicas < 1:
            continue
        yield row


def _estimate(points: Sequence[float], method: str) -> Estimate:
    if not points:
        return Estimate(None, 0, method)
    spread = None
    if len(points) >= 2:
        q1, _, q3 = statistics.quantiles(points, n=4)
        spread = q3 - q1
    return Estimate(statistics.median(points), len(points), method, spread)


def _service_points(
    passes: Sequence[RecordedPass], slots: int, min_rps: float
) -> tuple[list[float], list[float]]:
    """Service times by Little's law and by p50, one per usable (pass, region) of stable."""
    little: list[float] = []
    median: list[float] = []
    for recorded in passes:
        for row in _stable_rows(recorded, min_rps):
            rate = row.request_rate or 0.0
            replicas = row.healthy_replicas or 0
            ongoing, p50 = row.ongoing_requests, row.latency_p50_ms
            if ongoing is not None and valid(ongoing) and ongoing > 0:
                s = service_from_mean(ongoing / rate, rate, replicas, slots)
                if s is not None:
                    little.append(s)
            if p50 is not None and valid(p50) and p50 > 0:
                s = service_from_mean(p50 / 1000 / LN2, rate, replicas, slots)
                if s is not None:
                    median.append(s)
    return little, median


def _healthy(recorded: RecordedPass, region: str) -> int | None:
    """Healthy replicas of the stable version in ``region``, None when the pass cannot say."""
    if recorded.snapshot.metrics_outage:
        return None
    stable = stable_version(recorded)
    counts = [
        row.healthy_replicas
        for row in recorded.snapshot.metrics
        if row.region == region and row.version == stable and row.healthy_replicas is not None
    ]
    return max(counts) if counts else None


def _retargets(recorded: RecordedPass, region: str, target: int) -> bool:
    """Whether the pass applied another replica target for ``region``."""
    if recorded.decision.dry_run:
        return False
    return any(
        isinstance(a, SetReplicas) and a.replicas.get(region, 0) != target
        for a in recorded.decision.mutating
    )


def _follow(
    passes: Sequence[RecordedPass], index: int, region: str, target: int, before: int
) -> ColdStart | None:
    """The scale-up decided at ``passes[index]``, followed until the replicas show healthy.

    None when it is not seen through: never shown applied, retargeted first, or the
    recording ends.
    """
    decided = passes[index].now
    last_short = decided
    applied = False
    for recorded in passes[index + 1 :]:
        if recorded.snapshot.applied.replicas.get(region, 0) == target:
            applied = True
        elif applied:
            return None  # changed by something else before the replicas showed
        healthy = _healthy(recorded, region)
        if healthy is not None:
            if healthy >= target and applied:
                low, high = last_short - decided, recorded.now - decided
                return ColdStart(
                    region, decided, before, target, (low + high) / 2, (high - low) / 2
                )
            last_short = recorded.now
        if _retargets(recorded, region, target):
            return None
    return None


def _cold_starts(passes: Sequence[RecordedPass]) -> tuple[list[ColdStart], int]:
    """Every applied scale-up that was seen through, and how many were not."""
    seen: list[ColdStart] = []
    censored = 0
    for index, recorded in enumerate(passes):
        if recorded.decision.dry_run:
            continue
        before = recorded.snapshot.applied.replicas
        for action in recorded.decision.mutating:
            if not isinstance(action, SetReplicas):
                continue
            for region, target in sorted(action.replicas.items()):
                if target <= before.get(region, 0):
                    continue
                episode = _follow(passes, index, region, target, before.get(region, 0))
                if episode is None:
                    censored += 1
                else:
                    seen.append(episode)
    return seen, censored


def _p99_errors(
    passes: Sequence[RecordedPass], service_s: float, slots: int, min_rps: float
) -> list[P99Error]:
    """The model's p99 at each usable pass's rate and replicas beside the recorded p99."""
    out: list[P99Error] = []
    for recorded in passes:
        for row in _stable_rows(recorded, min_rps):
            p99 = row.latency_p99_ms
            if p99 is None or not valid(p99) or p99 <= 0:
                continue
            pool = pool_load(row.request_rate or 0.0, row.healthy_replicas or 0, service_s, slots)
            if not math.isfinite(pool.p99_s):
                continue
            out.append(P99Error(recorded.now, row.region, row.version, p99, pool.p99_s * 1000))
    return out


def fit(
    passes: Sequence[RecordedPass], replica_slots: int = DEFAULT_SLOTS, min_rps: float = MIN_RPS
) -> Calibration:
    """Fit the simulator's service time and cold start to a recording (see the module doc)."""
    if not passes:
        raise CalibrationError("the recording holds no pass")
    if replica_slots < 1:
        raise CalibrationError(f"replica slots must be at least 1, got {replica_slots}")
    little, median = _service_points(passes, replica_slots, min_rps)
    service = _estimate(little, "littles_law")
    if service.value is None:
        service = replace(_estimate(median, "p50"), method="p50 (no ongoing_requests)")
    episodes, censored = _cold_starts(passes)
    cold = _estimate([e.seconds for e in episodes], "scale_up_to_healthy")
    errors = (
        _p99_errors(passes, service.value, replica_slots, min_rps)
        if service.value is not None
        else []
    )
    return Calibration(
        passes=len(passes),
        outage_passes=sum(1 for p in passes if p.snapshot.metrics_outage),
        replica_slots=replica_slots,
        service_s=service,
        service_s_p50=_estimate(median, "p50"),
        cold_start_s=cold,
        cold_starts=tuple(episodes),
        censored_scale_ups=censored,
        p99=tuple(errors),
    )


# --------------------------------------------------------------------------- the replayed world


def _offered(recorded: RecordedPass) -> float | None:
    """Requests per second over the deployed versions; None when any of them is unknown."""
    if recorded.snapshot.metrics_outage:
        return None
    deployed = set(recorded.snapshot.applied.versions)
    rows = [r for r in recorded.snapshot.metrics if r.version in deployed]
    if not rows or any(r.request_rate is None or not valid(r.request_rate) for r in rows):
        return None
    return sum(r.request_rate or 0.0 for r in rows)


class RecordedTraffic:
    """The recorded request rate as a traffic source: linear between passes, flat at the ends."""

    def __init__(self, times: Sequence[float], rates: Sequence[float], duration_s: float) -> None:
        if not times or len(times) != len(rates):
            raise CalibrationError("no pass shows a request rate: nothing to drive the simulator")
        t = [0.0, *times, max(duration_s, times[-1])]
        r = [rates[0], *rates, rates[-1]]
        self._t = np.asarray(t, dtype=float)
        self._r = np.asarray(r, dtype=float)
        areas = 0.5 * (self._r[1:] + self._r[:-1]) * np.diff(self._t)
        self._cum = np.concatenate(([0.0], np.cumsum(areas)))
        self._duration = float(duration_s)

    @property
    def duration_s(self) -> float:
        """How long the recording lasts, seconds."""
        return self._duration

    def rate(self, t: float) -> float:
        """Requests per second at ``t`` (0 outside the recording)."""
        if not 0.0 <= t <= self._duration:
            return 0.0
        return float(np.interp(t, self._t, self._r))

    def requests(self, start: float, end: float) -> Iterator[Request]:
        """Deterministic arrivals in [start, end): one each time the integrated rate passes a
        whole number."""
        lo, hi = max(start, 0.0), min(end, self._duration)
        if hi <= lo:
            return
        c0, c1 = (float(c) for c in np.interp([lo, hi], self._t, self._cum))
        for k in range(math.ceil(c0), math.ceil(c1)):
            yield Request(time=min(max(float(np.interp(k, self._cum, self._t)), lo), hi))


class RecordedSignals:
    """Region signals as recorded: those of the latest pass at or before each time."""

    def __init__(self, passes: Sequence[RecordedPass], t0: float) -> None:
        self._times = [p.now - t0 for p in passes]
        self._signals = [p.snapshot.signals for p in passes]

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """The recorded signals known at ``t``."""
        return self._signals[max(bisect_right(self._times, t) - 1, 0)]


@dataclass(frozen=True, slots=True)
class _SimPass:
    time: float
    snapshot: Snapshot
    findings: tuple[Finding, ...]
    decision: Decision


class _ReplayController:
    """``decide`` on the simulated fleet, on the recording's clock, with its recorded inputs.

    The simulated snapshot's times are shifted to the recording's clock, so the recorded
    starting state (with its timers) carries on; findings, approvals and the pause are those of
    the latest recorded pass at or before the tick.
    """

    def __init__(
        self, policy: Policy, catalogue: RegionCatalogue, passes: Sequence[RecordedPass]
    ) -> None:
        self.policy = policy
        self.catalogue = catalogue
        self.passes = passes
        self.t0 = passes[0].now
        self.state = passes[0].state
        self._times = [p.now - self.t0 for p in passes]
        self.log: list[_SimPass] = []

    @property
    def name(self) -> str:
        """Report name."""
        return "autoops"

    def decide(self, ctx: DecisionContext) -> Decision:
        """Decide one simulated tick."""
        recorded = self.passes[max(bisect_right(self._times, ctx.now) - 1, 0)]
        seen = ctx.snapshot.last_metrics_at
        snapshot = replace(
            ctx.snapshot,
            time=ctx.snapshot.time + self.t0,
            last_metrics_at=None if seen is None else seen + self.t0,
        )
        live = replace(
            ctx,
            now=ctx.now + self.t0,
            policy=self.policy,
            catalogue=self.catalogue,
            snapshot=snapshot,
            state=self.state,
            findings=recorded.findings,
            approvals=recorded.approvals,
            paused=recorded.paused,
        )
        decision, self.state = decide(live)
        self.log.append(_SimPass(ctx.now, snapshot, recorded.findings, decision))
        return decision


@dataclass(frozen=True, slots=True)
class InferredFault:
    """A fault injected into the simulated version, read off the recorded canary's metrics."""

    version: str
    start_s: float
    duration_s: float
    error_rate: float
    extra_latency_ms: float
    wrong_answer_rate: float

    def to_json(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "version": self.version,
            "start_s": self.start_s,
            "duration_s": self.duration_s,
            "error_rate": self.error_rate,
            "extra_latency_ms": self.extra_latency_ms,
            "wrong_answer_rate": self.wrong_answer_rate,
        }


def _excess(base: float | None, cand: float | None, previous: float, scale: float = 1.0) -> float:
    """How much worse the candidate is (never negative); ``previous`` when either is unknown."""
    if base is None or cand is None or not valid(base) or not valid(cand):
        return previous
    return max((cand - base) * scale, 0.0)


def _fault_points(
    passes: Sequence[RecordedPass], t0: float
) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per non-stable version, (time, error excess, p99 excess ms, accuracy deficit) per pass."""
    points: dict[str, list[tuple[float, float, float, float]]] = {}
    for recorded in passes:
        if recorded.snapshot.metrics_outage:
            continue
        stable = stable_version(recorded)
        grouped = rows_by_version(recorded.snapshot)
        base = aggregate_version(grouped.get(stable or "", []))
        for version, rows in sorted(grouped.items()):
            if version == stable or version not in recorded.snapshot.applied.versions:
                continue
            cand = aggregate_version(rows)
            if not cand.request_rate:
                continue
            series = points.setdefault(version, [])
            err, lat, wrong = series[-1][1:] if series else (0.0, 0.0, 0.0)
            series.append(
                (
                    recorded.now - t0,
                    min(_excess(base.error_ratio, cand.error_ratio, err), 1.0),
                    min(_excess(base.latency_p99_ms, cand.latency_p99_ms, lat), 60_000.0),
                    min(_excess(cand.accuracy, base.accuracy, wrong), 1.0),
                )
            )
    return points


def infer_faults(passes: Sequence[RecordedPass], duration_s: float) -> tuple[InferredFault, ...]:
    """Each non-stable version's recorded excess over stable, as faults over time.

    A pass's excess holds until the version's next observation, and after its last one until
    the end; equal consecutive values are merged.
    """
    t0 = passes[0].now
    faults: list[InferredFault] = []
    for version, series in _fault_points(passes, t0).items():
        ends = [t for t, *_ in series[1:]] + [duration_s]
        merged: list[list[float]] = []
        for (start, err, lat, wrong), end in zip(series, ends, strict=True):
            values = [round(err, 4), round(lat, 1), round(wrong, 4)]
            if merged and merged[-1][2:] == values and merged[-1][1] == start:
                merged[-1][1] = end
            else:
                merged.append([start, end, *values])
        for start, end, err, lat, wrong in merged:
            if end > start and (err > 0 or lat > 0 or wrong > 0):
                faults.append(InferredFault(version, start, end - start, err, lat, wrong))
    return tuple(faults)


def _outages(passes: Sequence[RecordedPass], t0: float, duration_s: float) -> list[MetricsOutage]:
    """The recorded metrics outages, each pass's lasting until the next pass."""
    windows: list[MetricsOutage] = []
    for index, recorded in enumerate(passes):
        if not recorded.snapshot.metrics_outage:
            continue
        start = recorded.now - t0
        end = passes[index + 1].now - t0 if index + 1 < len(passes) else duration_s
        last = windows[-1] if windows else None
        if last is not None and abs(last.start_s + last.duration_s - start) < 1e-9:
            windows[-1] = MetricsOutage(last.start_s, end - last.start_s)
        else:
            windows.append(MetricsOutage(start, end - start))
    return windows


def _stable_behaviour(passes: Sequence[RecordedPass], service_s: float) -> VersionBehaviour:
    """The stable version's median recorded error ratio and accuracy, with ``service_s``."""
    errors: list[float] = []
    accuracy: list[float] = []
    for recorded in passes:
        if recorded.snapshot.metrics_outage:
            continue
        stable = stable_version(recorded)
        agg = aggregate_version(rows_by_version(recorded.snapshot).get(stable or "", []))
        if agg.error_ratio is not None and valid(agg.error_ratio):
            errors.append(agg.error_ratio)
        if agg.accuracy is not None and valid(agg.accuracy):
            accuracy.append(agg.accuracy)
    default = VersionBehaviour()
    return VersionBehaviour(
        error_ratio=min(statistics.median(errors), 1.0) if errors else default.error_ratio,
        accuracy=min(statistics.median(accuracy), 1.0) if accuracy else default.accuracy,
        service_s=service_s,
    )


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True, slots=True)
class RollbackTiming:
    """A rollback, and when the rolled-back canary's metrics first failed (seconds from start)."""

    from_version: str
    to_version: str
    failing_at: float | None
    """None when no pass before the rollback judged the canary failing (e.g. a deadline)."""
    rollback_at: float

    @property
    def seconds(self) -> float | None:
        """Time to rollback: from the first failing pass to the rollback."""
        return None if self.failing_at is None else self.rollback_at - self.failing_at

    def to_json(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "failing_at": self.failing_at,
            "rollback_at": self.rollback_at,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True)
class P99Summary:
    """Median and worst p99 over a run, ms (None without any value)."""

    median_ms: float | None
    worst_ms: float | None
    points: int

    @classmethod
    def of(cls, values: Sequence[float]) -> P99Summary:
        """The summary of these values."""
        if not values:
            return cls(None, None, 0)
        return cls(statistics.median(values), max(values), len(values))

    def to_json(self) -> dict[str, Any]:
        """JSON data."""
        return {"median_ms": self.median_ms, "worst_ms": self.worst_ms, "points": self.points}


@dataclass(frozen=True, slots=True)
class Comparison:
    """The simulator's prediction of the recorded run beside the recording."""

    duration_s: float
    service_s: float
    cold_start_s: float
    replica_slots: int
    recorded_p99: P99Summary
    predicted_p99: P99Summary
    recorded_rollback: RollbackTiming | None
    predicted_rollback: RollbackTiming | None
    faults: tuple[InferredFault, ...]
    outages: int
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON data for ``--json``."""
        return {
            "duration_s": self.duration_s,
            "service_s": self.service_s,
            "cold_start_s": self.cold_start_s,
            "replica_slots": self.replica_slots,
            "recorded_p99": self.recorded_p99.to_json(),
            "predicted_p99": self.predicted_p99.to_json(),
            "recorded_rollback": None
            if self.recorded_rollback is None
            else self.recorded_rollback.to_json(),
            "predicted_rollback": None
            if self.predicted_rollback is None
            else self.predicted_rollback.to_json(),
            "faults": [f.to_json() for f in self.faults],
            "outages": self.outages,
            "notes": list(self.notes),
        }


def _recorded_p99(recorded: RecordedPass) -> float | None:
    """The worst p99 over the rows of versions with traffic (as the simulator's tick p99)."""
    if recorded.snapshot.metrics_outage:
        return None
    traffic = recorded.snapshot.applied.traffic
    values = [
        row.latency_p99_ms
        for row in recorded.snapshot.metrics
        if traffic.get(row.version, 0.0) > 0
        and row.request_rate is not None
        and valid(row.request_rate)
        and row.request_rate > 0
        and row.latency_p99_ms is not None
        and valid(row.latency_p99_ms)
    ]
    return max(values) if values else None


def _failing_at(
    items: Iterable[tuple[float, Snapshot, tuple[Finding, ...]]], policy: Policy, rb: Rollback
) -> float | None:
    """The first time the canary ``rb`` rolled back was judged failing, if any."""
    for time, snapshot, findings in items:
        if snapshot.metrics_outage:
            continue
        degraded = degraded_regions(snapshot, policy.slo.error_rate, signal_map(snapshot.signals))
        check = analyse(policy, snapshot, findings, rb.to_version, rb.from_version, degraded)
        if check.check in _FAILING:
            return time
    return None


def _first_rollback(decisions: Iterable[Decision]) -> tuple[int, Rollback] | None:
    for index, decision in enumerate(decisions):
        if decision.dry_run:
            continue
        for action in decision.mutating:
            if isinstance(action, Rollback):
                return index, action
    return None


def recorded_rollback(passes: Sequence[RecordedPass], policy: Policy) -> RollbackTiming | None:
    """The recording's first applied rollback, timed from the canary's first failing pass."""
    found = _first_rollback(p.decision for p in passes)
    if found is None:
        return None
    index, rb = found
    t0 = passes[0].now
    items = ((p.now - t0, p.snapshot, p.findings) for p in passes[: index + 1])
    return RollbackTiming(
        rb.from_version, rb.to_version, _failing_at(items, policy, rb), passes[index].now - t0
    )


def _simulated_rollback(log: Sequence[_SimPass], policy: Policy) -> RollbackTiming | None:
    found = _first_rollback(p.decision for p in log)
    if found is None:
        return None
    index, rb = found
    items = ((p.time, p.snapshot, p.findings) for p in log[: index + 1])
    return RollbackTiming(
        rb.from_version, rb.to_version, _failing_at(items, policy, rb), log[index].time
    )


def _start(
    passes: Sequence[RecordedPass], policy: Policy
) -> tuple[tuple[str, ...], int, list[str]]:
    """The engine's start versions (stable first) and replicas, and what it cannot reproduce."""
    applied = passes[0].snapshot.applied
    stable = stable_version(passes[0]) or policy.target.stable_version or "v1"
    versions = (stable, *(v for v in applied.versions if v != stable))
    notes: list[str] = []
    first = policy.intent.allowed_regions[0]
    if {r for r, w in applied.region_weights.items() if w > 0} - {first}:
        notes.append(
            f"the recording starts serving from {', '.join(sorted(applied.region_weights))}; "
            f"the simulator starts with every replica in {first}"
        )
    if any(w > 0 for v, w in applied.traffic.items() if v != stable):
        notes.append(
            "the recording starts with traffic on a canary; the simulator starts with every "
            f"request on {stable}"
        )
    return versions, sum(applied.replicas.values()), notes


def _deployed_later(passes: Sequence[RecordedPass], start: tuple[str, ...]) -> dict[float, str]:
    """When each version not there at the start first shows up in the applied state."""
    t0 = passes[0].now
    known = set(start)
    out: dict[float, str] = {}
    for recorded in passes:
        for version in recorded.snapshot.applied.versions:
            if version not in known:
                known.add(version)
                at = recorded.now - t0
                while at in out:
                    at += 1e-6
                out[at] = version
    return out


def compare(
    passes: Sequence[RecordedPass],
    calibration: Calibration,
    policy: Policy,
    catalogue: RegionCatalogue | None = None,
) -> Comparison:
    """Replay the recording through the simulator with the fitted parameters and set its
    p99 and time to rollback beside the recorded ones (see the module doc for what is
    inferred)."""
    if not passes:
        raise CalibrationError("the recording holds no pass")
    catalogue = catalogue if catalogue is not None else load_catalogue([])
    t0 = passes[0].now
    duration = passes[-1].now - t0 + policy.tick_interval_s
    series = [(p.now - t0, r) for p in passes if (r := _offered(p)) is not None]
    traffic = RecordedTraffic([t for t, _ in series], [r for _, r in series], duration)
    engine_defaults = SimConfig(duration_s=duration)
    notes: list[str] = []
    if passes[0].policy != policy.metadata.name:
        notes.append(
            f"recorded under policy {passes[0].policy!r}, simulated with {policy.metadata.name!r}"
        )
    service = calibration.service_s.value
    if service is None:
        service = VersionBehaviour().service_s
        notes.append(f"service time not fitted: the simulator default {service * 1000:g} ms used")
    cold = calibration.cold_start_s.value
    if cold is None:
        cold = engine_defaults.cold_start_s
        notes.append(f"cold start not fitted (no scale-up seen through): default {cold:g} s used")
    start_versions, start_replicas, start_notes = _start(passes, policy)
    notes.extend(start_notes)
    later = _deployed_later(passes, start_versions)
    behaviour = _stable_behaviour(passes, service)
    faults = infer_faults(passes, duration)
    outages = _outages(passes, t0, duration)
    config = replace(
        engine_defaults,
        step_s=min(1.0, policy.tick_interval_s),
        replica_slots=calibration.replica_slots,
        cold_start_s=cold,
        scrape_interval_s=policy.tick_interval_s,
        metrics_delay_s=0.0,
        metrics_noise=0.0,
        start_versions=start_versions,
        start_replicas=max(start_replicas, 0),
        versions={v: behaviour for v in (*start_versions, *later.values())},
        new_versions=later,
        faults=tuple(
            ScheduledFault(
                f.version,
                f.start_s,
                f.duration_s,
                VersionFaults(
                    error_rate=f.error_rate,
                    extra_latency_ms=f.extra_latency_ms,
                    wrong_answer_rate=f.wrong_answer_rate,
                ),
            )
            for f in faults
        ),
        outages=tuple(outages),
        fidelity="fluid",
    )
    controller = _ReplayController(policy, catalogue, passes)
    result = simulate(policy, catalogue, traffic, RecordedSignals(passes, t0), controller, config)
    recorded = [v for p in passes if (v := _recorded_p99(p)) is not None]
    predicted = [t.p99_ms for t in result.ticks if t.p99_ms is not None]
    return Comparison(
        duration_s=duration,
        service_s=service,
        cold_start_s=cold,
        replica_slots=calibration.replica_slots,
        recorded_p99=P99Summary.of(recorded),
        predicted_p99=P99Summary.of(predicted),
        recorded_rollback=recorded_rollback(passes, policy),
        predicted_rollback=_simulated_rollback(controller.log, policy),
        faults=faults,
        outages=len(outages),
        notes=tuple(notes),
    )

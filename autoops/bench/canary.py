"""``autoops bench canary``: false rollbacks in A/A rollouts and time to detect bad canaries.

Every rollout is simulated from its own seed (``SeedSequence(seed).spawn``), so results do not
depend on the order or the number of rollouts run before it.

The world (shared by both versions, as a dependency or a load wave would be):

- Requests arrive at ``rps`` (Poisson per 5-second tick) and are split at random by the step's
  canary weight (steps ``steps`` of ``intervals_per_step`` intervals of ``interval_s`` seconds).
- Latency: ``exp(log(median_ms) + a_t + noise)`` with ``a_t`` an AR(1) per tick (Student-t(3)
  innovations: autocorrelated load waves with heavy tails) and per-request Student-t(4) noise.
- Errors: a Markov-modulated error rate per tick (normal / burst state; a shared dependency).
- Accuracy: labelled feedback on a share of requests; the share correct follows an AR(1) on the
  logit scale (the input mix drifts slowly).

The judges, on the same streams:

- ``sequential``: three :class:`~autoops.core.detect.judge.SequentialJudge` (errors up, latency
  up, accuracy down), each at ``alpha / 3``; roll back at the first rejection. Latency batches
  are each version's per-interval reservoir of at most ``reservoir`` samples.
- ``flagger``: Flagger-style fixed thresholds on the canary alone every interval (error rate <
  1%, p99 latency < 500 ms, accuracy >= ``flagger_min_accuracy``); roll back after
  ``flagger_threshold`` failed checks (cumulative, as Flagger counts them). The weight schedule is
  the same for both (a real Flagger also halts advancement on a failed check).
- ``kayenta_every_interval``: the fixed-window Kayenta-style judge (Mann-Whitney for latency,
  Fisher's exact test for errors and accuracy, confidence 0.98, score thresholds 95/75) run on
  each interval's data with no correction for repeated looks; roll back on the first FAIL. It shows
  what the sequential test is for.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from autoops.bench.common import BenchResult, machine_info
from autoops.core.detect.judge import (
    Counts,
    Direction,
    MetricConfig,
    SequentialJudge,
    classify_proportions,
    classify_samples,
    judge,
)
from autoops.model import Verdict

__all__ = ["CanaryBenchConfig", "Fault", "run_canary_bench", "simulate_rollout"]

FloatArray = npt.NDArray[np.float64]
TICK_S = 5.0


@dataclass(frozen=True, slots=True)
class Fault:
    """What is wrong with the canary (all neutral for an A/A rollout)."""

    name: str
    error_factor: float = 1.0
    latency_factor: float = 1.0
    accuracy_delta: float = 0.0


FAULTS: tuple[Fault, ...] = (
    Fault("errors_x2", error_factor=2.0),
    Fault("latency_+30%", latency_factor=1.3),
    Fault("accuracy_-5pt", accuracy_delta=-0.05),
)


@dataclass(frozen=True, slots=True)
class CanaryBenchConfig:
    """The simulated world, the rollout schedule, and both judges' settings."""

    rollouts: int = 1000
    seed: int = 0
    interval_s: float = 60.0
    steps: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50, 0.75)
    intervals_per_step: int = 6
    rps: float = 50.0
    latency_median_ms: float = 80.0
    latency_ar_phi: float = 0.98
    """AR(1) coefficient of the shared log-latency wave, per 5-second tick."""
    latency_wave_sd: float = 0.3
    """Stationary standard deviation of the shared log-latency wave."""
    latency_noise_scale: float = 0.3
    """Scale of the per-request Student-t(4) log-latency noise."""
    error_rate: float = 0.005
    burst_error_rate: float = 0.08
    burst_enter: float = 0.004
    """Per-tick chance to enter an error burst (about one burst per 21 minutes)."""
    burst_exit: float = 0.08
    """Per-tick chance to leave a burst (bursts last about a minute)."""
    accuracy: float = 0.92
    accuracy_ar_phi: float = 0.98
    accuracy_wave_sd: float = 0.3
    labelled_share: float = 0.3
    reservoir: int = 1000
    alpha: float = 0.01
    """Family-wise false-rollback bound of the sequential judge per rollout."""
    min_samples: int = 10
    flagger_max_error_rate: float = 0.01
    flagger_max_p99_ms: float = 500.0
    flagger_min_accuracy: float = 0.88
    """Flagger accuracy floor: the 0.92 baseline minus 4 points (accuracy is a custom metric)."""
    flagger_threshold: int = 5
    kayenta_confidence: float = 0.98
    faults: tuple[Fault, ...] = field(default=FAULTS)

    @property
    def intervals(self) -> int:
        """Intervals in a whole rollout."""
        return len(self.steps) * self.intervals_per_step


@dataclass(frozen=True, slots=True)
class RolloutOutcome:
    """When each judge rolled back (1-based interval), None when it never did."""

    sequential: int | None
    sequential_metric: str | None
    flagger: int | None
    kayenta: int | None
    flagger_failures: dict[str, int] = field(default_factory=dict)
    """Failed Flagger checks by metric, up to the rollback or the end."""


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float, df: float = 3.0) -> FloatArray:
    """A stationary AR(1) path with Student-t innovations scaled to stationary sd ``sd``."""
    scale = sd * math.sqrt(1.0 - phi * phi) / math.sqrt(df / (df - 2.0))
    shocks = rng.standard_t(df, n) * scale
    out = np.empty(n)
    level = rng.standard_normal() * sd
    for i in range(n):
        level = phi * level + shocks[i]
        out[i] = level
    return out


def _error_states(rng: np.random.Generator, n: int, cfg: CanaryBenchConfig) -> FloatArray:
    """The Markov-modulated error rate per tick (normal or burst)."""
    rates = np.empty(n)
    stay_p = cfg.burst_enter / (cfg.burst_enter + cfg.burst_exit)
    burst = bool(rng.random() < stay_p)
    draws = rng.random(n)
    for i in range(n):
        burst = draws[i] >= cfg.burst_exit if burst else draws[i] < cfg.burst_enter
        rates[i] = cfg.burst_error_rate if burst else cfg.error_rate
    return rates


def _latencies(
    rng: np.random.Generator,
    wave: FloatArray,
    counts: npt.NDArray[np.int64],
    cfg: CanaryBenchConfig,
) -> FloatArray:
    """Per-request latencies (ms) for requests spread over ticks with these counts."""
    level = np.repeat(wave, counts)
    noise = rng.standard_t(4.0, level.size) * cfg.latency_noise_scale
    return np.asarray(np.exp(math.log(cfg.latency_median_ms) + level + noise), dtype=float)


def _reservoir(rng: np.random.Generator, values: FloatArray, size: int) -> FloatArray:
    """A uniform random subsample of at most ``size`` values (a bounded reservoir)."""
    if values.size <= size:
        return values
    return values[rng.choice(values.size, size, replace=False)]


def simulate_rollout(cfg: CanaryBenchConfig, fault: Fault | None, seed: int) -> RolloutOutcome:
    """Simulate one rollout from its own seed and report when each judge rolled back."""
    fault = fault or Fault("none")
    rng = np.random.default_rng(seed)
    ticks_per_interval = round(cfg.interval_s / TICK_S)
    n_ticks = cfg.intervals * ticks_per_interval
    wave = _ar1(rng, n_ticks, cfg.latency_ar_phi, cfg.latency_wave_sd)
    err = _error_states(rng, n_ticks, cfg)
    logit = math.log(cfg.accuracy / (1.0 - cfg.accuracy))
    acc = 1.0 / (
        1.0 + np.exp(-(logit + _ar1(rng, n_ticks, cfg.accuracy_ar_phi, cfg.accuracy_wave_sd)))
    )
    arrivals = rng.poisson(cfg.rps * TICK_S, n_ticks)

    alpha_each = cfg.alpha / 3.0
    judges = {
        "error_ratio": SequentialJudge(alpha_each, Direction.INCREASE, min_samples=cfg.min_samples),
        "latency_ms": SequentialJudge(alpha_each, Direction.INCREASE, min_samples=cfg.min_samples),
        "accuracy": SequentialJudge(alpha_each, Direction.DECREASE, min_samples=cfg.min_samples),
    }
    kayenta_metrics = {
        "error_ratio": MetricConfig("error_ratio", Direction.INCREASE, min_samples=cfg.min_samples),
        "latency_ms": MetricConfig("latency_ms", Direction.INCREASE, min_samples=cfg.min_samples),
        "accuracy": MetricConfig("accuracy", Direction.DECREASE, min_samples=cfg.min_samples),
    }
    seq_at: int | None = None
    seq_metric: str | None = None
    flagger_at: int | None = None
    kayenta_at: int | None = None
    failed_checks = 0
    flagger_failures: dict[str, int] = {}
    for i in range(cfg.intervals):
        weight = cfg.steps[i // cfg.intervals_per_step]
        sl = slice(i * ticks_per_interval, (i + 1) * ticks_per_interval)
        n_all = arrivals[sl]
        n_can = rng.binomial(n_all, weight)
        n_base = n_all - n_can
        lat_b = _latencies(rng, wave[sl], n_base, cfg)
        lat_c = _latencies(rng, wave[sl], n_can, cfg) * fault.latency_factor
        p_err = err[sl]
        e_b = int(rng.binomial(n_base, p_err).sum())
        e_c = int(rng.binomial(n_can, np.minimum(1.0, p_err * fault.error_factor)).sum())
        lab_b = rng.binomial(n_base, cfg.labelled_share)
        lab_c = rng.binomial(n_can, cfg.labelled_share)
        a_t = acc[sl]
        ok_b = int(rng.binomial(lab_b, a_t).sum())
        ok_c = int(rng.binomial(lab_c, np.clip(a_t + fault.accuracy_delta, 0.0, 1.0)).sum())
        errors_b, errors_c = Counts(e_b, int(n_base.sum())), Counts(e_c, int(n_can.sum()))
        acc_b, acc_c = Counts(ok_b, int(lab_b.sum())), Counts(ok_c, int(lab_c.sum()))
        res_b = _reservoir(rng, lat_b, cfg.reservoir)
        res_c = _reservoir(rng, lat_c, cfg.reservoir)

        if seq_at is None:
            judges["error_ratio"].update(errors_b, errors_c)
            judges["latency_ms"].update(res_b, res_c)
            judges["accuracy"].update(acc_b, acc_c)
            for name, j in judges.items():
                if j.rejected:
                    seq_at, seq_metric = i + 1, name
                    break

        if flagger_at is None:
            failing = [
                name
                for name, bad in (
                    (
                        "error_rate",
                        bool(errors_c.trials)
                        and errors_c.events / errors_c.trials >= cfg.flagger_max_error_rate,
                    ),
                    (
                        "p99_latency",
                        bool(lat_c.size)
                        and float(np.percentile(lat_c, 99)) >= cfg.flagger_max_p99_ms,
                    ),
                    (
                        "accuracy",
                        bool(acc_c.trials)
                        and acc_c.events / acc_c.trials < cfg.flagger_min_accuracy,
                    ),
                )
                if bad
            ]
            for name in failing:
                flagger_failures[name] = flagger_failures.get(name, 0) + 1
            failed_checks += 1 if failing else 0
            if failed_checks >= cfg.flagger_threshold:
                flagger_at = i + 1

        if kayenta_at is None:
            conf = cfg.kayenta_confidence
            results = (
                classify_proportions(kayenta_metrics["error_ratio"], errors_b, errors_c, conf),
                classify_samples(kayenta_metrics["latency_ms"], res_b, res_c, conf),
                classify_proportions(kayenta_metrics["accuracy"], acc_b, acc_c, conf),
            )
            if judge(results).verdict is Verdict.FAIL:
                kayenta_at = i + 1

        if seq_at is not None and flagger_at is not None and kayenta_at is not None:
            break
    return RolloutOutcome(seq_at, seq_metric, flagger_at, kayenta_at, flagger_failures)


def _upper95(k: int, n: int) -> float:
    """Clopper-Pearson upper 95% bound of a rate k / n."""
    return 1.0 if k >= n else float(stats.beta.ppf(0.975, k + 1, n - k))


def _false_rollbacks(times: list[int | None]) -> dict[str, Any]:
    k = sum(1 for t in times if t is not None)
    n = len(times)
    return {"rollbacks": k, "rollouts": n, "rate": k / n, "rate_upper95": _upper95(k, n)}


def _detection(times: list[int | None], interval_s: float) -> dict[str, Any]:
    n = len(times)
    hit = sorted(t for t in times if t is not None)
    # Undetected rollouts count as never (infinite time): the median exists only when at least
    # half the rollouts were caught.
    ordered = [float(t) for t in hit] + [math.inf] * (n - len(hit))
    med = statistics.median(ordered) if ordered else math.inf
    finite = math.isfinite(med)
    return {
        "detected": len(hit),
        "rollouts": n,
        "detection_rate": len(hit) / n,
        "median_intervals": med if finite else None,
        "median_seconds": med * interval_s if finite else None,
        "median_intervals_when_detected": statistics.median(hit) if hit else None,
    }


def run_canary_bench(
    rollouts: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> BenchResult:
    """Run A/A and faulty rollouts through the sequential judge and a Flagger-style check."""
    if rollouts < 1:
        raise ValueError(f"rollouts must be >= 1, got {rollouts}")
    cfg = CanaryBenchConfig(rollouts=rollouts, seed=seed)
    scenarios: list[Fault | None] = [None, *cfg.faults]
    total = rollouts * len(scenarios)
    seeds = np.random.SeedSequence(seed).spawn(len(scenarios))
    done = 0
    outcomes: dict[str, list[RolloutOutcome]] = {}
    for fault, scenario_seed in zip(scenarios, seeds, strict=True):
        name = "aa" if fault is None else fault.name
        rollout_seeds = scenario_seed.generate_state(rollouts, dtype=np.uint64)
        runs = []
        for s in rollout_seeds:
            runs.append(simulate_rollout(cfg, fault, int(s)))
            done += 1
            if progress is not None:
                progress(done, total)
        outcomes[name] = runs

    aa = outcomes["aa"]
    by_metric: dict[str, int] = {}
    for o in aa:
        if o.sequential_metric is not None:
            by_metric[o.sequential_metric] = by_metric.get(o.sequential_metric, 0) + 1
    results: dict[str, Any] = {
        "aa_false_rollbacks": {
            "sequential": {**_false_rollbacks([o.sequential for o in aa]), "by_metric": by_metric},
            "flagger": {
                **_false_rollbacks([o.flagger for o in aa]),
                "failed_checks_by_metric": {
                    m: sum(o.flagger_failures.get(m, 0) for o in aa)
                    for m in ("error_rate", "p99_latency", "accuracy")
                },
            },
            "kayenta_every_interval": _false_rollbacks([o.kayenta for o in aa]),
        },
        "detection": {
            name: {
                "sequential": _detection([o.sequential for o in runs], cfg.interval_s),
                "flagger": _detection([o.flagger for o in runs], cfg.interval_s),
                "kayenta_every_interval": _detection([o.kayenta for o in runs], cfg.interval_s),
            }
            for name, runs in outcomes.items()
            if name != "aa"
        },
        "goal": {"aa_false_rollbacks_per_rollout_max": 0.01},
    }
    results["goal"]["met"] = results["aa_false_rollbacks"]["sequential"]["rate"] <= 0.01
    config = asdict(cfg)
    config["faults"] = [asdict(f) for f in cfg.faults]
    config["intervals_per_rollout"] = cfg.intervals
    config["rollout_seconds"] = cfg.intervals * cfg.interval_s
    config["tick_s"] = TICK_S
    anchors = {
        "flagger_defaults": {
            "interval_s": 60,
            "threshold": 5,
            "request_success_rate_min_percent": 99,
            "request_duration_p99_max_ms": 500,
            "best_case_reaction_s": 60 * 5,
            "note": "Flagger rolls back after `threshold` failed checks, one check per "
            "`interval`: at best interval x threshold = 5 minutes.",
        },
        "kayenta_defaults": {
            "confidence": 0.98,
            "tolerance": 0.25,
            "score_pass": 95,
            "score_marginal": 75,
        },
    }
    return BenchResult("canary", config, machine_info(), results, anchors)

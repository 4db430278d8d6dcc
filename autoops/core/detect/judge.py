"""The canary judge: compare a canary with its baseline over the same window (pure, no I/O).

Three tools, one vocabulary (:class:`Direction`, :class:`Classification`):

- :func:`classify_samples`: Kayenta-style Mann-Whitney classifier for sample metrics (latency).
  The Hodges-Lehmann shift (canary - baseline) and its distribution-free confidence interval at
  ``confidence`` decide significance; the interval must also clear ``tolerance * |estimate|``
  (Kayenta's margin), and the effect size (ratio of canary to baseline mean, or median) must pass
  the allowed increase/decrease ratio. HIGH when it rose, LOW when it fell; a direction that is
  not watched passes.
- :func:`classify_proportions`: the same semantics for rates (errors, accuracy) from counts, with
  Fisher's exact test (conditional two-proportion test) for significance.
- :class:`SequentialJudge`: an anytime-valid test the controller may check after every interval
  of a rollout. Each interval gives a statistic whose null distribution is known *within that
  interval* (the canary's share of events given the interval's total: hypergeometric; the
  canary's rank sum among the interval's samples: permutation distribution). Both follow from the
  random split of traffic alone, so a load wave, a latency spike or an error burst that hits both
  versions leaves them valid. The judge multiplies exponentially tilted likelihood ratios over
  intervals and mixes over a grid of tilts (a mixture SPRT); the product is a nonnegative
  supermartingale under the null, so by Ville's inequality the chance that it *ever* reaches
  ``1 / alpha`` over the whole rollout is at most ``alpha``. Proportions use the exact
  hypergeometric moment generating function; samples use the normal one for the standardised
  rank sum (exact first two moments, tie-corrected; an approximation, checked by
  ``autoops bench canary``).

Missing data is never a pass: empty samples or fewer than ``min_samples`` on either side classify
as NODATA, a judgement over NODATA metrics only is NODATA, a critical metric with NODATA keeps the
judgement from passing, and a sequential judge that saw no usable interval reports NODATA.
Non-finite values (NaN, infinity) are dropped and counted in the statistics (``*_dropped``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Self

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from autoops.model import Finding, FindingKind, Verdict

__all__ = [
    "DEFAULT_TILTS",
    "Classification",
    "Counts",
    "Direction",
    "Judgement",
    "MetricConfig",
    "MetricResult",
    "SequentialJudge",
    "classify_proportions",
    "classify_samples",
    "hodges_lehmann",
    "judge",
    "judge_to_findings",
]

FloatArray = npt.NDArray[np.float64]

DEFAULT_TILTS: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
"""Tilts of the mixture SPRT, in standard deviations of one interval's statistic."""

_EXACT_PAIRS = 1_000_000
"""Up to this many (canary, baseline) pairs the Hodges-Lehmann interval uses every difference."""


class Direction(StrEnum):
    """Which change of a metric counts as a regression."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"

    @property
    def watches_increase(self) -> bool:
        """True when a rise of the metric is a regression."""
        return self is not Direction.DECREASE

    @property
    def watches_decrease(self) -> bool:
        """True when a fall of the metric is a regression."""
        return self is not Direction.INCREASE


class Classification(StrEnum):
    """Kayenta's per-metric classes: the canary is high, low, fine, or there is no data."""

    HIGH = "high"
    LOW = "low"
    PASS = "pass"
    NODATA = "nodata"


@dataclass(frozen=True, slots=True)
class Counts:
    """Events (errors, correct answers) out of trials (requests, labelled answers)."""

    events: int
    trials: int

    def __post_init__(self) -> None:
        if self.trials < 0 or self.events < 0 or self.events > self.trials:
            raise ValueError(f"need 0 <= events <= trials, got {self.events}/{self.trials}")

    @property
    def rate(self) -> float | None:
        """Events per trial, or None without trials."""
        return self.events / self.trials if self.trials else None


@dataclass(frozen=True, slots=True)
class MetricConfig:
    """How one metric is judged: direction, criticality, allowed change and margins."""

    name: str
    direction: Direction = Direction.EITHER
    critical: bool = False
    """A HIGH/LOW on a critical metric fails the whole judgement (score 0)."""
    allowed_increase: float = 1.0
    """Largest canary/baseline ratio that is still fine (1.1 allows +10%)."""
    allowed_decrease: float = 1.0
    """Smallest canary/baseline ratio that is still fine (0.9 allows -10%)."""
    tolerance: float = 0.25
    """The shift's confidence interval must clear ``tolerance * |estimate|`` (Kayenta)."""
    effect: Literal["mean", "median"] = "mean"
    """Which centre the effect-size ratio compares (Kayenta: mean)."""
    min_samples: int = 5
    """Fewer samples (or trials) than this on either side is NODATA."""

    def __post_init__(self) -> None:
        if self.allowed_increase < 1.0:
            raise ValueError(f"allowed_increase must be >= 1, got {self.allowed_increase}")
        if not 0.0 < self.allowed_decrease <= 1.0:
            raise ValueError(f"allowed_decrease must be in (0, 1], got {self.allowed_decrease}")
        if self.tolerance < 0.0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples}")


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric's classification, why, and the statistics behind it."""

    name: str
    classification: Classification
    test: str
    direction: Direction
    critical: bool
    reason: str
    statistics: Mapping[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """True when the canary is high or low in a watched direction."""
        return self.classification in (Classification.HIGH, Classification.LOW)

    @property
    def verdict(self) -> Verdict:
        """This metric's classification as a finding verdict."""
        if self.failed:
            return Verdict.FAIL
        if self.classification is Classification.NODATA:
            return Verdict.NODATA
        return Verdict.PASS


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict over every metric: Kayenta's score (% of classified metrics passing)."""

    verdict: Verdict
    score: float | None
    metrics: tuple[MetricResult, ...]
    reasons: tuple[str, ...]
    pass_threshold: float
    marginal_threshold: float

    @property
    def critical(self) -> bool:
        """True when a critical metric failed (roll back at once)."""
        return any(m.critical and m.failed for m in self.metrics)


# --------------------------------------------------------------------------- helpers


def _finite(values: Iterable[float]) -> tuple[FloatArray, int]:
    """The finite values as a float array, and how many non-finite ones were dropped."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    arr = arr.reshape(-1)
    keep = np.isfinite(arr)
    return arr[keep], int(arr.size - int(keep.sum()))


def _ratio(canary: float, baseline: float) -> float:
    """canary / baseline, with 1 for 0/0 and a signed infinity for x/0."""
    if baseline == 0.0:
        return 1.0 if canary == 0.0 else math.copysign(math.inf, canary)
    return canary / baseline


def _kth_differences(canary: FloatArray, baseline: FloatArray, ks: Sequence[int]) -> list[float]:
    """The k-th smallest (0-based) of all canary_i - baseline_j for each k; both sorted."""
    n, m = canary.size, baseline.size
    if n * m <= _EXACT_PAIRS:
        diffs = np.subtract.outer(canary, baseline).ravel()
        picked = np.partition(diffs, sorted(set(ks)))
        return [float(picked[k]) for k in ks]
    out: list[float] = []
    for k in ks:
        lo = float(canary[0] - baseline[-1])
        hi = float(canary[-1] - baseline[0])
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            # pairs with canary_i - baseline_j <= mid
            count = int((m - np.searchsorted(baseline, canary - mid, side="left")).sum())
            if count >= k + 1:
                hi = mid
            else:
                lo = mid
        out.append(hi)
    return out


def hodges_lehmann(
    baseline: Sequence[float] | FloatArray,
    canary: Sequence[float] | FloatArray,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """The Hodges-Lehmann shift (canary - baseline) and its distribution-free interval.

    Returns ``(estimate, lower, upper)``; the interval inverts the Mann-Whitney test with the
    normal approximation of its critical value (as R's ``wilcox.test(conf.int=TRUE)`` does for
    large samples).
    """
    b = np.sort(np.asarray(baseline, dtype=float))
    c = np.sort(np.asarray(canary, dtype=float))
    n, m = c.size, b.size
    if n == 0 or m == 0:
        raise ValueError("hodges_lehmann needs samples on both sides")
    total = n * m
    mid_lo = (total - 1) // 2
    mid_hi = total // 2
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    sd = math.sqrt(total * (n + m + 1) / 12.0)
    k = min(max(0, math.floor(total / 2.0 - z * sd)), mid_lo)
    a, b_, lower, upper = _kth_differences(c, b, (mid_lo, mid_hi, k, total - 1 - k))
    estimate = 0.5 * (a + b_)
    return estimate, lower, upper


def _nodata(config: MetricConfig, test: str, reason: str, stats_: dict[str, float]) -> MetricResult:
    return MetricResult(
        config.name,
        Classification.NODATA,
        test,
        config.direction,
        config.critical,
        reason,
        stats_,
    )


# --------------------------------------------------------------------------- fixed window


def classify_samples(
    config: MetricConfig,
    baseline: Sequence[float] | FloatArray,
    canary: Sequence[float] | FloatArray,
    confidence: float = 0.98,
) -> MetricResult:
    """Classify a sample metric (latency...) as HIGH, LOW, PASS or NODATA (Kayenta)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    test = "mann_whitney"
    b, b_drop = _finite(baseline)
    c, c_drop = _finite(canary)
    st: dict[str, float] = {
        "baseline_n": float(b.size),
        "canary_n": float(c.size),
        "baseline_dropped": float(b_drop),
        "canary_dropped": float(c_drop),
        "confidence": confidence,
    }
    if b.size < config.min_samples or c.size < config.min_samples:
        return _nodata(
            config,
            test,
            f"{int(b.size)} baseline and {int(c.size)} canary samples "
            f"(need {config.min_samples} on each side)",
            st,
        )
    centre = np.mean if config.effect == "mean" else np.median
    b_centre, c_centre = float(centre(b)), float(centre(c))
    ratio = _ratio(c_centre, b_centre)
    st.update(
        {
            f"baseline_{config.effect}": b_centre,
            f"canary_{config.effect}": c_centre,
            "ratio": ratio,
        }
    )
    if np.array_equal(np.sort(b), np.sort(c)) or np.unique(np.concatenate([b, c])).size == 1:
        st.update({"p_value": 1.0, "estimate": 0.0, "lower": 0.0, "upper": 0.0})
        return MetricResult(
            config.name,
            Classification.PASS,
            test,
            config.direction,
            config.critical,
            "baseline and canary samples are identical",
            st,
        )
    p_value = float(stats.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    estimate, lower, upper = hodges_lehmann(b, c, confidence)
    margin = config.tolerance * abs(estimate)
    st.update(
        {"p_value": p_value, "estimate": estimate, "lower": lower, "upper": upper, "margin": margin}
    )
    d = config.direction
    if lower > margin and ratio > config.allowed_increase:
        if d.watches_increase:
            reason = (
                f"canary higher: shift {estimate:.4g} [{lower:.4g}, {upper:.4g}] at "
                f"{confidence:.0%}, ratio {ratio:.3g} > {config.allowed_increase:g}"
            )
            return MetricResult(
                config.name, Classification.HIGH, test, d, config.critical, reason, st
            )
        return MetricResult(
            config.name, Classification.PASS, test, d, config.critical,
            "canary higher, but only a decrease is watched", st,
        )  # fmt: skip
    if upper < -margin and ratio < config.allowed_decrease:
        if d.watches_decrease:
            reason = (
                f"canary lower: shift {estimate:.4g} [{lower:.4g}, {upper:.4g}] at "
                f"{confidence:.0%}, ratio {ratio:.3g} < {config.allowed_decrease:g}"
            )
            return MetricResult(
                config.name, Classification.LOW, test, d, config.critical, reason, st
            )
        return MetricResult(
            config.name, Classification.PASS, test, d, config.critical,
            "canary lower, but only an increase is watched", st,
        )  # fmt: skip
    return MetricResult(
        config.name,
        Classification.PASS,
        test,
        d,
        config.critical,
        f"no difference beyond tolerance at {confidence:.0%} (ratio {ratio:.3g})",
        st,
    )


def classify_proportions(
    config: MetricConfig,
    baseline: Counts,
    canary: Counts,
    confidence: float = 0.98,
) -> MetricResult:
    """Classify a rate (errors, accuracy) from counts as HIGH, LOW, PASS or NODATA."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    test = "fisher_exact"
    st: dict[str, float] = {
        "baseline_events": float(baseline.events),
        "baseline_trials": float(baseline.trials),
        "canary_events": float(canary.events),
        "canary_trials": float(canary.trials),
        "confidence": confidence,
    }
    if baseline.trials < config.min_samples or canary.trials < config.min_samples:
        return _nodata(
            config,
            test,
            f"{baseline.trials} baseline and {canary.trials} canary trials "
            f"(need {config.min_samples} on each side)",
            st,
        )
    pb = baseline.events / baseline.trials
    pc = canary.events / canary.trials
    ratio = _ratio(pc, pb)
    table = [
        [canary.events, canary.trials - canary.events],
        [baseline.events, baseline.trials - baseline.events],
    ]
    alpha = 1.0 - confidence
    p_greater = float(stats.fisher_exact(table, alternative="greater").pvalue)
    p_less = float(stats.fisher_exact(table, alternative="less").pvalue)
    p_two = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    st.update(
        {
            "baseline_rate": pb,
            "canary_rate": pc,
            "difference": pc - pb,
            "ratio": ratio,
            "p_value": p_two,
            "p_increase": p_greater,
            "p_decrease": p_less,
        }
    )
    d = config.direction
    # "either" spends alpha on a two-sided test; a single direction on its one-sided test.
    up = (p_two if d is Direction.EITHER else p_greater) < alpha and pc > pb
    down = (p_two if d is Direction.EITHER else p_less) < alpha and pc < pb
    if up and ratio > config.allowed_increase and d.watches_increase:
        reason = (
            f"canary rate {pc:.4g} > baseline {pb:.4g} (ratio {ratio:.3g} > "
            f"{config.allowed_increase:g}) at {confidence:.0%}"
        )
        return MetricResult(config.name, Classification.HIGH, test, d, config.critical, reason, st)
    if down and ratio < config.allowed_decrease and d.watches_decrease:
        reason = (
            f"canary rate {pc:.4g} < baseline {pb:.4g} (ratio {ratio:.3g} < "
            f"{config.allowed_decrease:g}) at {confidence:.0%}"
        )
        return MetricResult(config.name, Classification.LOW, test, d, config.critical, reason, st)
    return MetricResult(
        config.name,
        Classification.PASS,
        test,
        d,
        config.critical,
        f"canary rate {pc:.4g} vs baseline {pb:.4g}: no regression at {confidence:.0%}",
        st,
    )


def judge(
    results: Sequence[MetricResult],
    pass_threshold: float = 95.0,
    marginal_threshold: float = 75.0,
) -> Judgement:
    """Score the metric results like Kayenta: % of classified metrics that pass, then classify.

    A failed critical metric fails the judgement with score 0; a critical metric with NODATA, or
    only NODATA metrics, gives NODATA; score >= ``pass_threshold`` passes, >=
    ``marginal_threshold`` is INCONCLUSIVE (Kayenta's "marginal"), lower fails.
    """
    if not 0.0 <= marginal_threshold <= pass_threshold <= 100.0:
        raise ValueError("need 0 <= marginal_threshold <= pass_threshold <= 100")
    metrics = tuple(results)
    classified = [m for m in metrics if m.classification is not Classification.NODATA]

    def done(verdict: Verdict, score: float | None, reasons: list[str]) -> Judgement:
        return Judgement(
            verdict, score, metrics, tuple(reasons), pass_threshold, marginal_threshold
        )

    critical_failed = [m for m in metrics if m.critical and m.failed]
    if critical_failed:
        return done(
            Verdict.FAIL,
            0.0,
            [
                f"critical metric {m.name} is {m.classification.value}: {m.reason}"
                for m in critical_failed
            ],
        )
    missing = [m.name for m in metrics if m.classification is Classification.NODATA]
    critical_missing = [m.name for m in metrics if m.critical and m.name in missing]
    if not classified or critical_missing:
        names = critical_missing or missing
        what = "critical metric" if critical_missing else "metric"
        return done(
            Verdict.NODATA,
            None,
            [f"no data for {what} {', '.join(names)} (missing data is not a pass)"]
            if names
            else ["no metrics to judge"],
        )
    passed = sum(1 for m in classified if not m.failed)
    score = 100.0 * passed / len(classified)
    reasons = [f"{m.name} is {m.classification.value}: {m.reason}" for m in classified if m.failed]
    if missing:
        reasons.append(f"left out for no data: {', '.join(missing)}")
    if score >= pass_threshold:
        verdict = Verdict.PASS
    elif score >= marginal_threshold:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.FAIL
    reasons.insert(0, f"score {score:.1f} ({passed}/{len(classified)} metrics pass)")
    return done(verdict, score, reasons)


# --------------------------------------------------------------------------- sequential


@dataclass(frozen=True, slots=True)
class _Interval:
    """One interval's standardised statistic and its null log-mgf at each tilt."""

    z: float
    log_mgf: tuple[float, ...]


def _rank_interval(
    baseline: FloatArray, canary: FloatArray, tilts: Sequence[float]
) -> _Interval | None:
    """Standardised Mann-Whitney U of the canary (tie-corrected); normal log-mgf."""
    n, m = canary.size, baseline.size
    pooled = np.concatenate([canary, baseline])
    order = np.argsort(pooled, kind="stable")
    ordered = pooled[order]
    total = n + m
    # Tie groups of the sorted pool: each member gets the group's mid-rank.
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    sizes = np.diff(np.append(starts, total)).astype(float)
    mid = starts + (sizes + 1.0) / 2.0
    ranks = np.repeat(mid, sizes.astype(np.int64))
    u = float(ranks[order < n].sum()) - n * (n + 1) / 2.0
    ties = float(np.sum(sizes**3 - sizes))
    var = n * m / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    if var <= 0.0:
        return None
    z = (u - n * m / 2.0) / math.sqrt(var)
    return _Interval(z, tuple(t * t / 2.0 for t in tilts))


def _count_interval(
    baseline: Counts, canary: Counts, odds_ratio: float, tilts: Sequence[float]
) -> _Interval | None:
    """Canary events given the interval's total: (noncentral) hypergeometric, exact log-mgf."""
    events = baseline.events + canary.events
    trials = baseline.trials + canary.trials
    lo = max(0, events - baseline.trials)
    hi = min(events, canary.trials)
    if hi <= lo:
        return None
    support = np.arange(lo, hi + 1, dtype=float)
    # log of C(events, y) * C(trials - events, canary - y), up to a constant.
    n_c = float(canary.trials)
    logp = -(
        special.gammaln(support + 1.0)
        + special.gammaln(events - support + 1.0)
        + special.gammaln(n_c - support + 1.0)
        + special.gammaln(trials - events - n_c + support + 1.0)
    )
    if odds_ratio != 1.0:
        logp = logp + support * math.log(odds_ratio)
    logp = logp - float(special.logsumexp(logp))
    p = np.exp(logp)
    mean = float(np.sum(p * support))
    sd = math.sqrt(max(float(np.sum(p * (support - mean) ** 2)), 0.0))
    if sd <= 1e-12:
        return None
    scaled = (support - mean) / sd
    grid = logp[None, :] + np.asarray(tilts)[:, None] * scaled[None, :]
    log_mgf = tuple(float(v) for v in special.logsumexp(grid, axis=1))
    return _Interval((canary.events - mean) / sd, log_mgf)


class SequentialJudge:
    """Anytime-valid canary test: check after every interval, false rollbacks stay <= alpha.

    A mixture SPRT over per-interval conditional statistics (see the module docstring). Feed one
    interval at a time with :meth:`update`: sample batches (latency) or :class:`Counts` (errors,
    accuracy). ``e_value`` is the running mixture; ``rejected`` turns (and stays) true once it
    reaches ``1 / alpha``. ``allowed_increase`` / ``allowed_decrease`` set the null: for samples a
    ratio applied to the baseline's values, for counts an odds ratio (close to the rate ratio for
    rare events).
    """

    def __init__(
        self,
        alpha: float = 0.01,
        direction: Direction | str = Direction.INCREASE,
        allowed_increase: float = 1.0,
        allowed_decrease: float = 1.0,
        min_samples: int = 10,
        tilts: Sequence[float] = DEFAULT_TILTS,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if allowed_increase < 1.0 or not 0.0 < allowed_decrease <= 1.0:
            raise ValueError("need allowed_increase >= 1 and 0 < allowed_decrease <= 1")
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples}")
        if not tilts or any(t <= 0.0 for t in tilts):
            raise ValueError("tilts must be positive")
        self.alpha = alpha
        self.direction = Direction(direction)
        self.allowed_increase = allowed_increase
        self.allowed_decrease = allowed_decrease
        self.min_samples = min_samples
        self.tilts = tuple(float(t) for t in tilts)
        self._reset()

    def _reset(self) -> None:
        sides = (self.direction.watches_increase, self.direction.watches_decrease)
        self._sides: tuple[int, ...] = tuple(s for s, on in zip((1, -1), sides, strict=True) if on)
        self._log_wealth: dict[int, FloatArray] = {
            s: np.zeros(len(self.tilts)) for s in self._sides
        }
        self._kind: Literal["samples", "counts"] | None = None
        self.intervals = 0
        """Intervals with usable data on both sides."""
        self.skipped = 0
        """Intervals left out for too little data."""
        self.rejected_at: int | None = None
        """The interval count at which the test rejected (1-based), or None."""
        self.max_e_value = 1.0
        self.last_z: float | None = None

    def reset(self) -> None:
        """Forget every interval seen so far."""
        self._reset()

    @property
    def e_value(self) -> float:
        """The running mixture e-value (1 before any data)."""
        if self.intervals == 0:
            return 1.0
        weight = 1.0 / (len(self._sides) * len(self.tilts))
        logs = np.concatenate([self._log_wealth[s] for s in self._sides])
        return float(math.exp(min(float(special.logsumexp(logs)) + math.log(weight), 700.0)))

    @property
    def threshold(self) -> float:
        """The e-value at which the test rejects: 1 / alpha."""
        return 1.0 / self.alpha

    @property
    def rejected(self) -> bool:
        """True once the e-value has reached 1 / alpha (it stays true)."""
        return self.rejected_at is not None

    def _interval(
        self,
        baseline: Sequence[float] | FloatArray | Counts,
        canary: Sequence[float] | FloatArray | Counts,
        side: int,
    ) -> _Interval | None:
        """The interval's statistic under this side's null, with log-mgfs at signed tilts."""
        signed = tuple(side * t for t in self.tilts)
        ratio = self.allowed_increase if side > 0 else self.allowed_decrease
        if isinstance(baseline, Counts) and isinstance(canary, Counts):
            if baseline.trials < self.min_samples or canary.trials < self.min_samples:
                return None
            return _count_interval(baseline, canary, ratio, signed)
        if isinstance(baseline, Counts) or isinstance(canary, Counts):
            raise TypeError("baseline and canary must both be Counts or both be samples")
        b, _ = _finite(baseline)
        c, _ = _finite(canary)
        if b.size < self.min_samples or c.size < self.min_samples:
            return None
        return _rank_interval(b * ratio if ratio != 1.0 else b, c, signed)

    def update(
        self,
        baseline: Sequence[float] | FloatArray | Counts,
        canary: Sequence[float] | FloatArray | Counts,
    ) -> Self:
        """Consume one interval: both versions' samples, or both versions' counts."""
        kind: Literal["samples", "counts"]
        if isinstance(baseline, Counts) and isinstance(canary, Counts):
            kind = "counts"
        elif not isinstance(baseline, Counts) and not isinstance(canary, Counts):
            kind = "samples"
        else:
            raise TypeError("baseline and canary must both be Counts or both be samples")
        if self._kind is None:
            self._kind = kind
        elif self._kind != kind:
            raise TypeError(f"this judge was fed {self._kind}, not {kind}")
        if self.rejected:
            return self
        used = False
        for side in self._sides:
            interval = self._interval(baseline, canary, side)
            if interval is None:
                continue
            used = True
            if side > 0 or self.last_z is None:
                self.last_z = interval.z
            signed = side * np.asarray(self.tilts)
            step = signed * interval.z - np.asarray(interval.log_mgf)
            self._log_wealth[side] = self._log_wealth[side] + step
        if not used:
            self.skipped += 1
            return self
        self.intervals += 1
        e = self.e_value
        self.max_e_value = max(self.max_e_value, e)
        if e >= self.threshold:
            self.rejected_at = self.intervals
        return self

    def verdict(self) -> Verdict:
        """FAIL once rejected, NODATA before any usable interval, PASS otherwise (so far)."""
        if self.rejected:
            return Verdict.FAIL
        if self.intervals == 0:
            return Verdict.NODATA
        return Verdict.PASS

    def statistics(self) -> dict[str, float]:
        """The numbers behind the verdict (e-value, threshold, intervals...)."""
        st = {
            "e_value": self.e_value,
            "max_e_value": self.max_e_value,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "intervals": float(self.intervals),
            "skipped_intervals": float(self.skipped),
        }
        if self.last_z is not None:
            st["last_z"] = self.last_z
        if self.rejected_at is not None:
            st["rejected_at_interval"] = float(self.rejected_at)
        return st

    def finding(self, version: str, signal: str, region: str | None = None) -> Finding:
        """This judge's state as a canary finding (critical when the test rejected)."""
        return Finding(
            kind=FindingKind.CANARY,
            detector=f"sequential_{self._kind or 'samples'}",
            verdict=self.verdict(),
            signal=signal,
            version=version,
            region=region,
            score=min(1.0, self.max_e_value / self.threshold),
            statistics=self.statistics(),
            critical=self.rejected,
        )


# --------------------------------------------------------------------------- findings


def judge_to_findings(
    version: str,
    judgement: Judgement | None = None,
    sequential: Mapping[str, SequentialJudge] | None = None,
    region: str | None = None,
) -> tuple[Finding, ...]:
    """Turn a fixed-window judgement and sequential judges into findings for ``decide``.

    The judgement gives one finding (signal ``canary_score``) carrying the Kayenta verdict and
    every metric's statistics as ``<metric>.<stat>``; it is critical when a critical metric
    failed. Each sequential judge gives one finding named by its signal.
    """
    findings: list[Finding] = []
    if judgement is not None:
        st: dict[str, float] = {
            "metrics": float(len(judgement.metrics)),
            "failed": float(sum(1 for m in judgement.metrics if m.failed)),
            "nodata": float(
                sum(1 for m in judgement.metrics if m.classification is Classification.NODATA)
            ),
        }
        if judgement.score is not None:
            st["score"] = judgement.score
        for m in judgement.metrics:
            st[f"{m.name}.failed"] = 1.0 if m.failed else 0.0
            for key, value in m.statistics.items():
                st[f"{m.name}.{key}"] = value
        findings.append(
            Finding(
                kind=FindingKind.CANARY,
                detector="kayenta_mann_whitney",
                verdict=judgement.verdict,
                signal="canary_score",
                version=version,
                region=region,
                score=None if judgement.score is None else judgement.score / 100.0,
                statistics=st,
                critical=judgement.critical,
            )
        )
    for signal, seq in (sequential or {}).items():
        findings.append(seq.finding(version, signal, region))
    return tuple(findings)

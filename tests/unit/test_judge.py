"""The canary judge: Kayenta-style classifier, proportion test, score, and the sequential test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from autoops.core.detect import judge as judge_module
from autoops.core.detect.judge import (
    Classification,
    Counts,
    Direction,
    MetricConfig,
    MetricResult,
    SequentialJudge,
    classify_proportions,
    classify_samples,
    hodges_lehmann,
    judge,
    judge_to_findings,
)
from autoops.model import FindingKind, Verdict


def _normal(seed: int, loc: float, n: int = 200, scale: float = 10.0) -> list[float]:
    return list(np.random.default_rng(seed).normal(loc, scale, n))


# --------------------------------------------------------------------------- Mann-Whitney


@pytest.mark.parametrize(
    ("canary_loc", "direction", "allowed_increase", "expected"),
    [
        pytest.param(150.0, Direction.INCREASE, 1.0, Classification.HIGH, id="rise-watched"),
        pytest.param(150.0, Direction.EITHER, 1.0, Classification.HIGH, id="rise-either"),
        pytest.param(150.0, Direction.DECREASE, 1.0, Classification.PASS, id="rise-ignored"),
        pytest.param(50.0, Direction.DECREASE, 1.0, Classification.LOW, id="fall-watched"),
        pytest.param(50.0, Direction.EITHER, 1.0, Classification.LOW, id="fall-either"),
        pytest.param(50.0, Direction.INCREASE, 1.0, Classification.PASS, id="fall-ignored"),
        pytest.param(100.0, Direction.EITHER, 1.0, Classification.PASS, id="no-change"),
        pytest.param(120.0, Direction.INCREASE, 1.5, Classification.PASS, id="rise-within-allowed"),
        pytest.param(200.0, Direction.INCREASE, 1.5, Classification.HIGH, id="rise-beyond-allowed"),
    ],
)
def test_mann_whitney_classifies_by_direction_and_allowed_ratio(
    canary_loc: float, direction: Direction, allowed_increase: float, expected: Classification
) -> None:
    config = MetricConfig("latency", direction, allowed_increase=allowed_increase)
    result = classify_samples(config, _normal(1, 100.0), _normal(2, canary_loc), confidence=0.99)
    assert result.classification is expected, result.reason
    assert result.verdict is (Verdict.FAIL if expected in ("high", "low") else Verdict.PASS)
    assert result.test == "mann_whitney"


def test_mann_whitney_tolerance_needs_the_interval_to_clear_a_margin() -> None:
    # A small, barely significant shift: high without a margin, pass with a wide one.
    base, can = _normal(3, 100.0, 400), _normal(4, 102.5, 400)
    strict = classify_samples(MetricConfig("m", Direction.INCREASE, tolerance=0.0), base, can)
    wide = classify_samples(MetricConfig("m", Direction.INCREASE, tolerance=0.9), base, can)
    assert strict.classification is Classification.HIGH
    assert wide.classification is Classification.PASS
    assert wide.statistics["lower"] < wide.statistics["margin"]


@pytest.mark.parametrize(
    ("baseline", "canary"),
    [
        pytest.param([], [1.0] * 10, id="empty-baseline"),
        pytest.param([1.0] * 10, [], id="empty-canary"),
        pytest.param([1.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0], id="too-few-baseline"),
        pytest.param([math.nan] * 10, [1.0] * 10, id="all-nan"),
    ],
)
def test_mann_whitney_without_enough_data_is_nodata_never_pass(
    baseline: list[float], canary: list[float]
) -> None:
    result = classify_samples(MetricConfig("m"), baseline, canary)
    assert result.classification is Classification.NODATA
    assert result.verdict is Verdict.NODATA


def test_mann_whitney_drops_and_counts_non_finite_values() -> None:
    base = [*_normal(5, 100.0, 50), math.nan, math.inf]
    result = classify_samples(MetricConfig("m"), base, _normal(6, 100.0, 50))
    assert result.statistics["baseline_dropped"] == 2
    assert result.statistics["baseline_n"] == 50


def test_identical_samples_pass() -> None:
    values = _normal(7, 10.0, 30)
    result = classify_samples(MetricConfig("m"), values, list(reversed(values)))
    assert result.classification is Classification.PASS


def test_hodges_lehmann_on_a_hand_case() -> None:
    # canary - baseline over all 9 pairs: 1,2,2,3,3,3,4,4,5 -> median 3.
    estimate, lower, upper = hodges_lehmann([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], confidence=0.5)
    assert estimate == 3.0
    assert 1.0 <= lower <= 3.0 <= upper <= 5.0


def test_hodges_lehmann_bisection_matches_the_exact_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    base, can = _normal(8, 0.0, 120), _normal(9, 3.0, 90)
    exact = hodges_lehmann(base, can, 0.95)
    monkeypatch.setattr(judge_module, "_EXACT_PAIRS", 0)
    approx = hodges_lehmann(base, can, 0.95)
    assert approx == pytest.approx(exact, abs=1e-9)


# --------------------------------------------------------------------------- proportions


@pytest.mark.parametrize(
    ("baseline", "canary", "direction", "expected"),
    [
        pytest.param(
            Counts(10, 1000), Counts(40, 1000), Direction.INCREASE, "high", id="errors-up"
        ),
        pytest.param(
            Counts(10, 1000), Counts(40, 1000), Direction.DECREASE, "pass", id="up-ignored"
        ),
        pytest.param(
            Counts(900, 1000), Counts(800, 1000), Direction.DECREASE, "low", id="acc-down"
        ),
        pytest.param(
            Counts(900, 1000), Counts(800, 1000), Direction.EITHER, "low", id="down-either"
        ),
        pytest.param(Counts(10, 1000), Counts(12, 1000), Direction.EITHER, "pass", id="noise"),
        pytest.param(Counts(0, 0), Counts(5, 100), Direction.EITHER, "nodata", id="no-baseline"),
        pytest.param(Counts(5, 100), Counts(0, 3), Direction.EITHER, "nodata", id="few-canary"),
    ],
)
def test_proportion_test_classifies_counts(
    baseline: Counts, canary: Counts, direction: Direction, expected: str
) -> None:
    result = classify_proportions(MetricConfig("rate", direction), baseline, canary, 0.99)
    assert result.classification.value == expected, result.reason


def test_proportion_test_p_value_on_a_hand_case() -> None:
    # 0/5 vs 5/5: the one-sided Fisher p-value is 1 / C(10, 5) = 1/252.
    result = classify_proportions(
        MetricConfig("errors", Direction.INCREASE), Counts(0, 5), Counts(5, 5), confidence=0.99
    )
    assert result.statistics["p_increase"] == pytest.approx(1 / 252)
    assert result.classification is Classification.HIGH


def test_proportion_allowed_increase_tolerates_a_small_rise() -> None:
    config = MetricConfig("errors", Direction.INCREASE, allowed_increase=5.0)
    result = classify_proportions(config, Counts(10, 1000), Counts(40, 1000))
    assert result.classification is Classification.PASS


@pytest.mark.parametrize(
    ("events", "trials"),
    [pytest.param(5, 3, id="more-events"), pytest.param(-1, 3, id="negative")],
)
def test_counts_reject_impossible_values(events: int, trials: int) -> None:
    with pytest.raises(ValueError, match="events"):
        Counts(events, trials)


# --------------------------------------------------------------------------- score


def _result(name: str, cls: Classification, critical: bool = False) -> MetricResult:
    return MetricResult(name, cls, "t", Direction.EITHER, critical, "r", {"p_value": 0.5})


P, H, N = Classification.PASS, Classification.HIGH, Classification.NODATA


@pytest.mark.parametrize(
    ("classes", "critical", "verdict", "score"),
    [
        pytest.param([P, P], (), Verdict.PASS, 100.0, id="all-pass"),
        pytest.param([P] * 19 + [H], (), Verdict.PASS, 95.0, id="95-passes"),
        pytest.param([P] * 4 + [H], (), Verdict.INCONCLUSIVE, 80.0, id="80-marginal"),
        pytest.param([P, H], (), Verdict.FAIL, 50.0, id="50-fails"),
        pytest.param([P] * 9 + [H], (9,), Verdict.FAIL, 0.0, id="critical-fails-all"),
        pytest.param([P, N], (), Verdict.PASS, 100.0, id="nodata-left-out"),
        pytest.param([N, N], (), Verdict.NODATA, None, id="only-nodata"),
        pytest.param([P, N], (1,), Verdict.NODATA, None, id="critical-nodata"),
        pytest.param([], (), Verdict.NODATA, None, id="no-metrics"),
    ],
)
def test_judge_scores_like_kayenta(
    classes: list[Classification], critical: tuple[int, ...], verdict: Verdict, score: float | None
) -> None:
    results = [_result(f"m{i}", c, i in critical) for i, c in enumerate(classes)]
    judgement = judge(results)
    assert judgement.verdict is verdict, judgement.reasons
    assert judgement.score == score


# --------------------------------------------------------------------------- sequential


def test_sequential_golden_e_value_on_counts() -> None:
    # One event among two trials: canary has it with null probability 1/2. Standardised z = 1,
    # log-mgf at tilt 1 is log cosh 1, so e = exp(1) / cosh(1) = 1 + tanh(1); twice: squared.
    seq = SequentialJudge(alpha=0.1, tilts=(1.0,), min_samples=1)
    seq.update(Counts(0, 1), Counts(1, 1))
    assert seq.e_value == pytest.approx(1 + math.tanh(1.0))
    seq.update(Counts(0, 1), Counts(1, 1))
    assert seq.e_value == pytest.approx((1 + math.tanh(1.0)) ** 2)


def test_sequential_golden_e_value_on_samples() -> None:
    # Canary above baseline in all 4 pairs: U = 4, mean 2, variance 2*2*5/12 -> z = 2/sqrt(5/3);
    # at tilt 1 the normal log-mgf is 1/2.
    seq = SequentialJudge(alpha=0.1, tilts=(1.0,), min_samples=1)
    seq.update([1.0, 2.0], [3.0, 4.0])
    assert seq.e_value == pytest.approx(math.exp(2 / math.sqrt(5 / 3) - 0.5))
    assert seq.last_z == pytest.approx(2 / math.sqrt(5 / 3))


def _aa_interval(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Counts, Counts]:
    """One A/A interval: a shared heavy-tailed latency level and a shared bursty error rate."""
    level = rng.standard_t(3) * 0.5
    base = np.exp(level + rng.standard_t(4, 300) * 0.3)
    can = np.exp(level + rng.standard_t(4, 40) * 0.3)
    p = 0.08 if rng.random() < 0.2 else 0.005
    return base, can, Counts(int(rng.binomial(1500, p)), 1500), Counts(int(rng.binomial(80, p)), 80)


@pytest.mark.parametrize(
    "signal", [pytest.param("latency", id="latency"), pytest.param("errors", id="errors")]
)
def test_sequential_test_rarely_rejects_identical_versions_over_many_checks(signal: str) -> None:
    rng = np.random.default_rng(20240501)
    alpha, runs = 0.05, 150
    rejected = 0
    for _ in range(runs):
        seq = SequentialJudge(alpha=alpha, direction=Direction.EITHER)
        for _ in range(20):
            base, can, err_b, err_c = _aa_interval(rng)
            if signal == "latency":
                seq.update(base, can)
            else:
                seq.update(err_b, err_c)
        rejected += seq.rejected
    # Ville: at most alpha over all 20 looks; the test is conservative, so no slack is needed.
    assert rejected / runs <= alpha


@pytest.mark.parametrize(
    ("signal", "direction", "within"),
    [
        pytest.param("latency", Direction.INCREASE, 1, id="latency-doubles"),
        pytest.param("errors", Direction.INCREASE, 2, id="errors-x5"),
        pytest.param("accuracy", Direction.DECREASE, 3, id="accuracy-minus-20pt"),
    ],
)
def test_sequential_test_rejects_a_big_regression_quickly(
    signal: str, direction: Direction, within: int
) -> None:
    rng = np.random.default_rng(7)
    seq = SequentialJudge(alpha=0.01, direction=direction)
    for _ in range(10):
        if signal == "latency":
            seq.update(rng.lognormal(4.0, 0.3, 300), 2.0 * rng.lognormal(4.0, 0.3, 40))
        elif signal == "errors":
            seq.update(
                Counts(int(rng.binomial(2000, 0.01)), 2000),
                Counts(int(rng.binomial(200, 0.05)), 200),
            )
        else:
            seq.update(
                Counts(int(rng.binomial(500, 0.9)), 500), Counts(int(rng.binomial(50, 0.7)), 50)
            )
    assert seq.rejected_at is not None and seq.rejected_at <= within, seq.statistics()


def test_sequential_test_ignores_an_unwatched_direction() -> None:
    rng = np.random.default_rng(11)
    seq = SequentialJudge(alpha=0.01, direction=Direction.INCREASE)
    for _ in range(10):
        seq.update(rng.lognormal(4.0, 0.3, 300), 0.5 * rng.lognormal(4.0, 0.3, 40))
    assert not seq.rejected
    assert seq.e_value < 1.0


def test_sequential_rejection_is_sticky_until_reset() -> None:
    rng = np.random.default_rng(12)
    seq = SequentialJudge(alpha=0.01)
    seq.update(rng.lognormal(4.0, 0.3, 300), 3.0 * rng.lognormal(4.0, 0.3, 300))
    assert seq.rejected
    seq.update(rng.lognormal(4.0, 0.3, 300), rng.lognormal(4.0, 0.3, 300))
    assert seq.rejected and seq.rejected_at == 1
    seq.reset()
    assert not seq.rejected and seq.e_value == 1.0 and seq.intervals == 0


def test_sequential_without_usable_data_is_nodata() -> None:
    seq = SequentialJudge(min_samples=10)
    assert seq.verdict() is Verdict.NODATA
    seq.update([1.0, 2.0], [3.0])
    assert seq.verdict() is Verdict.NODATA
    assert seq.skipped == 1 and seq.e_value == 1.0


def test_sequential_refuses_mixed_kinds() -> None:
    seq = SequentialJudge(min_samples=1)
    seq.update(Counts(1, 10), Counts(1, 10))
    with pytest.raises(TypeError, match="counts"):
        seq.update([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(TypeError, match="both"):
        seq.update(Counts(1, 10), [1.0])


@settings(deadline=None, max_examples=60, derandomize=True)
@given(
    base_trials=st.integers(1, 25),
    can_trials=st.integers(1, 25),
    events=st.integers(0, 50),
    odds=st.sampled_from([1.0, 2.0]),
)
def test_sequential_count_e_value_has_null_mean_one(
    base_trials: int, can_trials: int, events: int, odds: float
) -> None:
    """E_0[e] = 1 exactly over the conditional null: the e-value is a fair bet."""
    events = min(events, base_trials + can_trials)
    lo, hi = max(0, events - base_trials), min(events, can_trials)
    support = np.arange(lo, hi + 1)
    pmf = stats.hypergeom.pmf(support, base_trials + can_trials, events, can_trials)
    pmf = pmf * odds**support
    pmf = pmf / pmf.sum()
    expected = 0.0
    for y, p in zip(support, pmf, strict=True):
        seq = SequentialJudge(min_samples=1, allowed_increase=odds, direction=Direction.INCREASE)
        seq.update(Counts(int(events - y), base_trials), Counts(int(y), can_trials))
        expected += p * seq.e_value
    assert expected == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- findings


def test_findings_carry_kind_version_verdict_and_criticality() -> None:
    rng = np.random.default_rng(13)
    bad = SequentialJudge(alpha=0.01).update(
        rng.lognormal(4.0, 0.3, 300), 3.0 * rng.lognormal(4.0, 0.3, 300)
    )
    fine = SequentialJudge(alpha=0.01, min_samples=1).update(Counts(5, 100), Counts(5, 100))
    judgement = judge([_result("latency", H, critical=True), _result("errors", P)])
    findings = judge_to_findings(
        "v2", judgement, {"latency_ms": bad, "error_ratio": fine}, region="eu"
    )
    summary, seq_bad, seq_fine = findings
    assert all(f.kind is FindingKind.CANARY and f.version == "v2" for f in findings)
    assert all(f.region == "eu" for f in findings)
    assert (summary.signal, summary.verdict, summary.critical) == (
        "canary_score",
        Verdict.FAIL,
        True,
    )
    assert summary.statistics["latency.p_value"] == 0.5
    assert (seq_bad.signal, seq_bad.verdict, seq_bad.critical) == ("latency_ms", Verdict.FAIL, True)
    assert seq_bad.statistics["e_value"] >= 100.0
    assert (seq_fine.verdict, seq_fine.critical) == (Verdict.PASS, False)


def test_passing_judgement_gives_a_non_critical_pass_finding() -> None:
    (finding,) = judge_to_findings("v2", judge([_result("latency", P)]))
    assert (finding.verdict, finding.critical, finding.score) == (Verdict.PASS, False, 1.0)

"""Drift tests: per-feature tests, corrections, the joint test, input handling, streaming."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.core.detect.drift import (
    MIN_SAMPLES,
    DriftDataError,
    DriftMonitor,
    DriftReport,
    bonferroni,
    drift_test,
    holm,
    holm_adjusted,
    psi,
)
from autoops.model import FindingKind, Verdict

N = 300


def _gaussian(seed: int, n: int = N, corr: float = 0.0, shift: float = 0.0) -> dict[str, Any]:
    """Three numeric features; a and b correlated by ``corr``; a moved by ``shift``."""
    rng = np.random.default_rng(seed)
    ab = rng.multivariate_normal([0.0, 0.0], [[1.0, corr], [corr, 1.0]], size=n)
    return {"a": ab[:, 0] + shift, "b": ab[:, 1], "c": rng.normal(size=n)}


def _mixed(seed: int, shares: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> dict[str, Any]:
    """One numeric and one categorical feature with the given category shares."""
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=N), "colour": rng.choice(["red", "green", "blue"], N, p=shares)}


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("reference", "current", "categorical"),
    [
        pytest.param(_gaussian(1), _gaussian(2), set(), id="independent-gaussians"),
        pytest.param(_gaussian(3, corr=0.8), _gaussian(4, corr=0.8), set(), id="correlated"),
        pytest.param(_mixed(5), _mixed(6), {"colour"}, id="numeric-and-categorical"),
    ],
)
def test_no_drift_between_samples_of_one_distribution(
    reference: dict[str, Any], current: dict[str, Any], categorical: set[str]
) -> None:
    report = drift_test(reference, current, categorical=categorical, seed=0)
    assert not report.drift
    assert report.p_value > report.alpha
    assert report.drifted_features == ()


def test_false_alarms_stay_rare_over_seeded_null_pairs() -> None:
    alarms = sum(
        drift_test(_gaussian(2 * s, n=100), _gaussian(2 * s + 1, n=100), seed=s).drift
        for s in range(40)
    )
    assert alarms <= 2  # alpha = 0.01: at most 0.4 expected; 3 or more has probability < 1%


@pytest.mark.parametrize(
    ("shift", "expected_feature"),
    [pytest.param(0.5, "a", id="half-sd"), pytest.param(1.0, "a", id="one-sd")],
)
def test_drift_on_a_mean_shift_names_the_feature(shift: float, expected_feature: str) -> None:
    report = drift_test(_gaussian(1), _gaussian(2, shift=shift), seed=0)
    assert report.drift
    assert report.drifted_features == (expected_feature,)
    assert report.features["a"].method == "ks"


def test_the_joint_test_catches_a_correlation_only_shift_the_features_miss() -> None:
    reference = _gaussian(1, corr=0.9)
    current = _gaussian(2, corr=-0.9)  # same N(0, 1) marginals, opposite dependence
    report = drift_test(reference, current, seed=0)
    assert report.drifted_features == ()
    assert report.multivariate is not None
    assert report.multivariate.drift
    assert report.drift
    without_joint = drift_test(reference, current, seed=0, multivariate=False)
    assert not without_joint.drift


def test_chi_squared_flags_a_change_in_the_category_mix() -> None:
    report = drift_test(_mixed(1), _mixed(2, (0.3, 0.3, 0.4)), categorical={"colour"}, seed=0)
    assert report.drift
    assert report.features["colour"].method == "chi2"
    assert report.features["colour"].drift
    assert not report.features["x"].drift


@pytest.mark.parametrize(
    ("numeric_test", "method"),
    [
        pytest.param("ks", "ks", id="ks"),
        pytest.param("wasserstein", "wasserstein_norm_permutation", id="wasserstein"),
        pytest.param("psi", "psi_permutation", id="psi"),
    ],
)
def test_each_numeric_test_flags_a_one_sd_shift(numeric_test: Any, method: str) -> None:
    report = drift_test(_gaussian(1), _gaussian(2, shift=1.0), numeric_test=numeric_test)
    assert report.features["a"].method == method
    assert report.features["a"].drift
    assert set(report.features["a"].effects) == {"ks", "wasserstein_norm", "psi"}


def test_same_seed_gives_the_same_report() -> None:
    first = drift_test(_gaussian(1, corr=0.5), _gaussian(2, corr=0.2), seed=7)
    second = drift_test(_gaussian(1, corr=0.5), _gaussian(2, corr=0.2), seed=7)
    assert first == second


# --------------------------------------------------------------------------- corrections


@pytest.mark.parametrize(
    ("p_values", "alpha", "bonferroni_rejects", "holm_rejects"),
    [
        pytest.param(
            [0.01, 0.04, 0.03, 0.005],
            0.05,
            (True, False, False, True),
            (True, False, False, True),
            id="holm-stops-at-0.03>0.025",
        ),
        pytest.param(
            [0.01, 0.02, 0.03],
            0.06,
            (True, True, False),
            (True, True, True),
            id="holm-rejects-more",
        ),
        pytest.param([0.2, 0.5], 0.05, (False, False), (False, False), id="nothing"),
        pytest.param([0.001], 0.01, (True,), (True,), id="single"),
    ],
)
def test_corrections_on_hand_worked_cases(
    p_values: list[float],
    alpha: float,
    bonferroni_rejects: tuple[bool, ...],
    holm_rejects: tuple[bool, ...],
) -> None:
    assert bonferroni(p_values, alpha) == bonferroni_rejects
    assert holm(p_values, alpha) == holm_rejects


def test_holm_adjusted_p_values_by_hand() -> None:
    # sorted 0.01, 0.02, 0.03 -> 3*0.01=0.03, max(0.03, 2*0.02)=0.04, max(0.04, 1*0.03)=0.04
    assert holm_adjusted([0.02, 0.01, 0.03]) == pytest.approx((0.04, 0.03, 0.04))


@settings(deadline=None, max_examples=200)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12),
    st.floats(0.001, 0.2),
)
def test_holm_rejects_whatever_bonferroni_rejects_and_matches_its_adjusted_values(
    p_values: list[float], alpha: float
) -> None:
    by_holm = holm(p_values, alpha)
    assert all(h or not b for h, b in zip(by_holm, bonferroni(p_values, alpha), strict=True))
    adjusted = holm_adjusted(p_values)
    assert by_holm == tuple(a <= alpha for a in adjusted) or any(
        math.isclose(a, alpha, rel_tol=1e-9) for a in adjusted
    )


def test_overall_p_value_is_the_weighted_bonferroni_of_the_two_families() -> None:
    report = drift_test(_gaussian(1, corr=0.6), _gaussian(2, corr=0.3, shift=0.2), seed=0)
    assert report.multivariate is not None
    m = len(report.features)
    smallest = min(r.p_value for r in report.features.values())
    expected = min(1.0, m * smallest / 0.5, report.multivariate.p_value / 0.5)
    assert report.p_value == pytest.approx(expected)
    assert report.drift == (report.p_value <= report.alpha)


# --------------------------------------------------------------------------- input handling


def test_a_feature_constant_at_one_value_in_both_has_no_drift() -> None:
    reference = {"k": np.full(50, 3.0), "x": np.random.default_rng(1).normal(size=50)}
    current = {"k": np.full(40, 3.0), "x": np.random.default_rng(2).normal(size=40)}
    result = drift_test(reference, current).features["k"]
    assert (result.method, result.p_value, result.drift) == ("constant", 1.0, False)


def test_a_feature_constant_at_different_values_drifts() -> None:
    reference = {"k": np.full(50, 3.0), "x": np.random.default_rng(1).normal(size=50)}
    current = {"k": np.full(40, 4.0), "x": np.random.default_rng(2).normal(size=40)}
    report = drift_test(reference, current)
    assert report.features["k"].drift
    assert report.features["k"].statistic == 1.0


def test_rows_with_missing_values_are_dropped_and_counted() -> None:
    reference = _mixed(1)
    current = _mixed(2)
    reference["x"][:7] = np.nan
    current_colour = current["colour"].astype(object)
    current_colour[:4] = None
    current["colour"] = current_colour
    report = drift_test(reference, current, categorical={"colour"})
    assert (report.dropped_reference, report.dropped_current) == (7, 4)
    assert (report.n_reference, report.n_current) == (N - 7, N - 4)


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        pytest.param(
            {"x": np.arange(MIN_SAMPLES - 1.0)},
            {"x": np.arange(50.0)},
            "reference: 19 complete rows",
            id="too-few-reference-rows",
        ),
        pytest.param(
            {"x": np.arange(50.0)},
            {"x": np.r_[np.arange(15.0), np.full(10, np.nan)]},
            "at least 20",
            id="too-few-after-dropping-nan",
        ),
        pytest.param(
            {"x": np.arange(50.0), "y": np.arange(50.0)},
            {"x": np.arange(50.0), "z": np.arange(50.0)},
            "only in reference ['y'], only in current ['z']",
            id="mismatched-columns",
        ),
        pytest.param(
            {"x": ["a"] * 50},
            {"x": ["a"] * 50},
            "column 'x' is not numeric",
            id="undeclared-text-column",
        ),
    ],
)
def test_unusable_input_raises_a_clear_error(
    reference: dict[str, Any], current: dict[str, Any], message: str
) -> None:
    with pytest.raises(DriftDataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        drift_test(reference, current)


def test_arrays_with_names_work_like_mappings() -> None:
    reference, current = _gaussian(1), _gaussian(2, shift=1.0)
    names = ["a", "b", "c"]
    from_arrays = drift_test(
        np.column_stack([reference[k] for k in names]),
        np.column_stack([current[k] for k in names]),
        names=names,
    )
    assert from_arrays == drift_test(reference, current)


def test_psi_is_zero_for_identical_samples_and_grows_with_the_shift() -> None:
    x = np.random.default_rng(0).normal(size=1000)
    assert psi(x, x) == pytest.approx(0.0)
    assert 0.0 < psi(x, x + 0.25) < psi(x, x + 1.0)


# --------------------------------------------------------------------------- findings


@pytest.mark.parametrize(
    ("shift", "verdict"),
    [pytest.param(0.0, Verdict.PASS, id="pass"), pytest.param(1.0, Verdict.FAIL, id="fail")],
)
def test_to_finding_carries_the_verdict_and_statistics(shift: float, verdict: Verdict) -> None:
    report: DriftReport = drift_test(_gaussian(1), _gaussian(2, shift=shift))
    finding = report.to_finding("v2")
    assert finding.kind is FindingKind.DRIFT
    assert finding.verdict is verdict
    assert (finding.signal, finding.version, finding.detector) == ("inputs", "v2", "drift_test")
    assert finding.statistics["p_value"] == report.p_value
    assert finding.statistics["alpha"] == 0.01
    assert finding.statistics["n_current"] == N
    assert set(finding.statistics) >= {"p_value.a", "multivariate_p_value"}
    assert report.to_finding("v3", signal="outputs").signal == "outputs"


def test_to_dict_has_exactly_the_cli_shape() -> None:
    data = drift_test(_gaussian(1), _gaussian(2)).to_dict()
    assert list(data) == ["drift", "p_value", "method", "features"]
    assert all(
        list(f) == ["statistic", "p_value", "drift", "method"] for f in data["features"].values()
    )


# --------------------------------------------------------------------------- streaming


def _stream_rows(seed: int, n: int, shift: float) -> list[dict[str, float]]:
    data = _gaussian(seed, n=n, shift=shift)
    return [{k: float(v[i]) for k, v in data.items()} for i in range(n)]


def test_monitor_tests_each_full_window_and_flags_the_shifted_one() -> None:
    monitor = DriftMonitor(_gaussian(0, n=400), window=100)
    rows = _stream_rows(1, 200, 0.0) + _stream_rows(2, 100, 1.0)
    detected_at = [i for i, row in enumerate(rows) if monitor.update(row).drift_detected]
    assert detected_at == [299]  # golden point: the last row of the third (shifted) window
    assert [r.drift for r in monitor.reports] == [False, False, True]
    assert monitor.pending == 0
    monitor.reset()
    assert monitor.last_report is None


def test_monitor_accepts_sequences_in_column_order_and_rejects_short_rows() -> None:
    monitor = DriftMonitor(_gaussian(0), window=MIN_SAMPLES)
    assert monitor.update([0.1, 0.2, 0.3]).pending == 1
    with pytest.raises(DriftDataError, match="expected 3"):
        monitor.update([0.1])


def test_monitor_refuses_a_window_smaller_than_the_minimum() -> None:
    with pytest.raises(ValueError, match="window must be >= 20"):
        DriftMonitor(_gaussian(0), window=10)


# --------------------------------------------------------------------------- bench baselines


@pytest.mark.parametrize(
    ("columns", "shifted", "expected"),
    [
        pytest.param(2, 1, True, id="half-the-columns-drift"),
        pytest.param(3, 1, False, id="a-third-of-the-columns-drift"),
        pytest.param(3, 0, False, id="none-drift"),
    ],
)
def test_evidently_baseline_needs_half_the_columns_to_drift(
    columns: int, shifted: int, expected: bool
) -> None:
    from autoops.bench.drift import evidently_dataset_drift

    rng = np.random.default_rng(0)
    reference = {f"x{i}": rng.normal(size=200) for i in range(columns)}
    current = {
        f"x{i}": rng.normal(size=200) + (2.0 if i < shifted else 0.0) for i in range(columns)
    }
    assert evidently_dataset_drift(reference, current, frozenset()) is expected


def test_alibi_baseline_is_bonferroni_over_per_feature_ks() -> None:
    from autoops.bench.drift import alibi_tabular_drift

    rng = np.random.default_rng(0)
    reference = {f"x{i}": rng.normal(size=200) for i in range(10)}
    current = {k: v.copy() for k, v in reference.items()}
    current["x0"] = rng.normal(size=200) + 0.5  # KS p = 0.0038: between 0.01/10 and 0.05/10
    assert alibi_tabular_drift(reference, current, frozenset(), 0.05)
    assert not alibi_tabular_drift(reference, current, frozenset(), 0.01)

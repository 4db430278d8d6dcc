"""Fault injection inside a model replica, and the load generator's input shift."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.contract import VersionFaults
from serve_apps.faults import INPUT_MAX, INPUT_MIN, N_CLASSES, FaultInjector, shift_inputs

N = 10_000


def injector(seed: int = 0, **faults: float | int | None) -> FaultInjector:
    inj = FaultInjector(random.Random(seed))
    inj.reconfigure(VersionFaults.model_validate(faults))
    return inj


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return bool(abs(count - n * p) <= sigmas * (n * p * (1 - p)) ** 0.5)


def test_no_faults_by_default() -> None:
    inj = FaultInjector(random.Random(0))
    plans = [inj.before_request() for _ in range(100)]
    assert all(p.delay_s == 0 and not p.fail and not p.crash for p in plans)


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.5, 1.0], ids=lambda r: f"rate-{r}")
def test_error_rate_is_the_share_of_failing_requests(rate: float) -> None:
    inj = injector(seed=11, error_rate=rate)
    failed = sum(inj.before_request().fail for _ in range(N))
    assert within_binomial(failed, N, rate)


@pytest.mark.parametrize("after", [1, 3, 50])
def test_crash_comes_right_after_exactly_n_requests(after: int) -> None:
    inj = injector(crash_after_requests=after)
    crashes = [inj.before_request().crash for _ in range(after + 2)]
    assert crashes == [False] * after + [True, True]


def test_changing_the_faults_restarts_the_crash_count() -> None:
    inj = injector(crash_after_requests=2)
    inj.before_request()
    inj.before_request()
    inj.reconfigure(VersionFaults(crash_after_requests=2, extra_latency_ms=1))
    assert not inj.before_request().crash


def test_reapplying_the_same_faults_keeps_the_crash_count() -> None:
    inj = injector(crash_after_requests=2)
    inj.before_request()
    inj.before_request()
    inj.reconfigure(VersionFaults(crash_after_requests=2))
    assert inj.before_request().crash


@pytest.mark.parametrize(("ms", "seconds"), [(0.0, 0.0), (250.0, 0.25), (1500.0, 1.5)])
def test_extra_latency_becomes_the_delay(ms: float, seconds: float) -> None:
    assert injector(extra_latency_ms=ms).before_request().delay_s == pytest.approx(seconds)


def test_wrong_answers_change_the_class_and_keep_the_confidence() -> None:
    inj = injector(seed=3, wrong_answer_rate=0.3)
    predictions = np.arange(N) % N_CLASSES
    confidences = np.full(N, 0.97)
    new_predictions, new_confidences = inj.corrupt(predictions, confidences)
    changed = new_predictions != predictions
    assert within_binomial(int(changed.sum()), N, 0.3)
    assert np.all(new_predictions[changed] == (predictions[changed] + 1) % N_CLASSES)
    np.testing.assert_array_equal(new_confidences, confidences)
    assert np.all((new_predictions >= 0) & (new_predictions < N_CLASSES))


def test_corrupt_leaves_its_inputs_untouched() -> None:
    predictions = np.array([1, 2, 3])
    confidences = np.array([0.9, 0.8, 0.7])
    injector(wrong_answer_rate=1.0).corrupt(predictions, confidences)
    assert predictions.tolist() == [1, 2, 3]


def test_no_wrong_answers_without_the_fault() -> None:
    predictions = np.arange(100) % N_CLASSES
    out, _ = injector(wrong_answer_rate=0.0).corrupt(predictions, np.ones(100))
    np.testing.assert_array_equal(out, predictions)


@pytest.mark.parametrize("shift", [-1.0, 0.5, 1.0], ids=lambda s: f"shift-{s}")
def test_shift_moves_the_mean_by_shift_standard_deviations(shift: float) -> None:
    rng = np.random.default_rng(0)
    x = np.clip(np.round(rng.normal(8.0, 2.0, size=(20_000, 4))), INPUT_MIN, INPUT_MAX)
    sd = x.std(axis=0)
    moved = shift_inputs(x, shift, np.random.default_rng(1)) - x
    np.testing.assert_allclose(moved.mean(axis=0), shift * sd, atol=0.1 * sd.max())


def test_shift_uses_the_reference_sd_when_given() -> None:
    x = np.full((20_000, 2), 8.0)
    out = shift_inputs(x, 1.0, np.random.default_rng(0), reference_sd=np.array([0.5, 2.0]))
    np.testing.assert_allclose(out.mean(axis=0), [8.5, 10.0], atol=0.05)


def test_shift_stays_in_the_pixel_range() -> None:
    x = np.random.default_rng(0).integers(0, 17, size=(2000, 64)).astype(float)
    for shift in (-10.0, 10.0):
        out = shift_inputs(x, shift, np.random.default_rng(1))
        assert out.min() >= INPUT_MIN and out.max() <= INPUT_MAX


def test_zero_shift_leaves_whole_pixels_unchanged() -> None:
    x = np.random.default_rng(0).integers(0, 17, size=(100, 64)).astype(float)
    np.testing.assert_array_equal(shift_inputs(x, 0.0, np.random.default_rng(1)), x)


@settings(deadline=None, max_examples=100)
@given(
    shift=st.floats(-10, 10),
    pixels=st.lists(st.integers(0, 16), min_size=2, max_size=64),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shift_keeps_whole_pixels_in_range(shift: float, pixels: list[int], seed: int) -> None:
    x = np.asarray(pixels, dtype=float).reshape(-1, 1)
    out = shift_inputs(x, shift, np.random.default_rng(seed))
    assert out.shape == x.shape
    assert np.all((out >= INPUT_MIN) & (out <= INPUT_MAX))
    assert np.all(out == np.round(out))


def test_fractional_inputs_are_shifted_without_rounding() -> None:
    x = np.array([[1.25, 3.5], [2.75, 4.5]])
    out = shift_inputs(x, 1.0, np.random.default_rng(0), reference_sd=np.array([0.5, 0.25]))
    np.testing.assert_allclose(out, x + np.array([0.5, 0.25]))

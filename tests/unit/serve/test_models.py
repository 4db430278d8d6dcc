"""The served models: data split, reproducible training, accuracy by kind, inference, placement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from autoops.contract import INPUT_SIZE
from serve_apps.models import (
    MODEL_KINDS,
    NUM_CLASSES,
    DigitsSplit,
    ModelKind,
    build_model,
    configure_cpu_threads,
    evaluate,
    load_digits_split,
    pick_device,
    predict_proba,
    train_model,
    training_config,
)


@pytest.fixture(scope="module")
def split() -> DigitsSplit:
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def trained(split: DigitsSplit) -> dict[ModelKind, nn.Module]:
    return {kind: train_model(kind, split.X_train, split.y_train, seed=0) for kind in MODEL_KINDS}


# --------------------------------------------------------------------------- data


def test_split_is_stratified_typed_and_on_the_raw_scale(split: DigitsSplit) -> None:
    assert split.X_train.dtype == np.float32 and split.X_test.dtype == np.float32
    assert split.y_train.dtype == np.int64 and split.y_test.dtype == np.int64
    assert split.X_train.shape[1] == split.X_test.shape[1] == INPUT_SIZE
    assert len(split.X_train) + len(split.X_test) == 1797
    assert len(split.X_test) == pytest.approx(0.25 * 1797, abs=1)
    assert split.X_train.min() == 0 and split.X_train.max() == 16
    train_share = np.bincount(split.y_train) / len(split.y_train)
    test_share = np.bincount(split.y_test) / len(split.y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)


def test_split_is_reproducible_from_its_seed_and_read_only() -> None:
    first, again, other = load_digits_split(3), load_digits_split(3), load_digits_split(4)
    np.testing.assert_array_equal(first.X_test, again.X_test)
    assert not np.array_equal(first.X_test, other.X_test)
    with pytest.raises(ValueError, match="read-only"):
        first.X_train[0, 0] = 1.0


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_training_is_reproducible_from_the_seed(kind: ModelKind, split: DigitsSplit) -> None:
    def probabilities(seed: int) -> np.ndarray:
        model = train_model(kind, split.X_train, split.y_train, seed=seed, epochs=2)
        return predict_proba(model, split.X_test)

    np.testing.assert_array_equal(probabilities(7), probabilities(7))
    assert not np.array_equal(probabilities(7), probabilities(8))


def test_training_restores_torch_global_random_state_and_threads(split: DigitsSplit) -> None:
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    state = torch.get_rng_state()
    train_model("small", split.X_train, split.y_train, seed=1, epochs=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_large_model_is_more_accurate_than_small_on_held_out_split(
    trained: dict[ModelKind, nn.Module], split: DigitsSplit
) -> None:
    small = evaluate(trained["small"], split.X_test, split.y_test)["accuracy"]
    large = evaluate(trained["large"], split.X_test, split.y_test)["accuracy"]
    assert large >= 0.95
    assert small >= 0.85
    assert large - small >= 0.03


def test_trained_model_comes_back_in_eval_mode_and_gives_stable_answers(
    trained: dict[ModelKind, nn.Module], split: DigitsSplit
) -> None:
    model = trained["large"]  # has dropout: answers would vary in train mode
    assert not model.training
    np.testing.assert_array_equal(
        predict_proba(model, split.X_test[:20]), predict_proba(model, split.X_test[:20])
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"epochs": 0}, "epochs", id="zero-epochs"),
        pytest.param({"lr": 0.0}, "lr", id="zero-lr"),
        pytest.param({"batch_size": 0}, "batch_size", id="zero-batch"),
    ],
)
def test_training_config_rejects_nonsense(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        training_config("small", **overrides)  # type: ignore[arg-type]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'medium'"):
        build_model("medium")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        pytest.param(np.full(10, 10), "0..9", id="class-out-of-range"),
        pytest.param(np.full(10, -1), "0..9", id="negative-class"),
        pytest.param(np.zeros(9, dtype=int), "10 classes", id="one-label-short"),
        pytest.param(np.full(10, 0.5), "integers", id="float-labels"),
    ],
)
def test_training_rejects_bad_labels(labels: np.ndarray, message: str) -> None:
    features = np.zeros((10, INPUT_SIZE), dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        train_model("small", features, labels, seed=0, epochs=1)


# --------------------------------------------------------------------------- inference


def test_predict_proba_takes_raw_features_and_returns_probabilities(
    trained: dict[ModelKind, nn.Module], split: DigitsSplit
) -> None:
    probabilities = predict_proba(trained["small"], split.X_test.tolist())
    assert probabilities.shape == (len(split.X_test), NUM_CLASSES)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities >= 0).all()


def test_predict_proba_leaves_a_training_model_in_training_mode(split: DigitsSplit) -> None:
    model = build_model("large").train()
    predict_proba(model, split.X_test[:3])
    assert model.training


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(np.zeros(INPUT_SIZE), id="one-dimensional"),
        pytest.param(np.zeros((2, INPUT_SIZE - 1)), id="too-few-features"),
        pytest.param(np.full((2, INPUT_SIZE), np.nan), id="nan"),
        pytest.param(np.full((2, INPUT_SIZE), np.inf), id="infinite"),
    ],
)
def test_predict_proba_rejects_malformed_inputs(
    inputs: np.ndarray, trained: dict[ModelKind, nn.Module]
) -> None:
    with pytest.raises(ValueError, match="inputs must be"):
        predict_proba(trained["small"], inputs)


def test_evaluate_reports_accuracy_that_matches_the_predictions(
    trained: dict[ModelKind, nn.Module], split: DigitsSplit
) -> None:
    model = trained["small"]
    predicted = predict_proba(model, split.X_test).argmax(axis=1)
    metrics = evaluate(model, split.X_test, split.y_test)
    assert metrics["accuracy"] == pytest.approx(float(np.mean(predicted == split.y_test)))
    assert metrics["log_loss"] > 0
    assert 0 < metrics["mean_confidence"] <= 1
    flipped = evaluate(model, split.X_test, (split.y_test + 1) % NUM_CLASSES)
    assert flipped["accuracy"] < 0.1


# --------------------------------------------------------------------------- placement


@pytest.mark.parametrize(
    ("num_gpus", "cuda", "expected"),
    [
        pytest.param(0.0, True, "cpu", id="no-gpu-asked"),
        pytest.param(0.5, False, "cpu", id="gpu-asked-none-present"),
        pytest.param(0.5, True, "cuda", id="fractional-gpu"),
        pytest.param(1.0, True, "cuda", id="whole-gpu"),
    ],
)
def test_pick_device(
    num_gpus: float, cuda: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert pick_device(num_gpus).type == expected


def test_configure_cpu_threads_uses_one_thread() -> None:
    before = torch.get_num_threads()
    try:
        configure_cpu_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

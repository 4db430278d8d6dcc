"""Drift remediation: a retrained child version, registered with its lineage, without Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serve_apps.models import DigitsSplit, evaluate, load_digits_split, predict_proba, train_model
from serve_apps.registry import (
    ModelRegistry,
    UnknownVersionError,
    VersionExistsError,
    VersionRecord,
)
from serve_apps.retrain import MIN_RETRAIN_ROWS, retrain


def _mirrored(features: np.ndarray) -> np.ndarray:
    """Digits flipped left to right: a covariate shift the base model has never seen."""
    return np.ascontiguousarray(features.reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 64))


@pytest.fixture(scope="module")
def split() -> DigitsSplit:
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, split: DigitsSplit) -> Path:
    path = tmp_path_factory.mktemp("registry")
    base = train_model("small", split.X_train, split.y_train, seed=0)
    ModelRegistry(path).register(
        "base",
        base,
        "small",
        split.X_train,
        split.y_train,
        metrics=evaluate(base, split.X_test, split.y_test),
        hyperparameters={},
        seed=0,
    )
    return path


@pytest.fixture(scope="module")
def child(root: Path, split: DigitsSplit) -> VersionRecord:
    return retrain(str(root), "base", "base-r1", _mirrored(split.X_train), split.y_train, seed=3)


def test_retrained_child_is_registered_with_lineage(
    child: VersionRecord, root: Path, split: DigitsSplit
) -> None:
    registry = ModelRegistry(root)
    base = registry.get("base")
    assert registry.get("base-r1") == child
    assert child.kind == base.kind
    assert child.stage == "registered"
    assert child.lineage.parent_version == "base"
    assert child.lineage.seed == 3
    assert child.lineage.training_data_digest != base.lineage.training_data_digest
    hyperparameters = child.lineage.hyperparameters
    assert hyperparameters["rows"] == len(split.X_train)
    fit_rows, holdout_rows = hyperparameters["fit_rows"], hyperparameters["holdout_rows"]
    assert isinstance(fit_rows, int) and isinstance(holdout_rows, int)
    assert fit_rows + holdout_rows == len(split.X_train)
    assert holdout_rows == pytest.approx(0.25 * len(split.X_train), abs=1)
    assert "drift data only" in str(hyperparameters["data"])
    assert registry.reference_sample("base-r1").shape == (500, 64)


def test_retrained_child_beats_its_parent_on_the_drifted_data(
    child: VersionRecord, root: Path, split: DigitsSplit
) -> None:
    metrics = child.lineage.metrics
    assert metrics["accuracy"] > metrics["base_accuracy"] + 0.3
    registry = ModelRegistry(root)
    drifted = _mirrored(split.X_test)
    assert (
        evaluate(registry.load("base-r1"), drifted, split.y_test)["accuracy"]
        > evaluate(registry.load("base"), drifted, split.y_test)["accuracy"] + 0.3
    )


def test_retraining_is_reproducible_from_the_seed(
    root: Path, child: VersionRecord, split: DigitsSplit
) -> None:
    again = retrain(str(root), "base", "base-r2", _mirrored(split.X_train), split.y_train, seed=3)
    assert again.sha256 == child.sha256
    registry = ModelRegistry(root)
    np.testing.assert_array_equal(
        predict_proba(registry.load("base-r2"), split.X_test),
        predict_proba(registry.load("base-r1"), split.X_test),
    )


@pytest.mark.parametrize(
    ("base", "new", "rows", "error", "message"),
    [
        pytest.param("ghost", "x1", 200, UnknownVersionError, "'ghost'", id="unknown-base"),
        pytest.param("base", "base", 200, VersionExistsError, "'base'", id="existing-new"),
        pytest.param("base", "x2", MIN_RETRAIN_ROWS - 1, ValueError, "at least", id="too-few-rows"),
    ],
)
def test_retrain_refuses(
    base: str,
    new: str,
    rows: int,
    error: type[Exception],
    message: str,
    root: Path,
    split: DigitsSplit,
) -> None:
    with pytest.raises(error, match=message):
        retrain(str(root), base, new, split.X_train[:rows], split.y_train[:rows], seed=0)
    assert "x1" not in ModelRegistry(root) and "x2" not in ModelRegistry(root)


def test_retrain_copes_with_classes_too_rare_to_stratify(root: Path, split: DigitsSplit) -> None:
    keep = np.flatnonzero(split.y_train != 9)[:60]
    features = np.vstack([split.X_train[keep], split.X_train[split.y_train == 9][:1]])
    labels = np.concatenate([split.y_train[keep], [9]])
    record = retrain(str(root), "base", "rare", features, labels, seed=0)
    assert record.lineage.hyperparameters["rows"] == 61


def test_importing_the_serving_models_does_not_import_ray() -> None:
    code = (
        "import sys, serve_apps.models, serve_apps.registry, serve_apps.retrain; "
        "sys.exit(1 if 'ray' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

"""Drift remediation: train a child of a version on newly labelled data and register it.

The child is trained on the labelled data it is given and nothing else: the registry keeps only a
digest of the parent's training data, and the drifted traffic the labels describe is what the
child must serve. To keep the old distribution too, pass the parent's training split concatenated
with the new data (``load_digits_split(seed)`` for the default versions). A seeded, stratified
quarter of the data is held out to score the child and the parent alike, so the child's lineage
says whether retraining helped. The child is registered in stage ``registered``; promoting it is
the controller's call (a canary), never this module's.

``retrain`` runs without Ray; ``retrain_as_ray_task`` runs it as a Ray task, importing Ray only
when called. The registry root must then be a folder the worker can reach (same host, or shared).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from serve_apps.models import as_features, as_labels, evaluate, train_model, training_config
from serve_apps.registry import ModelRegistry, VersionExistsError, VersionRecord

if TYPE_CHECKING:
    from ray import ObjectRef

MIN_RETRAIN_ROWS = 40
"""Fewer labelled rows than this cannot train and score a model meaningfully."""

HOLDOUT_SHARE = 0.25
"""Share of the labelled data kept aside to score the child and its parent."""


def _split(
    features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], seed: int
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Fit and holdout parts: stratified when every class present has at least two rows."""
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    try:
        parts = train_test_split(
            features, labels, test_size=HOLDOUT_SHARE, stratify=stratify, random_state=seed
        )
    except ValueError:  # too few rows per class for the holdout's size: split without strata
        parts = train_test_split(features, labels, test_size=HOLDOUT_SHARE, random_state=seed)
    x_fit, x_hold, y_fit, y_hold = parts
    return x_fit, x_hold, y_fit, y_hold


def retrain(
    registry_root: str | Path,
    base_version: str,
    new_version: str,
    X: npt.ArrayLike,  # noqa: N803 - X is the feature matrix
    y: npt.ArrayLike,
    seed: int,
) -> VersionRecord:
    """Train a model of the base's kind on (X, y) and register it as a child of the base.

    Metrics: the child's accuracy, log loss and confidence on the held-out part, and
    ``base_accuracy`` (the parent's on the same rows). Raises UnknownVersionError for an unknown
    base, VersionExistsError when ``new_version`` exists, ValueError for unusable data.
    """
    registry = ModelRegistry(Path(registry_root))
    base = registry.get(base_version)
    if new_version in registry:
        raise VersionExistsError(new_version, registry.root / "versions" / new_version)
    features = as_features(X)
    labels = as_labels(y, len(features))
    if len(features) < MIN_RETRAIN_ROWS:
        raise ValueError(
            f"retraining needs at least {MIN_RETRAIN_ROWS} labelled rows, got {len(features)}"
        )
    x_fit, x_hold, y_fit, y_hold = _split(features, labels, seed)
    model = train_model(base.kind, x_fit, y_fit, seed)
    metrics = evaluate(model, x_hold, y_hold)
    metrics["base_accuracy"] = evaluate(registry.load(base_version), x_hold, y_hold)["accuracy"]
    hyperparameters = training_config(base.kind).hyperparameters() | {
        "data": "labelled drift data only (parent's training data not mixed in)",
        "rows": len(features),
        "fit_rows": len(x_fit),
        "holdout_rows": len(x_hold),
    }
    return registry.register(
        new_version,
        model,
        base.kind,
        x_fit,
        y_fit,
        metrics=metrics,
        hyperparameters=hyperparameters,
        seed=seed,
        parent_version=base_version,
    )


def retrain_as_ray_task(
    registry_root: str | Path,
    base_version: str,
    new_version: str,
    X: npt.ArrayLike,  # noqa: N803 - X is the feature matrix
    y: npt.ArrayLike,
    seed: int,
    num_cpus: float = 1.0,
) -> ObjectRef[VersionRecord]:
    """Start ``retrain`` as a Ray task (Ray must be initialised); ``ray.get`` gives the record."""
    import ray  # here, not at the top: importing this module must not import Ray

    remote_retrain = ray.remote(num_cpus=num_cpus)(retrain)
    return remote_retrain.remote(
        str(registry_root), base_version, new_version, np.asarray(X), np.asarray(y), seed
    )

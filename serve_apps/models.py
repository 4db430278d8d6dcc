"""The served models: torch MLPs trained on scikit-learn's digits (8x8 images, values 0..16).

Two kinds: ``small`` sees a coarse 4x4 view of the image (2x2 average pooling) through a tiny MLP,
so it is cheap and clearly less accurate; ``large`` sees all 64 pixels through a wider MLP with
dropout. Both take raw 0..16 features and scale them inside, so callers never normalise.
Training is full CPU, single-threaded, and reproducible from its seed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own documented alias
from pydantic import JsonValue
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from autoops.contract import INPUT_SIZE

ModelKind = Literal["small", "large"]
"""small: fast and less accurate (cascade first answer, overload fallback); large: accurate."""

MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
"""Every model kind, in the order above."""

NUM_CLASSES = 10
"""Digits 0..9."""

FEATURE_MAX = 16.0
"""Largest raw feature value (pixel intensity); the models divide inputs by it."""

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class DigitsSplit:
    """A stratified train/test split of the digits (features on the raw 0..16 scale)."""

    X_train: FloatArray
    y_train: LabelArray
    X_test: FloatArray
    y_test: LabelArray


@functools.lru_cache(maxsize=8)
def load_digits_split(seed: int = 0, test_size: float = 0.25) -> DigitsSplit:
    """The digits split into train and test, stratified by class, reproducible from ``seed``."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    digits = load_digits()
    features = np.asarray(digits.data, dtype=np.float32)
    labels = np.asarray(digits.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    arrays = [np.ascontiguousarray(a) for a in (x_train, y_train, x_test, y_test)]
    for array in arrays:  # the split is cached and shared: nobody may change it
        array.setflags(write=False)
    return DigitsSplit(X_train=arrays[0], y_train=arrays[1], X_test=arrays[2], y_test=arrays[3])


def as_features(X: npt.ArrayLike) -> FloatArray:  # noqa: N803 - X is the feature matrix
    """A float32 copy of ``X`` checked to be finite rows of INPUT_SIZE features."""
    features = np.array(X, dtype=np.float32, copy=True)
    if features.ndim != 2 or features.shape[1] != INPUT_SIZE:
        raise ValueError(
            f"inputs must be a 2-D array of rows of {INPUT_SIZE} features, got shape "
            f"{features.shape}"
        )
    if not np.isfinite(features).all():
        raise ValueError("inputs must be finite (no NaN or infinity)")
    return features


def as_labels(y: npt.ArrayLike, rows: int) -> LabelArray:
    """An int64 copy of ``y`` checked to hold one class in 0..9 per input row."""
    labels = np.array(y, copy=True)
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise ValueError(f"labels must be a 1-D array of {rows} classes, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(
            f"labels must be in 0..{NUM_CLASSES - 1}, got {labels.min()}..{labels.max()}"
        )
    return labels


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class Architecture:
    """The shape of one model kind."""

    pool: bool
    """Average-pool the 8x8 image to 4x4 before the MLP (16 inputs instead of 64)."""
    hidden: tuple[int, ...]
    dropout: float


ARCHITECTURES: dict[ModelKind, Architecture] = {
    "small": Architecture(pool=True, hidden=(32,), dropout=0.0),
    "large": Architecture(pool=False, hidden=(256, 128), dropout=0.2),
}
"""Architecture per model kind."""


class DigitsNet(nn.Module):
    """An MLP over raw 0..16 digit features that returns class logits."""

    def __init__(self, kind: ModelKind) -> None:
        super().__init__()
        self.kind: ModelKind = _check_kind(kind)
        arch = ARCHITECTURES[kind]
        self.pool = arch.pool
        width = INPUT_SIZE // 4 if arch.pool else INPUT_SIZE
        layers: list[nn.Module] = []
        for hidden in arch.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if arch.dropout:
                layers.append(nn.Dropout(arch.dropout))
            width = hidden
        layers.append(nn.Linear(width, NUM_CLASSES))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (rows, 10) for raw features of shape (rows, 64)."""
        x = x / FEATURE_MAX
        if self.pool:
            side = int(INPUT_SIZE**0.5)
            x = F.avg_pool2d(x.view(-1, 1, side, side), kernel_size=2).flatten(1)
        out: torch.Tensor = self.layers(x)
        return out


def _check_kind(kind: str) -> ModelKind:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {list(MODEL_KINDS)}")
    return kind


def build_model(kind: ModelKind) -> nn.Module:
    """An untrained model of ``kind`` (initialised from torch's current random state)."""
    return DigitsNet(kind)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """How one kind is trained: Adam on seeded mini-batches."""

    kind: ModelKind
    epochs: int
    lr: float
    batch_size: int

    def hyperparameters(self) -> dict[str, JsonValue]:
        """The architecture and training settings, as a registry lineage records them."""
        arch = ARCHITECTURES[self.kind]
        return {
            "kind": self.kind,
            "pool_4x4": arch.pool,
            "hidden": list(arch.hidden),
            "dropout": arch.dropout,
            "optimizer": "adam",
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
        }


DEFAULT_TRAINING: dict[ModelKind, TrainingConfig] = {
    "small": TrainingConfig(kind="small", epochs=40, lr=0.01, batch_size=128),
    "large": TrainingConfig(kind="large", epochs=30, lr=0.003, batch_size=128),
}
"""Training settings per kind (each trains in under a second on one CPU core)."""


def training_config(
    kind: ModelKind,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
) -> TrainingConfig:
    """The kind's default training settings, with any of them overridden."""
    base = DEFAULT_TRAINING[_check_kind(kind)]
    config = TrainingConfig(
        kind=kind,
        epochs=base.epochs if epochs is None else epochs,
        lr=base.lr if lr is None else lr,
        batch_size=base.batch_size if batch_size is None else batch_size,
    )
    if config.epochs < 1 or config.batch_size < 1 or not config.lr > 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {config}")
    return config


@contextmanager
def _single_threaded() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_model(
    kind: ModelKind,
    X: npt.ArrayLike,  # noqa: N803 - X is the feature matrix
    y: npt.ArrayLike,
    seed: int,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
) -> nn.Module:
    """A model of ``kind`` trained on (X, y) on the CPU, identical for identical seeds.

    Initialisation, batch order and dropout all draw from ``seed``; torch's global random state
    and thread count are restored afterwards. The model comes back in eval mode.
    """
    config = training_config(kind, epochs, lr, batch_size)
    features = as_features(X)
    labels = as_labels(y, len(features))
    if len(features) == 0:
        raise ValueError("cannot train on zero rows")
    inputs, targets = torch.from_numpy(features), torch.from_numpy(labels)
    with _single_threaded(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(kind)
        order_rng = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        model.train()
        for _ in range(config.epochs):
            order = torch.randperm(len(inputs), generator=order_rng)
            for start in range(0, len(inputs), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                loss = F.cross_entropy(model(inputs[batch]), targets[batch])
                torch.autograd.backward(loss)
                optimizer.step()
    model.eval()
    return model


# --------------------------------------------------------------------------- inference


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def predict_proba(
    model: nn.Module,
    X: npt.ArrayLike,  # noqa: N803 - X is the feature matrix
) -> FloatArray:
    """Class probabilities, shape (rows, 10), computed in eval mode without gradients."""
    features = as_features(X)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(torch.from_numpy(features).to(_device_of(model)))
            probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
    finally:
        model.train(was_training)
    return np.asarray(probabilities, dtype=np.float32)


def evaluate(
    model: nn.Module,
    X: npt.ArrayLike,  # noqa: N803 - X is the feature matrix
    y: npt.ArrayLike,
) -> dict[str, float]:
    """Accuracy, log loss and mean top-class confidence of ``model`` on (X, y)."""
    probabilities = predict_proba(model, X)
    labels = as_labels(y, len(probabilities))
    if len(labels) == 0:
        raise ValueError("cannot evaluate on zero rows")
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "log_loss": float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0)))),
        "mean_confidence": float(np.mean(probabilities.max(axis=1))),
    }


# --------------------------------------------------------------------------- placement


def pick_device(num_gpus: float) -> torch.device:
    """CUDA when the replica was given GPUs and CUDA is available, else the CPU."""
    if num_gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def configure_cpu_threads() -> None:
    """One intra-op thread per CPU replica, so replicas sharing a node do not oversubscribe it."""
    torch.set_num_threads(1)

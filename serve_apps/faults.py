"""Injected faults: what a model replica does wrong when the routing table asks it to."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from autoops.contract import VersionFaults

N_CLASSES = 10
"""Classes a digits model predicts; a wrong answer is another one of them."""
INPUT_MIN = 0.0
"""Smallest pixel value of the digits inputs."""
INPUT_MAX = 16.0
"""Largest pixel value of the digits inputs."""


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one request: wait, fail it, or crash the replica."""

    delay_s: float
    fail: bool
    crash: bool


class FaultInjector:
    """Applies one version's VersionFaults inside its model replica, request by request."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._faults = VersionFaults()
        self._requests = 0

    @property
    def faults(self) -> VersionFaults:
        """The faults applied now."""
        return self._faults

    @property
    def requests(self) -> int:
        """Requests counted since the faults last changed."""
        return self._requests

    def reconfigure(self, faults: VersionFaults) -> None:
        """Apply new faults; the crash count starts again when they change."""
        if faults != self._faults:
            self._faults = faults
            self._requests = 0

    def before_request(self) -> FaultPlan:
        """Count one request and say what to do to it."""
        self._requests += 1
        faults = self._faults
        crash_after = faults.crash_after_requests
        return FaultPlan(
            delay_s=faults.extra_latency_ms / 1000.0,
            fail=faults.error_rate > 0 and self._rng.random() < faults.error_rate,
            crash=crash_after is not None and self._requests > crash_after,
        )

    def corrupt(
        self, predictions: npt.NDArray[np.integer[Any]], confidences: npt.NDArray[np.floating[Any]]
    ) -> tuple[npt.NDArray[np.integer[Any]], npt.NDArray[np.floating[Any]]]:
        """Turn a share of rows into wrong classes, keeping their confidence (copies)."""
        predictions = np.array(predictions, copy=True)
        confidences = np.array(confidences, copy=True)
        rate = self._faults.wrong_answer_rate
        if rate > 0:
            wrong = np.array([self._rng.random() < rate for _ in range(len(predictions))])
            if wrong.any():
                predictions[wrong] = (predictions[wrong] + 1) % N_CLASSES
        return predictions, confidences


def shift_inputs(
    X: npt.NDArray[np.floating[Any]],  # noqa: N803 -- the spec's name, sklearn's convention
    shift_sd: float,
    rng: np.random.Generator,
    reference_sd: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.float64]:
    """Move each feature by ``shift_sd`` of its standard deviation, kept in 0..16.

    Inputs made of whole pixels (the digits data) stay whole: the shifted values are rounded
    stochastically, which keeps the mean shift unbiased, so only the distribution moves.
    """
    data = np.asarray(X, dtype=np.float64)
    sd = data.std(axis=0) if reference_sd is None else np.asarray(reference_sd, dtype=np.float64)
    shifted = data + shift_sd * sd
    if np.array_equal(data, np.round(data)):
        floor = np.floor(shifted)
        shifted = floor + (rng.random(shifted.shape) < shifted - floor)
    clipped: npt.NDArray[np.float64] = np.clip(shifted, INPUT_MIN, INPUT_MAX)
    return clipped

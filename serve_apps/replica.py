"""The model-version deployment: one version of the model, in one region, behind @serve.batch.

The constructor loads the version from the registry, which checks the artifact's sha256 first:
a tampered artifact stops the replica from starting, with a message naming the version. Faults
(latency, errors, crash, wrong answers) arrive with each request from the ingress, which holds
the routing table, so the replica needs no user_config of its own.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import serve
from ray.serve import Deployment

from autoops.contract import INPUT_SIZE, VersionFaults
from serve_apps.faults import FaultInjector

# torch (through serve_apps.models and serve_apps.registry) is imported where a model is loaded or
# run, not here: the ingress unpickles Prediction from this module and needs no torch.

MAX_BATCH_SIZE = 64
"""Requests one batched forward pass takes at most."""
MAX_ONGOING_REQUESTS = 128
"""Requests one replica accepts at once (enough to fill batches under load)."""


class InjectedFault(RuntimeError):  # noqa: N818 -- it is what happened, not a bug
    """A request failed on purpose: the routing table's faults ask this version to fail."""


class ArtifactRefused(RuntimeError):  # noqa: N818 -- the replica refuses, it did not crash
    """The version's artifact does not match the registry's digest: the replica will not start."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """One version's answer to one request: a class and its probability per input row."""

    version: str
    region: str
    predictions: npt.NDArray[np.int64]
    confidences: npt.NDArray[np.float32]


def _load(registry_root: str, version: str, num_gpus: float) -> Any:
    from serve_apps.models import pick_device
    from serve_apps.registry import ModelRegistry, TamperedArtifactError

    registry = ModelRegistry(Path(registry_root))
    try:
        return registry.load(version, pick_device(num_gpus))
    except TamperedArtifactError as exc:
        raise ArtifactRefused(
            f"model version {version!r} refused to start: its artifact failed the registry's "
            f"sha256 check ({exc})"
        ) from exc


class ModelReplica:
    """Serves one model version in one region; batches concurrent requests into one pass."""

    def __init__(
        self, registry_root: str, version: str, region: str, num_gpus: float = 0.0, *peers: Any
    ) -> None:
        # ``peers``: the version's other regions' deployments, bound here only so that they
        # belong to the same Serve application (see serve_apps.app.build_version_app).
        del peers
        from serve_apps.models import configure_cpu_threads, predict_proba

        configure_cpu_threads()
        self._predict_proba = predict_proba
        self.version = version
        self.region = region
        self._model = _load(registry_root, version, num_gpus)
        self._faults = FaultInjector(random.Random())
        # Warm up before Serve marks the replica ready: torch's first passes allocate and
        # pick kernels, and a canary's first requests must not pay for it (a cold first
        # window reads as a latency regression).
        for rows in (1, MAX_BATCH_SIZE):
            predict_proba(self._model, np.zeros((rows, INPUT_SIZE), dtype=np.float32))

    async def predict(
        self, inputs: npt.NDArray[np.float32], faults: VersionFaults | None = None
    ) -> Prediction:
        """Classify rows of 64 features, applying this version's injected faults, if any."""
        if faults is None or not faults.active:
            predictions, confidences = await self._infer(inputs)
            return Prediction(self.version, self.region, predictions, confidences)
        self._faults.reconfigure(faults)
        plan = self._faults.before_request()
        if plan.crash:
            os._exit(1)  # the fault asks for a dead process, not an exception
        if plan.delay_s > 0:
            await asyncio.sleep(plan.delay_s)
        if plan.fail:
            raise InjectedFault(f"injected error in version {self.version}")
        predictions, confidences = await self._infer(inputs)
        wrong, confident = self._faults.corrupt(predictions, confidences)
        return Prediction(self.version, self.region, wrong.astype(np.int64), confident)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=0.0)
    async def _infer(
        self, batch: list[npt.NDArray[np.float32]]
    ) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
        """One forward pass over every queued request (adaptive: no wait for a full batch)."""
        sizes = [len(x) for x in batch]
        probabilities = self._predict_proba(self._model, np.concatenate(batch))
        predictions = probabilities.argmax(axis=1).astype(np.int64)
        confidences = probabilities.max(axis=1).astype(np.float32)
        out = []
        start = 0
        for size in sizes:
            out.append((predictions[start : start + size], confidences[start : start + size]))
            start += size
        return out

    def check_health(self) -> None:
        """Serve's health check: the model is loaded."""
        if self._model is None:
            raise RuntimeError(f"version {self.version} has no model loaded")


ModelDeployment: Deployment = serve.deployment(
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    graceful_shutdown_timeout_s=2.0,
)(ModelReplica)
"""The Serve deployment of ModelReplica; the app builder names it per (version, region)."""

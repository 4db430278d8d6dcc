"""The drift remediation that closes the loop: retrain → register → deploy as a canary.

Retraining is deferrable work: within the policy's deadline it starts at the hour of lowest
forecast carbon intensity of an allowed region. It runs in the background (a Ray task in the
live stack); the new version appears in the serving system and the core's rollout canaries it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from autoops.core.schedule import SlotChoice, greenest_slot
from autoops.logging import get_logger
from autoops.model import Retrain
from autoops.ports import ApplyResult, Clock, Outcome, SampleSource, SignalsProvider

log = get_logger("autoops.remediate")

TrainFn = Callable[[str, str, npt.NDArray[np.float64], npt.NDArray[np.int64]], str]
"""(base_version, new_version, X, y) -> the registered version (e.g. a Ray task, awaited)."""
DeployFn = Callable[[str], object]
"""Deploys a registered version into the serving system (no traffic yet)."""


@dataclass
class RetrainJob:
    """One retraining: where it stands."""

    base_version: str
    new_version: str
    start_at: float
    reason: str
    status: str = "scheduled"
    error: str | None = None


@dataclass
class RetrainRemediation:
    """Carries out ``Retrain`` actions: pick a green slot, train on labelled samples, deploy."""

    samples: SampleSource
    train: TrainFn
    deploy: DeployFn
    clock: Clock
    signals: SignalsProvider | None = None
    allowed_regions: Sequence[str] = ()
    min_labelled: int = 200
    max_samples: int = 5000
    jobs: list[RetrainJob] = field(default_factory=list)
    _timers: list[threading.Timer] = field(default_factory=list)

    def _slot(self, now: float, deadline: float) -> SlotChoice:
        if self.signals is None:
            return SlotChoice(now, None, None, "no carbon signals: start now")
        slots: list[tuple[float, str, float | None]] = []
        t = now
        while t <= deadline:
            try:
                for s in self.signals.at(t):
                    if not self.allowed_regions or s.region in self.allowed_regions:
                        slots.append((t, s.region, s.carbon_intensity))
            except Exception as exc:  # no forecast is not a reason to skip the remediation
                log.warning("forecast_unavailable", error=str(exc))
                break
            t += 3600.0
        return greenest_slot(now, deadline, slots)

    def __call__(self, action: Retrain, reconcile_id: str) -> ApplyResult:
        """Schedule a retraining of ``action.base_version``; unchanged when one is under way."""
        active = [j for j in self.jobs if j.status in ("scheduled", "running")]
        if any(j.base_version == action.base_version for j in active):
            return ApplyResult(action, Outcome.UNCHANGED, "a retraining is already under way")
        now = self.clock.now()
        slot = self._slot(now, action.deadline)
        new_version = f"{action.base_version}-r{len(self.jobs) + 1}"
        job = RetrainJob(action.base_version, new_version, slot.start, slot.reason)
        self.jobs.append(job)
        delay = max(0.0, slot.start - now)
        timer = threading.Timer(delay, self._run, args=(job,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        log.info("retrain_scheduled", base=action.base_version, new=new_version, reason=slot.reason)
        return ApplyResult(action, Outcome.UPDATED, f"retrain to {new_version}: {slot.reason}")

    def _run(self, job: RetrainJob) -> None:
        job.status = "running"
        try:
            recent = self.samples.samples(job.base_version, self.max_samples)
            records = [r for r in recent if r.label is not None]
            if len(records) < self.min_labelled:
                raise RuntimeError(
                    f"only {len(records)} labelled samples of {job.base_version} "
                    f"(need {self.min_labelled}): send feedback to POST /feedback"
                )
            x = np.asarray([r.inputs for r in records], dtype=np.float64)
            y = np.asarray([r.label for r in records], dtype=np.int64)
            started = self.clock.now()
            registered = self.train(job.base_version, job.new_version, x, y)
            trained = self.clock.now()
            log.info(
                "retrain_trained",
                version=registered,
                samples=len(records),
                seconds=round(trained - started, 1),
            )
            self.deploy(registered)
            job.status = "deployed"
            log.info(
                "retrain_deployed",
                version=registered,
                samples=len(records),
                seconds=round(self.clock.now() - trained, 1),
            )
        except Exception as exc:
            job.status = "failed"
            job.error = str(exc)
            log.error("retrain_failed", base=job.base_version, error=str(exc))

    def cancel(self) -> None:
        """Cancel retrainings that have not started."""
        for timer in self._timers:
            timer.cancel()

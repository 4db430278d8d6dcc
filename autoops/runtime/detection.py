"""The live detect stage: streaming anomaly detectors and drift tests turned into findings.

Detectors keep state between ticks (river style), so this lives in the shell; what they conclude
crosses into the pure core as ``Finding`` values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from autoops.core.detect.anomaly import DefaultDetector
from autoops.core.detect.drift import drift_test
from autoops.logging import get_logger
from autoops.model import Finding, FindingKind, Snapshot, Verdict, VersionMetrics
from autoops.policy.schema import Policy
from autoops.ports import SampleSource

log = get_logger("autoops.detect")

ReferenceProvider = Callable[[str], npt.NDArray[np.float64] | None]
"""The reference inputs of a version (e.g. from the model registry), or None when unknown."""

_SUMMED = frozenset({"request_rate", "ongoing_requests"})


def stable_value(rows: Sequence[VersionMetrics], version: str, signal: str) -> float | None:
    """One number for ``signal`` of ``version`` over its regions (sum of rates, else the worst)."""
    values = [getattr(r, signal, None) for r in rows if r.version == version]
    present = [float(v) for v in values if isinstance(v, int | float) and np.isfinite(v)]
    if not present:
        return None
    if signal in _SUMMED:
        return sum(present)
    if signal == "accuracy":
        return min(present)
    return max(present)


@dataclass
class DriftState:
    """Where the drift test of one version stands."""

    tested_until: float = 0.0
    last_p_value: float | None = None
    tests: int = 0
    streak: int = 0
    """Consecutive windows that showed drift, up to the last test."""


@dataclass
class Detection:
    """Runs a policy's detectors on each snapshot and returns their findings."""

    policy: Policy
    samples: SampleSource | None = None
    reference: ReferenceProvider | None = None
    anomaly: dict[str, DefaultDetector] = field(default_factory=dict)
    drift: dict[str, DriftState] = field(default_factory=dict)

    def update(self, snapshot: Snapshot, stable: str | None) -> tuple[Finding, ...]:
        """Feed one snapshot (and new raw samples) to the detectors; return their findings."""
        if snapshot.metrics_outage or stable is None:
            return ()
        findings: list[Finding] = []
        for spec in self.policy.detectors.anomaly:
            signal = spec.signal.value
            detector = self.anomaly.setdefault(signal, DefaultDetector())
            value = stable_value(snapshot.metrics, stable, signal)
            detector.update(value)
            threshold = spec.threshold
            fired = detector.alarm or (threshold is not None and detector.score >= threshold)
            findings.append(
                Finding(
                    kind=FindingKind.ANOMALY,
                    detector=spec.detector,
                    verdict=Verdict.FAIL if fired else Verdict.PASS,
                    signal=signal,
                    version=stable,
                    score=detector.score,
                )
            )
        drift = self._drift(stable)
        if drift is not None:
            findings.append(drift)
        return tuple(findings)

    def _drift(self, version: str) -> Finding | None:
        spec = self.policy.detectors.drift
        if not spec.enabled or self.samples is None or self.reference is None:
            return None
        state = self.drift.setdefault(version, DriftState())
        try:
            records = [r for r in self.samples.samples(version, spec.window) if r.time > 0]
        except Exception as exc:  # a sample route hiccup is a missing test, not a crash
            log.warning("drift_samples_unavailable", version=version, error=str(exc))
            return None
        fresh = [r for r in records if r.time > state.tested_until]
        if len(fresh) < spec.window:
            return None
        reference = self.reference(version)
        if reference is None or len(reference) < 20:
            return None
        current = np.asarray([r.inputs for r in fresh[-spec.window :]], dtype=np.float64)
        if current.shape[1:] != reference.shape[1:]:
            log.warning("drift_shape_mismatch", version=version, current=current.shape)
            return None
        names = [f"x{i}" for i in range(current.shape[1])]
        report = drift_test(
            reference, current, names=names, alpha=spec.alpha, seed=state.tests, permutations=200
        )
        state.tested_until = max(r.time for r in fresh)
        state.last_p_value = report.p_value
        state.tests += 1
        state.streak = state.streak + 1 if report.drift else 0
        log.info(
            "drift_tested",
            version=version,
            p_value=report.p_value,
            drift=report.drift,
            streak=state.streak,
        )
        finding = report.to_finding(version)
        stats = {**finding.statistics, "windows_in_a_row": float(state.streak)}
        if report.drift and state.streak < spec.confirm_windows:
            # One window is a suspicion: the next disjoint window must confirm it.
            return replace(finding, verdict=Verdict.INCONCLUSIVE, statistics=stats)
        return replace(finding, statistics=stats)

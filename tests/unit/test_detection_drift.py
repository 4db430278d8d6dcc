"""The live drift test reports drift only after consecutive disjoint windows confirm it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from autoops.contract import SampleRecord
from autoops.model import FindingKind, Verdict
from autoops.runtime.detection import Detection
from tests.unit.fakes import make_policy, row, snapshot

WINDOW = 200
FEATURES = 4


class FakeSamples:
    """A fake admin route: the test appends windows of inputs, newest last."""

    def __init__(self) -> None:
        self.records: list[SampleRecord] = []
        self._rng = np.random.default_rng(7)

    def add_window(self, shift: float) -> None:
        start = len(self.records)
        for i, x in enumerate(self._rng.normal(shift, 1.0, size=(WINDOW, FEATURES))):
            self.records.append(
                SampleRecord(
                    time=float(start + i + 1),
                    version="v1",
                    region="eu-west",
                    inputs=[float(v) for v in x],
                    prediction=0,
                    confidence=0.9,
                )
            )

    def samples(self, version: str, limit: int) -> Sequence[SampleRecord]:
        return self.records[-limit:]


REFERENCE: npt.NDArray[np.float64] = np.random.default_rng(1).normal(0.0, 1.0, (500, FEATURES))


def _detection(confirm: int) -> tuple[Detection, FakeSamples]:
    policy = make_policy(detectors={"drift": {"window": WINDOW, "confirm_windows": confirm}})
    samples = FakeSamples()
    return Detection(policy, samples=samples, reference=lambda _v: REFERENCE), samples


def _drift_verdicts(detection: Detection, samples: FakeSamples, shifts: list[float]) -> list[str]:
    verdicts = []
    for n, shift in enumerate(shifts):
        samples.add_window(shift)
        findings = detection.update(snapshot(float(n), (row("v1"),)), "v1")
        drift = [f for f in findings if f.kind is FindingKind.DRIFT]
        assert len(drift) == 1, "one drift test per fresh window"
        verdicts.append(drift[0].verdict.value)
    return verdicts


def test_one_shifted_window_is_a_suspicion_and_the_next_confirms_it() -> None:
    detection, samples = _detection(confirm=2)
    assert _drift_verdicts(detection, samples, [0.0, 2.0, 2.0]) == [
        Verdict.PASS.value,
        Verdict.INCONCLUSIVE.value,
        Verdict.FAIL.value,
    ]


def test_a_lone_shifted_window_is_never_reported_as_drift() -> None:
    detection, samples = _detection(confirm=2)
    verdicts = _drift_verdicts(detection, samples, [2.0, 0.0, 2.0, 0.0])
    assert Verdict.FAIL.value not in verdicts
    assert verdicts.count(Verdict.INCONCLUSIVE.value) == 2


def test_one_window_is_enough_when_the_policy_says_so() -> None:
    detection, samples = _detection(confirm=1)
    assert _drift_verdicts(detection, samples, [2.0]) == [Verdict.FAIL.value]

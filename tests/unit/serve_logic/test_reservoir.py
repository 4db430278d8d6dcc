"""The sample reservoir: the newest samples per version, bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.contract import SampleRecord
from serve_apps.reservoir import SampleReservoir


def record(version: str, t: float) -> SampleRecord:
    return SampleRecord(
        time=t, version=version, region="eu-west", inputs=[t] * 4, prediction=1, confidence=0.9
    )


def test_keeps_only_the_newest_per_version() -> None:
    reservoir = SampleReservoir(per_version=3)
    for t in range(5):
        reservoir.add(record("v1", float(t)))
    assert [r.time for r in reservoir.recent("v1", 10)] == [2.0, 3.0, 4.0]


def test_versions_are_bounded_separately() -> None:
    reservoir = SampleReservoir(per_version=2)
    for t in range(4):
        reservoir.add(record("v1", float(t)))
    reservoir.add(record("v2", 9.0))
    assert reservoir.versions() == ["v1", "v2"]
    assert [r.time for r in reservoir.recent("v2", 10)] == [9.0]
    assert len(reservoir) == 3


@pytest.mark.parametrize(
    ("version", "limit", "times"),
    [
        pytest.param("v1", 2, [3.0, 4.0], id="limit-takes-the-newest-newest-last"),
        pytest.param("v1", 0, [], id="zero-limit"),
        pytest.param("v9", 5, [], id="unknown-version"),
    ],
)
def test_recent(version: str, limit: int, times: list[float]) -> None:
    reservoir = SampleReservoir()
    for t in range(5):
        reservoir.add(record("v1", float(t)))
    assert [r.time for r in reservoir.recent(version, limit)] == times


def test_refuses_a_zero_bound() -> None:
    with pytest.raises(ValueError, match="per_version"):
        SampleReservoir(per_version=0)


@settings(deadline=None, max_examples=100)
@given(per_version=st.integers(1, 20), n=st.integers(0, 60))
def test_never_holds_more_than_the_bound(per_version: int, n: int) -> None:
    reservoir = SampleReservoir(per_version=per_version)
    for t in range(n):
        reservoir.add(record("v1", float(t)))
    kept = reservoir.recent("v1", 1000)
    assert len(kept) == min(n, per_version)
    assert [r.time for r in kept] == [float(t) for t in range(n - len(kept), n)]


def test_labels_from_feedback_attach_to_their_request_rows_in_order() -> None:
    from autoops.contract import SampleRecord
    from serve_apps.reservoir import SampleReservoir

    reservoir = SampleReservoir(per_version=10)
    for rid, rows in (("a", 2), ("b", 1)):
        for _ in range(rows):
            reservoir.add(
                SampleRecord(
                    time=1.0,
                    version="v1",
                    region="r",
                    inputs=[0.0],
                    prediction=1,
                    confidence=0.9,
                    request_id=rid,
                )
            )
    reservoir.label("a", [3, 4])
    labels = [(r.request_id, r.label) for r in reservoir.recent("v1", 10)]
    assert labels == [("a", 3), ("a", 4), ("b", None)]

"""A region is blamed for errors only when they stand out from the other regions' beyond noise."""

from __future__ import annotations

import pytest

from autoops.core.aggregate import degraded_regions
from tests.unit.fakes import row, snapshot


@pytest.mark.parametrize(
    ("west", "central", "count", "expected"),
    [
        pytest.param(1.0, 0.0, 40.0, {"eu-west"}, id="a-region-down-is-blamed-on-little-data"),
        pytest.param(0.08, 0.001, 1000.0, {"eu-west"}, id="a-clear-excess-on-much-data"),
        # A fleet fault crossing the limit in one region a pass before the other.
        pytest.param(0.022, 0.015, 60.0, set(), id="a-fleet-fault-crossing-first-is-noise"),
        pytest.param(0.30, 0.25, 45.0, set(), id="both-erring-is-the-fleet"),
        pytest.param(0.001, 0.001, 1000.0, set(), id="healthy"),
    ],
)
def test_degraded_regions(west: float, central: float, count: float, expected: set[str]) -> None:
    snap = snapshot(
        100.0,
        (
            row("v1", "eu-west", errors=west, count=count),
            row("v1", "eu-central", errors=central, count=count),
        ),
    )
    assert set(degraded_regions(snap, 0.02, {})) == expected


def test_without_request_counts_any_region_alone_over_the_limit_is_blamed() -> None:
    snap = snapshot(
        100.0,
        (
            row("v1", "eu-west", errors=0.022, count=None),
            row("v1", "eu-central", errors=0.015, count=None),
        ),
    )
    assert set(degraded_regions(snap, 0.02, {})) == {"eu-west"}

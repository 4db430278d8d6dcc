"""The canary's p99 is compared with the baseline's only over enough requests to mean a p99."""

from __future__ import annotations

import pytest

from autoops.core.canary import P99_MIN_REQUESTS, Check, analyse
from tests.unit.fakes import make_policy, row, snapshot


@pytest.mark.parametrize(
    ("count", "p99", "expected"),
    [
        # Seen live: 40 healthy canary requests, one slow, p99 46 ms vs 19 ms: rolled back.
        pytest.param(40.0, 46.0, Check.PASS, id="one-stall-in-40-requests-is-not-a-regression"),
        pytest.param(float(P99_MIN_REQUESTS), 46.0, Check.FAIL, id="enough-requests-it-is"),
        pytest.param(40.0, 400.0, Check.FAIL, id="over-the-slo-fails-on-any-count"),
    ],
)
def test_relative_latency_needs_enough_requests(count: float, p99: float, expected: Check) -> None:
    policy = make_policy(
        slo={"latency_p99_ms": 250}, rollout={"max_latency_increase": 1.0, "min_requests": 25}
    )
    snap = snapshot(
        100.0,
        (
            row("v1", p99=19.0, count=2000.0),
            row("v2", p99=p99, count=count, rate=2.7),
        ),
    )
    analysis = analyse(policy, snap, (), "v1", "v2", {})
    assert analysis.check is expected, analysis.reasons

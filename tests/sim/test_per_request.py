"""Per-request fidelity: FIFO multi-server queueing, and agreement with the fluid model."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from autoops.sim.api import Request
from autoops.sim.per_request import serve_requests
from autoops.sim.queueing import pool_load


def poisson(rate: float, duration_s: float, seed: int, size: float = 1.0) -> Iterator[Request]:
    rng = random.Random(seed)
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            return
        yield Request(t, size)


@pytest.mark.parametrize("rate", [150.0, 300.0, 360.0], ids=["rho-0.375", "rho-0.75", "rho-0.9"])
def test_fluid_and_per_request_agree_on_a_short_slice(rate: float) -> None:
    replicas, slots, service = 4, 4, 0.04
    duration = 600.0
    stats = serve_requests(poisson(rate, duration, seed=1), replicas, slots, service, seed=2)
    fluid = pool_load(rate, replicas, service, slots)
    utilisation = stats.busy_server_s / (replicas * slots * duration)
    assert stats.dropped == 0
    assert stats.mean_s == pytest.approx(fluid.mean_s, rel=0.05)
    assert utilisation == pytest.approx(fluid.utilisation, abs=0.03)
    assert stats.p99_s == pytest.approx(fluid.p99_s, rel=0.25)


def test_same_seed_same_latencies() -> None:
    a = serve_requests(poisson(200, 120, 3), 2, 4, 0.04, seed=9)
    b = serve_requests(poisson(200, 120, 3), 2, 4, 0.04, seed=9)
    assert a == b


def test_bigger_requests_take_longer() -> None:
    small = serve_requests(poisson(10, 600, 4, size=1.0), 4, 4, 0.04, seed=5)
    big = serve_requests(poisson(10, 600, 4, size=3.0), 4, 4, 0.04, seed=5)
    assert big.mean_s == pytest.approx(3 * small.mean_s, rel=0.15)


def test_no_replica_drops_everything() -> None:
    stats = serve_requests(poisson(50, 10, 6), 0, 4, 0.04)
    assert stats.served == 0
    assert stats.dropped == stats.arrived > 0


def test_overload_drops_requests_that_would_wait_past_the_timeout() -> None:
    # capacity 1 x 1 / 0.1 s = 10 rps against 50 rps: the queue grows until waits pass 5 s
    stats = serve_requests(poisson(50, 300, 7), 1, 1, 0.1, seed=8, timeout_s=5.0)
    assert stats.dropped > 0
    assert stats.served + stats.dropped == stats.arrived
    assert stats.p99_s <= 5.0 + 2.0  # waited at most the timeout, plus service

"""Queueing model of a pool of replicas (fluid fidelity): utilisation, latency, overflow."""

from __future__ import annotations

import math
from dataclasses import dataclass

P99_OF_MEAN = 4.6
"""p99/mean of an exponential sojourn time (-ln 0.01)."""
MAX_UTILISATION = 0.98
"""Above this the queue is treated as saturated: the excess is dropped, not queued forever."""


@dataclass(frozen=True, slots=True)
class PoolLoad:
    """How a pool of replicas copes with an offered rate."""

    utilisation: float
    served_rps: float
    dropped_rps: float
    mean_s: float
    p99_s: float
    in_flight: float
    """Requests in the system (Little's law: served rate x mean time)."""


def pool_load(rate_rps: float, replicas: int, service_s: float, slots: int) -> PoolLoad:
    """M/M/c-style load of ``replicas`` replicas with ``slots`` concurrent requests each.

    Waiting time uses Sakasegawa's approximation for M/M/c; past ``MAX_UTILISATION`` the
    excess rate is dropped. With no replica every request is dropped.
    """
    if rate_rps <= 0:
        return PoolLoad(0.0, 0.0, 0.0, service_s, service_s * P99_OF_MEAN, 0.0)
    if replicas <= 0:
        return PoolLoad(math.inf, 0.0, rate_rps, math.inf, math.inf, 0.0)
    servers = replicas * slots
    capacity = servers / service_s
    served = min(rate_rps, capacity * MAX_UTILISATION)
    rho = served / capacity
    wait = service_s * rho ** math.sqrt(2 * (servers + 1)) / (servers * (1 - rho))
    mean = service_s + wait
    return PoolLoad(
        rate_rps / capacity, served, rate_rps - served, mean, mean * P99_OF_MEAN, served * mean
    )

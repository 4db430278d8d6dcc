"""Per-request fidelity: a discrete-event queue of individual requests over a replica pool.

Requests wait FIFO for one of ``replicas x slots`` servers; a request's service time is
exponential with mean ``service_s x size`` (so request traces with token counts take longer
where their requests are bigger). A request that would wait longer than ``timeout_s`` is
dropped. Used for request traces and to check the fluid model on short slices.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass

from autoops.sim.api import Request


@dataclass(frozen=True, slots=True)
class RequestStats:
    """What the pool did with a stream of requests."""

    arrived: int
    served: int
    dropped: int
    mean_s: float
    p50_s: float
    p99_s: float
    busy_server_s: float
    """Total server time spent serving (utilisation x servers x duration)."""


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    k = min(int(q * len(ordered)), len(ordered) - 1)
    return ordered[k]


def serve_requests(
    requests: Iterable[Request],
    replicas: int,
    slots: int,
    service_s: float,
    seed: int = 0,
    timeout_s: float = 30.0,
) -> RequestStats:
    """Serve ``requests`` (in arrival order) with FIFO multi-server queueing; return the stats."""
    rng = random.Random(seed)
    servers = max(replicas * slots, 0)
    free_at: list[float] = [0.0] * servers
    heapq.heapify(free_at)
    latencies: list[float] = []
    arrived = dropped = 0
    busy = 0.0
    for request in requests:
        arrived += 1
        if servers == 0:
            dropped += 1
            continue
        earliest = free_at[0]
        start = max(request.time, earliest)
        if start - request.time > timeout_s:
            dropped += 1
            continue
        service = rng.expovariate(1.0 / (service_s * request.size))
        heapq.heapreplace(free_at, start + service)
        busy += service
        latencies.append(start + service - request.time)
    latencies.sort()
    served = len(latencies)
    return RequestStats(
        arrived=arrived,
        served=served,
        dropped=dropped,
        mean_s=sum(latencies) / served if served else 0.0,
        p50_s=_quantile(latencies, 0.5),
        p99_s=_quantile(latencies, 0.99),
        busy_server_s=busy,
    )

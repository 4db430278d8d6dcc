"""The contract's metrics, exported through Ray's metrics agent and tagged with version and region.

Each instance creates its own ``ray.serve.metrics`` objects (Serve adds the deployment, replica and
application tags), so create one per ingress replica. Tag dicts are built once per key and reused:
a request records a handful of metrics and each costs a few microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ray.serve import metrics as serve_metrics

from autoops.contract import (
    BREAKER_OPEN,
    CASCADE,
    CONFIDENCE,
    CONFIDENCE_BOUNDARIES,
    DEGRADED,
    FEEDBACK,
    IN_FLIGHT,
    LATENCY_BOUNDARIES_MS,
    LATENCY_MS,
    REQUESTS,
    SHADOW,
    TAG_REGION,
    TAG_VERSION,
)

_VR = (TAG_VERSION, TAG_REGION)


def _keys(*names: str) -> Any:
    """Tag keys as Ray's metrics take them (its stubs say ``tuple[str]``, meaning any length)."""
    return tuple(names)


def _flag(value: bool) -> str:
    return "true" if value else "false"


class ServingMetrics:
    """Records what the ingress sees, in the names and tags autoops/contract.py fixes."""

    def __init__(self) -> None:
        self._requests = serve_metrics.Counter(
            REQUESTS,
            description="Calls from the ingress to a model version, by outcome (ok|error).",
            tag_keys=_keys(*_VR, "outcome"),
        )
        self._latency = serve_metrics.Histogram(
            LATENCY_MS,
            description="End-to-end latency at the ingress (queueing included), ms.",
            boundaries=list(LATENCY_BOUNDARIES_MS),
            tag_keys=_keys(*_VR),
        )
        self._confidence = serve_metrics.Histogram(
            CONFIDENCE,
            description="Top-class probability of each answered row.",
            boundaries=list(CONFIDENCE_BOUNDARIES),
            tag_keys=_keys(*_VR),
        )
        self._cascade = serve_metrics.Counter(
            CASCADE,
            description="Cascade decisions of the small version: escalated (true|false).",
            tag_keys=_keys(*_VR, "escalated"),
        )
        self._shadow = serve_metrics.Counter(
            SHADOW,
            description="Mirrored requests compared with the client's answer: agreed (true|false).",
            tag_keys=_keys(*_VR, "agreed"),
        )
        self._breaker = serve_metrics.Gauge(
            BREAKER_OPEN,
            description="1 while the ingress's breaker keeps traffic off the version.",
            tag_keys=(TAG_VERSION,),
        )
        self._feedback = serve_metrics.Counter(
            FEEDBACK,
            description="Labelled answers received through feedback: correct (true|false).",
            tag_keys=_keys(*_VR, "correct"),
        )
        self._in_flight = serve_metrics.Gauge(
            IN_FLIGHT,
            description="Requests in flight from the ingress to a version.",
            tag_keys=_keys(*_VR),
        )
        self._degraded = serve_metrics.Counter(
            DEGRADED,
            description="Requests answered by the small version because of overload.",
            tag_keys=(TAG_REGION,),
        )
        self._tags: dict[tuple[str, ...], dict[str, str]] = {}
        self._breaker_open: dict[str, bool] = {}

    def _vr(self, version: str, region: str, key: str = "", value: str = "") -> dict[str, str]:
        cache_key = (version, region, key, value)
        tags = self._tags.get(cache_key)
        if tags is None:
            tags = {TAG_VERSION: version, TAG_REGION: region}
            if key:
                tags[key] = value
            self._tags[cache_key] = tags
        return tags

    def call(self, version: str, region: str, ok: bool, latency_ms: float) -> None:
        """One call to a version: its outcome and the latency the client has seen so far."""
        self._requests.inc(1, self._vr(version, region, "outcome", "ok" if ok else "error"))
        self._latency.observe(latency_ms, self._vr(version, region))

    def confidences(self, version: str, region: str, values: Iterable[float]) -> None:
        """The top-class probability of each row a version answered."""
        tags = self._vr(version, region)
        for value in values:
            self._confidence.observe(float(value), tags)

    def cascade(self, version: str, region: str, escalated: bool) -> None:
        """One cascade decision taken on the small version's answer."""
        self._cascade.inc(1, self._vr(version, region, "escalated", _flag(escalated)))

    def shadow(self, version: str, region: str, agreed: bool) -> None:
        """One mirrored request of the shadow version, compared with the client's answer."""
        self._shadow.inc(1, self._vr(version, region, "agreed", _flag(agreed)))

    def breaker(self, version: str, is_open: bool) -> None:
        """The breaker state of a version (exported when it changes, or first seen)."""
        if self._breaker_open.get(version) is is_open:
            return
        self._breaker_open[version] = is_open
        self._breaker.set(1 if is_open else 0, {TAG_VERSION: version})

    def feedback(self, version: str, region: str, correct: int, total: int) -> None:
        """Labels received for one answered request: how many rows were right."""
        if correct > 0:
            self._feedback.inc(correct, self._vr(version, region, "correct", "true"))
        if total - correct > 0:
            self._feedback.inc(total - correct, self._vr(version, region, "correct", "false"))

    def in_flight(self, version: str, region: str, count: int) -> None:
        """Requests in flight from this ingress replica to a version's deployment."""
        self._in_flight.set(count, self._vr(version, region))

    def degraded(self, region: str) -> None:
        """One request answered by the small version because of overload."""
        self._degraded.inc(1, {TAG_REGION: region})

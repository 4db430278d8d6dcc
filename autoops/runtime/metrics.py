"""The controller's own Prometheus metrics, kept in a registry of their own.

Every series is labelled by policy where it belongs to one, so one controller serving several
policies exports them side by side. Label values that come from the code (stages, action kinds,
outcomes) are checked, so a typo can never mint an unbounded family of series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest

from autoops.model import MUTATING_KINDS, ActionKind
from autoops.ports import Outcome

__all__ = ["CONTENT_TYPE", "OUTCOMES", "STAGES", "ControllerMetrics"]

STAGES: tuple[str, ...] = ("observe", "detect", "decide", "act", "audit", "record")
"""The stages of one pass whose duration is exported (``record`` only runs with ``--record``)."""
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
"""What applying an action can come to: unchanged, updated, failed, skipped."""
ACTION_KINDS: tuple[str, ...] = tuple(k.value for k in ActionKind)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The content type of ``ControllerMetrics.render()``: Prometheus text format 0.0.4."""

STAGE_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Stage durations, seconds: from a cached read (ms) to a slow actuator call (tens of s)."""


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


class ControllerMetrics:
    """Ticks, stage durations, decisions, actions, metrics health, audit head and leadership."""

    def __init__(self, namespace: str = "autoops") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        """The registry holding only these metrics (never prometheus_client's global one)."""
        ns, reg = namespace, self.registry
        self._ticks = Counter(
            "ticks", "Control-loop passes started.", ["policy"], namespace=ns, registry=reg
        )
        self._stage = Histogram(
            "stage_duration_seconds",
            "Duration of each stage of a control-loop pass.",
            ["policy", "stage"],
            namespace=ns,
            registry=reg,
            buckets=STAGE_BUCKETS_S,
        )
        self._decisions = Counter(
            "decisions", "Decisions made by the core.", ["policy"], namespace=ns, registry=reg
        )
        self._actions = Counter(
            "actions",
            "Actions applied, by kind and outcome.",
            ["policy", "action", "outcome"],
            namespace=ns,
            registry=reg,
        )
        self._last_read = Gauge(
            "last_metrics_read_timestamp_seconds",
            "Unix time of the last successful read of the serving metrics.",
            ["policy"],
            namespace=ns,
            registry=reg,
        )
        self._outage = Gauge(
            "metrics_outage",
            "1 while the serving metrics cannot be read (the controller holds), else 0.",
            ["policy"],
            namespace=ns,
            registry=reg,
        )
        self._paused = Gauge(
            "paused", "1 while the controller is paused, else 0.", namespace=ns, registry=reg
        )
        self._audit_seq = Gauge(
            "audit_head_seq",
            "Sequence number of the newest audit record.",
            namespace=ns,
            registry=reg,
        )
        self._audit_hash = Info(
            "audit_head", "Hash of the newest audit record.", namespace=ns, registry=reg
        )
        self._leader = Gauge(
            "leader",
            "1 while this controller holds the policy's lease, else 0.",
            ["policy"],
            namespace=ns,
            registry=reg,
        )
        self._known: set[str] = set()

    def _policy(self, policy: str) -> str:
        """Create a policy's series at zero the first time it is seen, so rates start at 0."""
        if not policy:
            raise ValueError("policy name must not be empty")
        if policy not in self._known:
            self._known.add(policy)
            self._ticks.labels(policy)
            self._decisions.labels(policy)
            self._outage.labels(policy)
            for kind in sorted(MUTATING_KINDS):
                for outcome in OUTCOMES:
                    self._actions.labels(policy, kind.value, outcome)
        return policy

    def tick(self, policy: str) -> None:
        """Count one control-loop pass of ``policy``."""
        self._ticks.labels(self._policy(policy)).inc()

    def observe_stage(self, policy: str, stage: str, seconds: float) -> None:
        """Record how long one stage of a pass took."""
        _check(stage, STAGES, "stage")
        self._stage.labels(self._policy(policy), stage).observe(max(0.0, seconds))

    @contextmanager
    def stage_timer(self, policy: str, stage: str) -> Iterator[None]:
        """Time the block as one stage of a pass (recorded even when the block raises)."""
        _check(stage, STAGES, "stage")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_stage(policy, stage, time.perf_counter() - start)

    def decision(self, policy: str) -> None:
        """Count one decision made for ``policy``."""
        self._decisions.labels(self._policy(policy)).inc()

    def action(self, policy: str, kind: str, outcome: str) -> None:
        """Count one action of ``kind`` (an ActionKind value) that came to ``outcome``."""
        _check(kind, ACTION_KINDS, "action kind")
        _check(outcome, OUTCOMES, "outcome")
        self._actions.labels(self._policy(policy), kind, outcome).inc()

    def metrics_read(self, policy: str, at: float) -> None:
        """Record the unix time of the last successful read of ``policy``'s metrics."""
        self._last_read.labels(self._policy(policy)).set(at)

    def outage(self, policy: str, on: bool) -> None:
        """Say whether ``policy``'s metrics are in an outage."""
        self._outage.labels(self._policy(policy)).set(1 if on else 0)

    def paused(self, on: bool) -> None:
        """Say whether the controller is paused."""
        self._paused.set(1 if on else 0)

    def audit_head(self, seq: int, digest: str) -> None:
        """Publish the audit chain's head, so a cut tail shows against what was exported."""
        self._audit_seq.set(seq)
        self._audit_hash.info({"hash": digest, "seq": str(seq)})

    def leader(self, policy: str, on: bool) -> None:
        """Say whether this controller holds ``policy``'s lease."""
        self._leader.labels(self._policy(policy)).set(1 if on else 0)

    def render(self) -> bytes:
        """Every metric in Prometheus text format 0.0.4 (content type ``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def render_for(self, accept: str | None) -> tuple[bytes, str]:
        """Every metric in the format an ``Accept`` header asks for, with its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

"""The closed loop through a rollout, on real parts: Ray Serve, a real Prometheus, the controller.

A healthy canary climbs every step and is promoted; a load spike during a canary is met by
scaling out, the canary is not blamed for it and goes on; a fault on every version is
escalated (to a webhook on 127.0.0.1) and not blamed on the canary. One stack for the module;
a fresh controller, store and routing table (faults included) per test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autoops.contract import VersionFaults
from autoops.core.state import Phase
from autoops.demo.story import BASE_RATE
from autoops.policy.loader import load_policy
from autoops.regions.loader import load_catalogue
from tests.integration import e2e
from tests.integration.e2e import (
    Controlled,
    StartControl,
    compressed_policy,
    table,
    wait_for,
)

pytestmark = pytest.mark.integration

stack = e2e.stack
control = e2e.control


# --------------------------------------------------------------------------- audit helpers


def canary_weights(c: Controlled, version: str = "v2") -> list[float]:
    """The canary weight of every traffic split the controller applied, in order."""
    return [
        float(b["action"]["weights"].get(version, 0.0))
        for b in c.outcomes()
        if b["outcome"] == "updated" and b["action"]["kind"] == "set_traffic"
    ]


def routing_intent_kinds(c: Controlled) -> list[str]:
    """The routing actions (traffic, promote, rollback) of every intent record, in order."""
    kinds = ("set_traffic", "promote", "rollback")
    return [
        a["kind"]
        for r in c.running.store.records(c.policy_name, kinds=["intent"])
        for a in r.body["actions"]
        if a["kind"] in kinds
    ]


def rollbacks(c: Controlled) -> list[Any]:
    """The intent records of every rollback, with their reasons and evidence."""
    return [
        r
        for r in c.running.store.records(c.policy_name, kinds=["intent"])
        if any(a["kind"] == "rollback" for a in r.body["actions"])
    ]


def why_rolled_back(c: Controlled) -> str:
    """Each rollback's reasons and evidence, in full, for a failure message."""
    return json.dumps(
        [
            {"reasons": r.body.get("reasons"), "evidence": r.body.get("evidence")}
            for r in rollbacks(c)
        ],
        default=str,
    )


def total_replicas(c: Controlled) -> int:
    """The stable version's replicas over every region with traffic, as Serve holds them."""
    return int(sum(c.applied().replicas.values()))


# --------------------------------------------------------------------------- a webhook


@dataclass
class Webhook:
    """A Slack-compatible webhook on 127.0.0.1 that keeps every JSON message it receives."""

    server: ThreadingHTTPServer
    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Where the controller posts."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/autoops"

    def texts(self) -> list[str]:
        """The fallback text of every message received so far."""
        with self.lock:
            return [str(m.get("text", "")) for m in self.messages]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook receiver on a free loopback port, for one test."""
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                received.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(server, received, lock)
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- the tests


def test_a_healthy_canary_climbs_every_step_and_is_promoted(
    control: StartControl, tmp_path: Path
) -> None:
    steps = [25, 50, 75]
    policy = compressed_policy(tmp_path, rollout={"steps": steps})
    assert load_policy(policy, load_catalogue()).rollout.min_requests >= 25
    # v2 is deployed beside v1, with no traffic and no fault: the controller picks it up.
    c = control(table(), policy=policy)
    wait_for(lambda: bool({"promote", "rollback"} & set(c.applied_kinds())), 180, "a promotion")

    assert "rollback" not in c.applied_kinds(), why_rolled_back(c)
    assert canary_weights(c) == [s / 100 for s in steps]
    kinds = routing_intent_kinds(c)
    assert kinds == ["set_traffic"] * len(steps) + ["promote"], kinds
    routing = c.routing()
    assert routing.stable_version == "v2"
    assert routing.weights.get("v2") == 1.0
    assert sum(w for v, w in routing.weights.items() if v != "v2") == 0.0
    c.settle()
    rollout = c.reconciler.state.rollout
    assert rollout.stable_version == "v2"
    assert rollout.phase is Phase.IDLE
    assert c.running.store.verify().ok


def test_a_load_spike_during_a_canary_scales_out_and_the_canary_goes_on(
    control: StartControl, tmp_path: Path
) -> None:
    interval = 12
    policy = compressed_policy(
        tmp_path, rollout={"steps": [25, 50], "analysis_interval_s": interval}
    )
    loaded = load_policy(policy, load_catalogue())
    max_replicas = loaded.scaling.max_replicas
    # Every version is 120 ms heavier, as a real model would be: load then needs replicas.
    heavy = VersionFaults(extra_latency_ms=120)
    c = control(table({"v1": heavy, "v2": heavy}), policy=policy)
    wait_for(lambda: 0.25 in canary_weights(c), 90, "the canary's first step")
    before = total_replicas(c)
    assert before < max_replicas, "room to scale out is left when the spike comes"
    seen: list[int] = []

    def scaled_out() -> bool:
        seen.append(total_replicas(c))
        return seen[-1] > before or "rollback" in c.applied_kinds()

    c.load.rate = BASE_RATE * 4
    wait_for(scaled_out, 90, f"replicas to rise above {before} under load x4", c.last_reasons)
    assert "rollback" not in c.applied_kinds(), why_rolled_back(c)
    assert c.reconciler.state.rollout.canary_version == "v2", "the canary is still going"

    # The spike goes on for longer than failed checks would take to roll the canary back. On
    # 2 cores x4 load saturates the CPU, so every version may stay over the latency SLO at the
    # maximum replicas: the canary must not be blamed for that (held, or stepping up when the
    # replicas absorb the spike).
    spike_passes = 2 * loaded.rollout.failed_check_limit * interval / loaded.tick_interval_s
    counted: list[object] = []

    def spike_lasted() -> bool:
        seen.append(total_replicas(c))
        report = c.reconciler.last
        if not counted or report is not counted[-1]:
            counted.append(report)
        return len(counted) > spike_passes or "rollback" in c.applied_kinds()

    wait_for(spike_lasted, 180, f"{spike_passes:.0f} passes under the spike", c.last_reasons)
    assert "rollback" not in c.applied_kinds(), why_rolled_back(c)
    assert c.reconciler.state.rollout.canary_version in ("v2", None)

    c.load.rate = BASE_RATE

    def canary_went_on() -> bool:
        seen.append(total_replicas(c))
        kinds = set(c.applied_kinds())
        return bool({"promote", "rollback"} & kinds) or max(canary_weights(c)) > 0.25

    wait_for(
        canary_went_on, 120, "the canary to step up or be promoted after the spike", c.last_reasons
    )
    assert "rollback" not in c.applied_kinds(), why_rolled_back(c)
    assert "set_replicas" in c.applied_kinds()
    assert max(seen) <= max_replicas, seen


def test_a_fault_on_every_version_is_escalated_and_not_rolled_back(
    control: StartControl, webhook: Webhook, tmp_path: Path
) -> None:
    policy = compressed_policy(tmp_path)
    rollout = load_policy(policy, load_catalogue()).rollout
    failing = VersionFaults(error_rate=0.3)
    c = control(table({"v1": failing, "v2": failing}), policy, webhook_url=webhook.url)
    try:
        wait_for(lambda: 0.25 in canary_weights(c), 90, "the canary's first step")

        def fleet_alerts() -> list[str]:
            return [t for t in webhook.texts() if "every version is failing" in t]

        def fleet_passes() -> int:
            """Passes whose decision alerted that every version fails (from the audit log)."""
            decisions = c.running.store.records(c.policy_name, kinds=["decision"])
            return sum(
                any("every version is failing" in a["message"] for a in r.body["alerts"])
                for r in decisions
            )

        wait_for(lambda: bool(fleet_alerts()), 90, "an alert that every version fails")
        # Keep watching for longer than failed checks would take to roll the canary back.
        first = fleet_passes()
        passes = 3 * rollout.failed_check_limit * rollout.analysis_interval_s / 2
        wait_for(
            lambda: fleet_passes() >= first + passes or "rollback" in c.applied_kinds(),
            120,
            f"{passes:.0f} more passes that see the fault on every version",
        )
        # The condition lasted many passes; people were told once (repeats are suppressed).
        assert len(fleet_alerts()) == 1, fleet_alerts()
        assert "rollback" not in c.applied_kinds(), why_rolled_back(c)
        assert not any("rolled back" in t for t in webhook.texts())
        state = c.reconciler.state.rollout
        assert state.canary_version == "v2"
        assert state.phase is Phase.PROGRESSING
        assert c.routing().weights.get("v2", 0.0) > 0.0
        decisions = c.running.store.records(c.policy_name, kinds=["decision"])
        assert any(
            "every version is failing" in a["message"] for r in decisions for a in r.body["alerts"]
        )
    finally:
        c.stop()

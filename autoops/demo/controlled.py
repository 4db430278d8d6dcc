"""The controller on a local stack, in a thread: what the demo, the live bench and e2e tests run.

``StackController`` builds the controller as ``autoops run`` does (``runtime.wiring.build``)
against a :class:`~autoops.demo.stack.LocalStack`, with its own store, and runs its loop in a
daemon thread; ``start`` writes a first routing table and starts the caller's load in the order
that keeps the previous table's faults away from the new run's first requests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from autoops.adapters.carbon import SignalsSpec
from autoops.adapters.samples import HttpSampleSource
from autoops.contract import RoutingTable
from autoops.demo.stack import LocalStack
from autoops.regions.loader import load_catalogue
from autoops.runtime.wiring import Running, RunSettings, build

JOIN_TIMEOUT_S = 30.0
"""How long ``stop`` waits for the pass in flight to end."""


class Load(Protocol):
    """What ``start`` needs of a load generator."""

    def start(self) -> None:
        """Start sending."""


class StackController:
    """One policy's controller built on a local stack, run in a daemon thread."""

    def __init__(
        self,
        stack: LocalStack,
        policy: Path,
        store_path: Path,
        *,
        regions: Sequence[str] = ("eu-west", "eu-central"),
        signals: SignalsSpec | None = None,
        record: Path | None = None,
        webhook_url: str | None = None,
        thread_name: str = "autoops-controller",
    ) -> None:
        settings = RunSettings(
            policies=[policy],
            dashboard_url=stack.dashboard_url,
            metrics=stack.metrics,
            samples=HttpSampleSource(stack.http_url, stack.admin_token),
            signals=signals or SignalsSpec(source="static", regions=tuple(regions)),
            store_path=store_path,
            api_port=None,
            webhook_url=webhook_url,
            registry_root=stack.registry_root,
            record=record,
        )
        self.running: Running = build(settings, load_catalogue())
        self._thread = threading.Thread(
            target=self.running.controller.run, name=thread_name, daemon=True
        )
        self._stopped = False

    @property
    def reconciler(self) -> Any:
        """The one policy's reconciler (state, actuator, last pass)."""
        return self.running.controller.managed[0].reconciler

    @property
    def policy_name(self) -> str:
        """The policy's ``metadata.name``: the key of its records in the store."""
        return str(self.reconciler.policy.metadata.name)

    def start(self, table: RoutingTable | None = None, load: Load | None = None) -> None:
        """Write ``table`` to Serve, then start ``load``, then the controller's loop."""
        if table is not None:
            self.reconciler.actuator.write_routing(table)
        if load is not None:
            load.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for the pass in flight; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.running.controller.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=JOIN_TIMEOUT_S)

    def close(self) -> None:
        """Stop, then release the store, the metrics source and the rest of what it holds."""
        self.stop()
        self.running.close()

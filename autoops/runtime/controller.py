"""The long-running controller: ticks every policy on time, holds the lease, reloads policies.

One controller serves several policies. It only acts while it holds each policy's lease; a
second controller for the same policy stands by and takes over when the first stops renewing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoops.logging import get_logger
from autoops.model import Finding, FindingKind, Verdict
from autoops.policy.loader import load_policy
from autoops.runtime.loop import Reconciler
from autoops.store.lease import Lease
from autoops.yamlio import ConfigError

log = get_logger("autoops.controller")


@dataclass
class Managed:
    """One policy under control: its reconciler, its file (for hot reload) and its timing."""

    reconciler: Reconciler
    path: Path | None = None
    mtime: float | None = None
    next_due: float = 0.0
    leader: bool = False
    policy_error: str | None = None


@dataclass
class Controller:
    """Runs the reconcilers of several policies until stopped."""

    managed: list[Managed]
    lease: Lease | None = None
    holder: str = "autoops"
    lease_ttl_s: float = 15.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the control API's callbacks -------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Every policy's state and last pass, and who leads."""
        with self.lock:
            return {
                "holder": self.holder,
                "policies": [
                    {
                        **m.reconciler.status(),
                        "leader": m.leader,
                        "policy_file": str(m.path) if m.path else None,
                        "policy_error": m.policy_error,
                    }
                    for m in self.managed
                ],
            }

    def pause(self) -> None:
        """Stop acting (decisions are still made and audited)."""
        with self.lock:
            for m in self.managed:
                m.reconciler.paused = True
        log.info("paused")

    def resume(self) -> None:
        """Act again."""
        with self.lock:
            for m in self.managed:
                m.reconciler.paused = False
        log.info("resumed")

    def approve(self, approval_id: str) -> bool:
        """Approve a pending action (``POLICY.KIND``); False when no policy has that name."""
        policy = approval_id.split(".", 1)[0]
        with self.lock:
            for m in self.managed:
                if m.reconciler.name == policy:
                    m.reconciler.approvals.add(approval_id)
                    log.info("approved", approval=approval_id)
                    return True
        return False

    def external_alert(self, name: str, labels: dict[str, str]) -> int:
        """Turn a firing outside alert into an anomaly finding for its policy (or all)."""
        target = labels.get("autoops_policy") or labels.get("policy")
        count = 0
        with self.lock:
            for m in self.managed:
                if target in (None, m.reconciler.name):
                    m.reconciler.external.append(
                        Finding(
                            kind=FindingKind.ANOMALY,
                            detector="alertmanager",
                            verdict=Verdict.FAIL,
                            signal=name,
                            score=1.0,
                        )
                    )
                    count += 1
        return count

    def external_alerts(self, alerts: Sequence[Any]) -> int:
        """Findings for a batch of firing Alertmanager alerts (``ExternalAlert`` values)."""
        return sum(self.external_alert(a.name, dict(a.labels)) for a in alerts)

    # -- the loop ----------------------------------------------------------------------------
    def _reload(self, m: Managed) -> None:
        if m.path is None:
            return
        try:
            mtime = m.path.stat().st_mtime
        except OSError as exc:
            m.policy_error = f"{m.path}: {exc}"
            return
        if m.mtime is None:
            m.mtime = mtime
            return
        if mtime == m.mtime:
            return
        m.mtime = mtime
        try:
            policy = load_policy(m.path, m.reconciler.catalogue)
        except ConfigError as exc:
            m.policy_error = str(exc)
            log.error("policy_rejected", file=str(m.path), error=str(exc))
            return
        if policy.metadata.name != m.reconciler.name:
            m.policy_error = (
                f"{m.path}: metadata.name changed from {m.reconciler.name!r} to "
                f"{policy.metadata.name!r}; restart the controller to rename a policy"
            )
            log.error("policy_rejected", file=str(m.path), error=m.policy_error)
            return
        m.reconciler.reload(policy)
        m.policy_error = None
        log.info("policy_reloaded", file=str(m.path))

    def _lead(self, m: Managed, now: float) -> bool:
        if self.lease is None:
            return True
        name = m.reconciler.name
        try:
            if m.leader:
                ok = self.lease.renew(name, self.holder, self.lease_ttl_s, now)
            else:
                ok = self.lease.acquire(name, self.holder, self.lease_ttl_s, now)
        except Exception as exc:  # a lease we cannot confirm is a lease we do not hold
            log.warning("lease_error", policy=name, error=str(exc))
            ok = False
        if ok and not m.leader:
            log.info("lease_acquired", policy=name, holder=self.holder)
            m.reconciler.load()
        elif not ok and m.leader:
            log.warning("lease_lost", policy=name, holder=self.holder)
        m.leader = ok
        m.reconciler.controller_metrics.leader(name, ok)
        return ok

    def run_once(self, now: float | None = None) -> int:
        """Tick every policy that is due; return how many ticked."""
        now = time.time() if now is None else now
        ticked = 0
        for m in self.managed:
            if now < m.next_due:
                continue
            with self.lock:
                self._reload(m)
                m.next_due = now + m.reconciler.policy.tick_interval_s
                if self._lead(m, now):
                    m.reconciler.tick()
                    ticked += 1
        return ticked

    def run(self, duration_s: float | None = None, max_ticks: int | None = None) -> int:
        """Tick until stopped, ``duration_s`` passes or ``max_ticks`` passes ran."""
        if self.lease is None:
            for m in self.managed:
                m.reconciler.load()
                m.leader = True
        start = time.time()
        ticks = 0
        while not self.stop_event.is_set():
            ticks += self.run_once()
            if max_ticks is not None and ticks >= max_ticks:
                break
            now = time.time()
            if duration_s is not None and now - start >= duration_s:
                break
            next_due = min(m.next_due for m in self.managed)
            self.stop_event.wait(max(0.05, min(next_due - now, 1.0)))
        self.release()
        return ticks

    def stop(self) -> None:
        """Ask the loop to stop after the current pass."""
        self.stop_event.set()

    def release(self) -> None:
        """Give up every lease this controller holds."""
        if self.lease is None:
            return
        for m in self.managed:
            if m.leader:
                try:
                    self.lease.release(m.reconciler.name, self.holder)
                except Exception as exc:
                    log.warning("lease_release_failed", error=str(exc))
                m.leader = False


def policy_paths(paths: Sequence[Path]) -> list[Path]:
    """The policy files named, each checked to exist."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"policy file not found: {', '.join(missing)}")
    return list(paths)

"""One control-loop pass for one policy: observe → detect → decide → act → audit.

Each stage is isolated (an exception is logged with the reconcile id and the pass goes on or
stops safely), timed, and exported. Actions are written ahead: the intent is recorded, with
the state it leads to, before anything is applied and each outcome after, so a controller
killed in between finds the dangling intent when it comes back, finishes it idempotently
instead of applying it twice, and goes on from the state that intent led to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from autoops.core.decide import decide
from autoops.core.state import ControllerState, DecisionContext
from autoops.logging import get_logger, new_reconcile_id, reconcile_context
from autoops.model import Action, Alert, Decision, Finding, Retrain, Snapshot
from autoops.policy.schema import Policy
from autoops.ports import (
    Actuator,
    ApplyResult,
    Clock,
    MetricsQuery,
    MetricsReading,
    MetricsSource,
    Outcome,
    SignalsProvider,
)
from autoops.regions.model import RegionCatalogue
from autoops.runtime.detection import Detection
from autoops.runtime.metrics import ControllerMetrics
from autoops.store.codec import action_from_json, action_to_json, state_from_json, state_to_json
from autoops.store.sqlite import SQLiteStore

log = get_logger("autoops.loop")

Notify = Callable[[str, str, Action, tuple[str, ...], dict[str, Any]], object]
"""Called for every applied action and alert: (policy, reconcile_id, action, reasons, evidence)."""
Retrainer = Callable[[Retrain, str], ApplyResult]
"""Starts the retrain remediation for an action (given the reconcile id)."""
Recorder = Callable[[DecisionContext, Decision], None]
"""Saves every pass's context (snapshot, findings, state) and decision (``--record``)."""


class SystemClock:
    """Wall-clock time, for the live shell."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()


@dataclass
class TickReport:
    """What one pass did, for the status API and the tests."""

    reconcile_id: str
    time: float
    decision: Decision | None = None
    results: tuple[ApplyResult, ...] = ()
    outage: bool = False
    error: str | None = None
    stage_errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Reconciler:
    """Drives one policy's target toward the core's decisions, one pass per ``tick()``."""

    policy: Policy
    catalogue: RegionCatalogue
    metrics: MetricsSource
    actuator: Actuator
    signals: SignalsProvider
    store: SQLiteStore
    controller_metrics: ControllerMetrics
    detection: Detection
    clock: Clock = field(default_factory=SystemClock)
    notify: Notify | None = None
    retrainer: Retrainer | None = None
    recorder: Recorder | None = None
    dry_run: bool = False
    paused: bool = False
    approvals: set[str] = field(default_factory=set)
    external: list[Finding] = field(default_factory=list)
    """Findings from outside (Alertmanager webhooks), used by the next pass."""
    state: ControllerState = field(default_factory=ControllerState)
    last: TickReport | None = None
    last_reading: MetricsReading | None = None

    @property
    def name(self) -> str:
        """The policy's name (the key of its state and audit records)."""
        return self.policy.metadata.name

    def load(self) -> None:
        """Resume from the store, and finish any action written ahead but never completed."""
        saved = self.store.load_state(self.name)
        if saved is not None:
            self.state = state_from_json(saved)
            log.info("state_resumed", policy=self.name, phase=self.state.rollout.phase.value)
        for intent in self.store.pending_intents(self.name):
            self._finish_intent(intent.seq, intent.body, intent.reconcile_id)

    def _finish_intent(self, seq: int, body: Any, reconcile_id: str) -> None:
        with reconcile_context(reconcile_id, policy=self.name, resumed_intent=seq):
            for raw in body.get("actions", []):
                action = action_from_json(raw)
                result = self._apply(action, reconcile_id)
                self._outcome(seq, reconcile_id, result, resumed=True)
            log.info("intent_finished", seq=seq)

    @contextmanager
    def _stage(self, stage: str, report: TickReport) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            report.stage_errors[stage] = f"{type(exc).__name__}: {exc}"
            log.exception("stage_failed", stage=stage)
        finally:
            self.controller_metrics.observe_stage(self.name, stage, time.perf_counter() - start)

    def _query(self) -> MetricsQuery:
        windows = tuple(
            sorted(
                {int(g.long_window_s) for g in self.policy.rollout.burn_rate_gates}
                | {int(g.short_window_s) for g in self.policy.rollout.burn_rate_gates}
            )
        )
        return MetricsQuery(
            application=self.policy.target.application,
            model=self.policy.target.deployment,
            window_s=max(3 * self.policy.tick_interval_s, 15.0),
            burn_windows_s=windows,
            stale_after_s=self.policy.remediations.metrics_stale_after_s,
        )

    def tick(self) -> TickReport:
        """One pass: observe, detect, decide, act, audit."""
        now = self.clock.now()
        rid = new_reconcile_id()
        report = TickReport(rid, now)
        self.controller_metrics.tick(self.name)
        with reconcile_context(rid, policy=self.name):
            snapshot: Snapshot | None = None
            with self._stage("observe", report):
                snapshot = self._observe(now)
            if snapshot is None:
                report.error = report.stage_errors.get("observe", "observe failed")
                log.warning("tick_skipped", reason=report.error)
                self.last = report
                return report
            report.outage = snapshot.metrics_outage
            findings: tuple[Any, ...] = ()
            with self._stage("detect", report):
                findings = self.detection.update(
                    snapshot, self.state.rollout.stable_version or self.policy.target.stable_version
                )
            if self.external:
                findings = (*findings, *self.external)
                self.external.clear()
            decision: Decision | None = None
            with self._stage("decide", report):
                ctx = DecisionContext(
                    now=now,
                    policy=self.policy,
                    snapshot=snapshot,
                    state=self.state,
                    catalogue=self.catalogue,
                    findings=findings,
                    approvals=frozenset(self.approvals),
                    paused=self.paused,
                )
                decision, new_state = decide(ctx)
                self.controller_metrics.decision(self.name)
            if decision is None:
                report.error = report.stage_errors.get("decide", "decide failed")
                self.last = report
                return report
            report.decision = decision
            if self.recorder is not None:
                with self._stage("record", report):
                    self.recorder(ctx, decision)
            with self._stage("act", report):
                report.results = self._act(decision, rid, new_state)
            with self._stage("audit", report):
                self.state = new_state
                self.store.save_state(self.name, state_to_json(new_state))
                head = self.store.head()
                if head is not None:
                    self.controller_metrics.audit_head(head[0], head[1])
            for result in report.results:
                if result.outcome is Outcome.UPDATED:
                    # An approval is good for one application of its action.
                    self.approvals.discard(f"{self.name}.{result.action.kind.value}")
        self.last = report
        return report

    def _observe(self, now: float) -> Snapshot:
        applied = self.actuator.read_applied()
        reading = self.metrics.read(self._query(), now)
        self.last_reading = reading
        if reading.outage:
            self.controller_metrics.outage(self.name, True)
        else:
            self.controller_metrics.outage(self.name, False)
            if reading.last_success_at is not None:
                self.controller_metrics.metrics_read(self.name, reading.last_success_at)
        try:
            signals = self.signals.at(now)
        except Exception as exc:  # missing signals are missing, not a stopped loop
            log.warning("signals_unavailable", error=str(exc))
            signals = ()
        return Snapshot(
            time=now,
            application=self.policy.target.application,
            deployment=self.policy.target.deployment,
            applied=applied,
            metrics=reading.metrics,
            signals=signals,
            metrics_outage=reading.outage,
            outage_reason=reading.reason,
            last_metrics_at=reading.last_success_at,
        )

    def _apply(self, action: Action, rid: str) -> ApplyResult:
        if isinstance(action, Retrain):
            if self.retrainer is None:
                return ApplyResult(action, Outcome.SKIPPED, "no retrainer configured")
            return self.retrainer(action, rid)
        return self.actuator.apply(action)

    def _outcome(self, seq: int, rid: str, result: ApplyResult, resumed: bool = False) -> None:
        self.store.append(
            self.name,
            rid,
            "outcome",
            {
                "intent_seq": seq,
                "action": action_to_json(result.action),
                "outcome": result.outcome.value,
                "detail": result.detail,
                "resumed": resumed,
            },
            self.clock.now(),
        )
        self.controller_metrics.action(self.name, result.action.kind.value, result.outcome.value)

    def _act(
        self, decision: Decision, rid: str, new_state: ControllerState
    ) -> tuple[ApplyResult, ...]:
        """Write the intent (with the state it leads to) ahead, apply, record each outcome."""
        mutating = decision.mutating
        alerts = [a for a in decision.actions if isinstance(a, Alert)]
        body: dict[str, Any] = {
            "actions": [action_to_json(a) for a in mutating],
            "alerts": [action_to_json(a) for a in alerts],
            "holds": [action_to_json(a) for a in decision.actions if a.kind.value == "hold"],
            "reasons": list(decision.reasons),
            "evidence": dict(decision.evidence),
            "guard_changes": [
                {
                    "guard": g.guard,
                    "action": g.action.value,
                    "before": g.before,
                    "after": g.after,
                    "reason": g.reason,
                }
                for g in decision.guard_changes
            ],
            "pending_approval": [action_to_json(a) for a in decision.pending_approval],
            "dry_run": self.dry_run or decision.dry_run,
        }
        if not mutating:
            if alerts or decision.pending_approval or body["holds"]:
                self.store.append(self.name, rid, "decision", body, self.clock.now())
                self._notify(rid, alerts, decision)
            return ()
        if self.dry_run or decision.dry_run:
            self.store.append(self.name, rid, "decision", body, self.clock.now())
            results = tuple(ApplyResult(a, Outcome.SKIPPED, "dry run") for a in mutating)
            for r in results:
                self.controller_metrics.action(self.name, r.action.kind.value, r.outcome.value)
            return results
        # The state the actions lead to is saved with their intent, in one transaction: a
        # controller killed before the outcomes finishes the intent on restart and goes on
        # from that state, never from the one before it (which would undo a promotion or a
        # rollback the resumed intent has just applied).
        intent = self.store.append(
            self.name, rid, "intent", body, self.clock.now(), state=state_to_json(new_state)
        )
        results_list: list[ApplyResult] = []
        for action in mutating:
            result = self._apply(action, rid)
            log.info(
                "action_applied",
                action=action.kind.value,
                outcome=result.outcome.value,
                detail=result.detail,
            )
            self._outcome(intent.seq, rid, result)
            results_list.append(result)
        self._notify(
            rid,
            [r.action for r in results_list if r.outcome is Outcome.UPDATED] + alerts,
            decision,
        )
        return tuple(results_list)

    def _notify(self, rid: str, actions: list[Any], decision: Decision) -> None:
        if self.notify is None:
            return
        for action in actions:
            try:
                self.notify(self.name, rid, action, decision.reasons, dict(decision.evidence))
            except Exception as exc:  # a notifier must never stop the loop
                log.warning("notify_failed", error=str(exc))

    def status(self) -> dict[str, Any]:
        """The state, the last pass and why it held, as JSON data."""
        rollout = self.state.rollout
        last = self.last
        reading = self.last_reading
        return {
            "policy": self.name,
            "paused": self.paused,
            "dry_run": self.dry_run,
            "phase": rollout.phase.value,
            "stable_version": rollout.stable_version,
            "canary_version": rollout.canary_version,
            "step": rollout.step,
            "metrics_outage": bool(reading.outage) if reading else None,
            "outage_reason": reading.reason if reading else None,
            "last_tick": None
            if last is None
            else {
                "reconcile_id": last.reconcile_id,
                "time": last.time,
                "reasons": list(last.decision.reasons) if last.decision else [],
                "actions": [
                    {"kind": r.action.kind.value, "outcome": r.outcome.value, "detail": r.detail}
                    for r in last.results
                ],
                "error": last.error,
                "stage_errors": dict(last.stage_errors),
            },
            "pending_approvals": sorted(self.approvals),
        }

    def reload(self, policy: Policy) -> None:
        """Apply a new, already validated policy from the next pass on."""
        self.policy = policy
        self.detection = replace(self.detection, policy=policy)

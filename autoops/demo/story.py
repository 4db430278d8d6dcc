"""``autoops demo``: a story played on a live stack while the controller heals it.

steady traffic → a canary with a hidden defect (wrong answers, 200 OK) is rolled back → a
traffic ramp is met by scaling out → a carbon spike moves traffic to a cleaner allowed region →
an input drift is detected and a retrained version is canaried in. Each chapter waits for its
remediation with a deadline, and the summary checks the counts against the audit log.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autoops.adapters.carbon import SignalsSpec, write_overrides
from autoops.contract import VersionFaults
from autoops.demo.controlled import StackController
from autoops.demo.frame import DecisionLine, DemoFrame
from autoops.demo.stack import LocalStack, start_stack
from autoops.logging import get_logger
from autoops.runtime.wiring import Running

if TYPE_CHECKING:
    from serve_apps.loadgen import Exchange

log = get_logger("autoops.demo")

POLICY_FILE = Path(__file__).with_name("policy.yaml")
REGIONS = ("eu-west", "eu-central")
STORIES = ("canary", "ramp", "carbon", "drift")
BASE_RATE = 12.0
"""Requests per second of steady traffic."""
ANSWERS_KEPT = 50_000
"""Answers a load driver remembers (the newest): over an hour at the demo's peak rate."""


@dataclass
class LoadTotals:
    """What the demo's load generator sent, answered and failed, over the whole run."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    feedback_sent: int = 0


class LoadDriver:
    """Bounded loopback load in short chunks, at a rate and input shift the story sets."""

    def __init__(
        self,
        url: str,
        token: str,
        chunk_s: float = 2.0,
        ledger: Path | None = None,
        start_row: int = 0,
    ) -> None:
        self.url = url
        self.token = token
        self.chunk_s = chunk_s
        self.start_row = start_row
        """The held-out row to send first: drivers run one after another pass on the next row,
        so the samples a drift test reads never hold the same row twice."""
        self.ledger = ledger
        """When given, one JSON line per chunk: what the load generator itself reported."""
        self.rate = BASE_RATE
        self.shift = 0.0
        self.totals = LoadTotals()
        self.answers: deque[tuple[float, str, str]] = deque(maxlen=ANSWERS_KEPT)
        """The newest answers: when (wall clock) each request was sent, the version that
        answered and its path (``breaker_fallback``: the version first called failed)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-load", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current chunk (bounded by its own time limit)."""
        self._stop.set()
        self._thread.join(timeout=self.chunk_s + 35)

    def _run(self) -> None:
        from serve_apps.loadgen import LoadConfig, run_load_sync

        seed = 0
        row = self.start_row
        while not self._stop.is_set():
            seed += 1
            requests = max(1, int(self.rate * self.chunk_s))
            start_row, row = row, row + requests
            config = LoadConfig(
                url=self.url,
                requests=requests,
                max_seconds=self.chunk_s * 3,
                concurrency=min(16, max(2, int(self.rate / 2))),
                rate_per_s=self.rate,
                input_shift=self.shift,
                feedback_fraction=1.0,
                token=self.token,
                seed=seed,
                timeout_s=10.0,
                start_row=start_row,
            )
            began = time.time()
            try:
                report = run_load_sync(config, on_answer=self._note_answer)
            except Exception as exc:  # a failed chunk is logged, never fatal
                log.warning("load_chunk_failed", error=str(exc))
                self._write_ledger({"chunk": seed, "error": str(exc)})
                continue
            feedback = sum(t.feedback_sent for t in report.versions.values())
            self._write_ledger(
                {
                    "chunk": seed,
                    "sent": report.sent,
                    "ok": report.ok,
                    "failed": report.failed,
                    "feedback_sent": feedback,
                    "rate": config.rate_per_s,
                    "shift": config.input_shift,
                    "started": began,
                    "ended": time.time(),
                }
            )
            with self._lock:
                self.totals.sent += report.sent
                self.totals.ok += report.ok
                self.totals.failed += report.failed
                self.totals.feedback_sent += feedback

    def answers_since(self, since: float) -> list[tuple[float, str, str]]:
        """(sent at, version, path) of the remembered answers to requests sent at ``since`` or
        later, in the order they came back."""
        return [answer for answer in list(self.answers) if answer[0] >= since]

    def _note_answer(self, exchange: Exchange) -> None:
        sent_at = time.time() - exchange.latency_ms / 1000.0
        self.answers.append((sent_at, exchange.response.version, exchange.response.path))

    def _write_ledger(self, line: dict[str, Any]) -> None:
        if self.ledger is None:
            return
        with self.ledger.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


@dataclass
class Chapter:
    """One incident of the story: what it does, and how we know it was healed."""

    name: str
    note: str
    start: Callable[[], None]
    healed: Callable[[], bool]
    timeout_s: float
    outcome: str = "pending"
    took_s: float | None = None


@dataclass
class DemoResult:
    """What the demo saw: chapters, actions, load counts, and where things are."""

    chapters: list[Chapter] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    load: LoadTotals = field(default_factory=LoadTotals)
    audit_ok: bool = False
    audit_records: int = 0
    store: Path | None = None
    report: Path | None = None
    source: str = ""

    @property
    def healed(self) -> bool:
        """True when every chapter was healed."""
        return all(c.outcome == "healed" for c in self.chapters)


def _write_overrides(path: Path, carbon: dict[str, float]) -> None:
    write_overrides(path, {r: {"carbon_intensity": v, "healthy": True} for r, v in carbon.items()})


class Demo:
    """Plays the story on a live stack and reports what the controller did."""

    def __init__(
        self,
        stories: Sequence[str] = STORIES,
        fault: bool = True,
        report_dir: Path | None = None,
        prefer_prometheus: bool = True,
    ) -> None:
        self.stories = [s for s in STORIES if s in stories]
        self.fault = fault
        self.workdir = Path(tempfile.mkdtemp(prefix="autoops-demo-"))
        self.report_dir = report_dir or self.workdir / "report"
        self.prefer_prometheus = prefer_prometheus
        self.stack: LocalStack | None = None
        self.running: Running | None = None
        self.load: LoadDriver | None = None
        self.overrides = self.workdir / "signals.yaml"
        self.controller: StackController | None = None
        self.started = time.time()
        self.chapter: Chapter | None = None

    # -- set-up and tear-down -------------------------------------------------------------
    def start(self) -> None:
        """Start the stack, the controller and the load."""
        _write_overrides(self.overrides, {"eu-west": 120.0, "eu-central": 60.0})
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / "recording.jsonl").unlink(missing_ok=True)
        self.stack = start_stack(
            self.workdir,
            {"small-v1": ["eu-west"], "v1": list(REGIONS)},
            prefer_prometheus=self.prefer_prometheus,
        )
        self.controller = StackController(
            self.stack,
            POLICY_FILE,
            self.workdir / "state" / "autoops.db",
            signals=SignalsSpec(source="static", regions=REGIONS, override_file=self.overrides),
            record=self.report_dir / "recording.jsonl",
            thread_name="demo-controller",
        )
        self.running = self.controller.running
        ledger = self.report_dir / "load-ledger.jsonl"
        ledger.unlink(missing_ok=True)
        self.load = LoadDriver(self.stack.http_url, self.stack.inference_token, ledger=ledger)
        self.controller.start(load=self.load)
        # --duration is the story's time: the clock starts once everything is up.
        self.started = time.time()

    def close(self) -> None:
        """Stop the load, the controller and the stack (also after Ctrl-C)."""
        if self.load is not None:
            self.load.stop()
        if self.controller is not None:
            self.controller.close()
        if self.stack is not None:
            self.stack.close()
            self.stack = None

    def _stop_controller(self) -> None:
        """Stop the controller's loop and wait for its pass in flight; safe to call twice."""
        if self.controller is not None:
            self.controller.stop()

    # -- what the story reads -------------------------------------------------------------
    def _reconciler(self) -> Any:
        assert self.controller is not None
        return self.controller.reconciler

    def _applied(self) -> Any:
        return self._reconciler().actuator.read_applied()

    def _audit_actions(self) -> list[dict[str, Any]]:
        assert self.running is not None
        out: list[dict[str, Any]] = []
        for record in self.running.store.records("demo", kinds=["outcome"]):
            out.append(
                {
                    "time": record.time,
                    "action": record.body["action"]["kind"],
                    "outcome": record.body["outcome"],
                    "detail": record.body.get("detail", ""),
                    "intent_seq": record.body.get("intent_seq"),
                }
            )
        return out

    def _applied_kinds(self) -> list[str]:
        return [a["action"] for a in self._audit_actions() if a["outcome"] == "updated"]

    def _set_faults(self, version: str, faults: VersionFaults | None) -> None:
        actuator = self._reconciler().actuator
        table = actuator.routing()
        current = dict(table.faults)
        if faults is None:
            if version not in current:
                return
            current.pop(version)
        else:
            current[version] = faults
        actuator.write_routing(table.model_copy(update={"faults": current}))

    # -- the chapters ---------------------------------------------------------------------
    def chapters(self) -> list[Chapter]:
        """The chapters the options ask for, in story order."""
        out: list[Chapter] = []
        start_rollbacks = [0]
        if "canary" in self.stories:

            def canary_start() -> None:
                actuator = self._reconciler().actuator
                start_rollbacks[0] = self._applied_kinds().count("rollback")
                if self.fault:
                    self._set_faults("v2", VersionFaults(wrong_answer_rate=0.6))
                actuator.deploy_version("v2", list(REGIONS))

            out.append(
                Chapter(
                    "bad canary",
                    "v2 answers 60% of requests wrongly, fast and 200 OK"
                    if self.fault
                    else "v2, a healthy candidate, is rolled out",
                    canary_start,
                    lambda: (
                        self._applied_kinds().count("rollback") > start_rollbacks[0]
                        if self.fault
                        else "promote" in self._applied_kinds()
                    ),
                    timeout_s=90,
                )
            )
        if "ramp" in self.stories:
            before = [0]

            def ramp_start() -> None:
                before[0] = sum(self._applied().replicas.values())
                assert self.load is not None
                self.load.rate = BASE_RATE * 4
                # The digits models answer in milliseconds; heavier requests make the ramp
                # need replicas, as it would for a real model.
                self._set_faults("v1", VersionFaults(extra_latency_ms=150))

            def ramp_healed() -> bool:
                return bool(sum(self._applied().replicas.values()) > before[0])

            out.append(
                Chapter(
                    "traffic ramp",
                    "load x4, each request 150 ms heavier",
                    ramp_start,
                    ramp_healed,
                    60,
                )
            )
        if "carbon" in self.stories:

            def carbon_start() -> None:
                assert self.load is not None
                self.load.rate = BASE_RATE
                self._set_faults("v1", None)
                _write_overrides(self.overrides, {"eu-west": 120.0, "eu-central": 650.0})

            def carbon_healed() -> bool:
                weights = self._applied().region_weights
                return bool(weights.get("eu-west", 0.0) > weights.get("eu-central", 0.0))

            out.append(
                Chapter(
                    "carbon spike",
                    "eu-central's grid jumps to 650 gCO2/kWh",
                    carbon_start,
                    carbon_healed,
                    45,
                )
            )
        if "drift" in self.stories:

            def drift_start() -> None:
                assert self.load is not None
                self.load.shift = 1.5

            def drift_healed() -> bool:
                versions = self._applied().versions
                return any("-r" in v for v in versions)

            out.append(
                Chapter(
                    "input drift",
                    "inputs shift by 1.5 standard deviations",
                    drift_start,
                    drift_healed,
                    120,
                )
            )
        return out

    def frame(self) -> DemoFrame:
        """What the live view shows now."""
        now = time.time()
        rec = self._reconciler()
        reading = rec.last_reading
        rows = reading.metrics if reading is not None else ()
        rate = sum(r.request_rate or 0.0 for r in rows) if rows else None
        p99s = [r.latency_p99_ms for r in rows if r.latency_p99_ms is not None]
        errs = [r.error_ratio for r in rows if r.error_ratio is not None]
        accs = [r.accuracy for r in rows if r.accuracy is not None]
        try:
            applied = self._applied()
        except Exception:
            applied = None
        signals = {s.region: s.carbon_intensity for s in rec.signals.at(now)}
        decisions = tuple(
            DecisionLine(a["time"], a["action"], a["outcome"], a["detail"])
            for a in self._audit_actions()[-8:]
        )
        load = self.load.totals if self.load else LoadTotals()
        policy = rec.policy
        return DemoFrame(
            time=now,
            elapsed_s=now - self.started,
            chapter=self.chapter.name if self.chapter else "steady traffic",
            chapter_note=self.chapter.note if self.chapter else "",
            source="prometheus" if self.stack and self.stack.source == "prometheus" else "scraper",
            request_rate=rate,
            p99_ms=max(p99s) if p99s else None,
            slo_p99_ms=policy.slo.latency_p99_ms,
            error_ratio=max(errs) if errs else None,
            slo_error_rate=policy.slo.error_rate,
            accuracy=min(accs) if accs else None,
            traffic=dict(applied.traffic) if applied else {},
            stable_version=rec.state.rollout.stable_version,
            canary_version=rec.state.rollout.canary_version,
            replicas=dict(applied.replicas) if applied else {},
            region_weights=dict(applied.region_weights) if applied else {},
            carbon=signals,
            allowed_regions=tuple(policy.intent.allowed_regions),
            decisions=decisions,
            sent=load.sent,
            failed=load.failed,
            outage=reading.reason if reading is not None and reading.outage else None,
        )

    def play(self, view: Any, duration_s: float, steady_s: float = 10.0) -> DemoResult:
        """Run the chapters in order, updating ``view`` every second; return the result."""
        result = DemoResult()
        chapters = self.chapters()
        result.chapters = chapters
        deadline = self.started + duration_s
        self._wait(view, min(steady_s, max(0.0, deadline - time.time())), lambda: False)
        for chapter in chapters:
            if time.time() >= deadline:
                chapter.outcome = "skipped (out of time)"
                continue
            self.chapter = chapter
            began = time.time()
            chapter.start()
            limit = min(chapter.timeout_s, deadline - time.time())
            if self._wait(view, limit, chapter.healed):
                chapter.outcome = "healed"
                chapter.took_s = time.time() - began
            else:
                chapter.outcome = "not healed in time"
        self.chapter = None
        return self.finish(result)

    def _wait(self, view: Any, seconds: float, done: Callable[[], bool]) -> bool:
        end = time.time() + max(0.0, seconds)
        while True:
            try:
                view.update(self.frame())
            except Exception as exc:  # the view is a window, never a reason to stop
                log.warning("frame_failed", error=str(exc))
            try:
                if done():
                    return True
            except Exception as exc:
                log.warning("check_failed", error=str(exc))
            if time.time() >= end:
                return False
            time.sleep(1.0)

    def finish(self, result: DemoResult) -> DemoResult:
        """Stop the load and the controller, then collect the actions, counts and the audit
        verdict (nothing can act after the summary is read)."""
        if self.load is not None:
            self.load.stop()
            result.load = self.load.totals
            self.load = None
        self._stop_controller()
        assert self.running is not None
        result.actions = self._audit_actions()
        result.audit_records = len(self.running.store.records())
        result.audit_ok = self.running.store.verify().ok
        result.store = self.running.store.path
        result.source = self.stack.source if self.stack else ""
        applied = Counter(a["action"] for a in result.actions if a["outcome"] == "updated")
        self.report_dir.mkdir(parents=True, exist_ok=True)
        result.report = self.report_dir / "demo-summary.yaml"
        result.report.write_text(
            yaml.safe_dump(
                {
                    "chapters": [
                        {"name": c.name, "outcome": c.outcome, "took_s": c.took_s}
                        for c in result.chapters
                    ],
                    "actions": result.actions,
                    "actions_applied": dict(sorted(applied.items())),
                    "load": vars(result.load),
                    "load_ledger": str(self.report_dir / "load-ledger.jsonl"),
                    "recording": str(self.report_dir / "recording.jsonl"),
                    "audit": {
                        "records": result.audit_records,
                        "verified": result.audit_ok,
                        "store": str(result.store),
                    },
                    "metrics_source": result.source,
                    "workdir": str(self.workdir),
                    "ray_session_dir": self.stack.session_dir if self.stack else "",
                },
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        return result

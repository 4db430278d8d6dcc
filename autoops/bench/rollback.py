"""``autoops bench rollback``: how fast the live loop rolls a failing canary back, what clients
lose meanwhile, and whether healthy canaries get through.

One local stack (Ray, Serve with v1 and v2 in two regions, a real Prometheus at a 1 s scrape, or
the built-in scraper where Prometheus is not installed) and, per trial, a fresh controller (its
own store) on a fresh routing table: v1 stable at 100%, v2 deployed at 0%, which the controller
starts as a canary. Every version carries a base service time (a real model is not a 2 ms
digits MLP), so "+30% latency" means something.

- gross: once v2 takes traffic, 20% of its requests fail (HTTP 500);
- subtle: once v2 takes traffic, its service time rises by 30%;
- healthy: v2 is as good as v1, N times in a row; any rollback is a false one.

Time to rollback, the goal's figure: from the moment the canary began failing (the send time of
the first request it failed, which the ingress answered from stable with path
``breaker_fallback``) to the rollback's outcome record in the audit log (weight 0 written to
Serve's config). Also reported: the time from the fault's write (confirmed in Serve's config,
which the ingress applies only once Serve pushes it, 1-7 s later) to the same record, and when
the last request reached the canary (the ingress applying the rollback). Failed share: the load
generator's own per-chunk counts over [fault written, rollback + 60 s].
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from autoops.bench.common import BenchResult, machine_info

GOAL_ROLLBACK_S = 15.0
"""The issue's goal: weight 0 within 15 s of the gross failure beginning."""
GOAL_FAILED_SHARE = 0.01
"""The issue's goal: under 1% of requests failed at the client in the window."""
REGIONS = ("eu-west", "eu-central")


@dataclass(frozen=True, slots=True)
class RollbackBenchConfig:
    """The trials to run and the load to run them under."""

    healthy_canaries: int = 10
    gross_error_rate: float = 0.2
    subtle_latency_increase: float = 0.3
    base_latency_ms: float = 40.0
    window_after_s: float = 60.0
    rate_per_s: float = 12.0
    rollback_timeout_s: float = 120.0
    promote_timeout_s: float = 180.0
    max_latency_increase: float = 0.2
    """The bench policy's canary latency limit (the demo policy's otherwise)."""
    fast_rollback_burn_rate: float = 14.4
    prefer_prometheus: bool = True


def bench_policy(config: RollbackBenchConfig, directory: Path) -> Path:
    """The demo policy (compressed timers) with the bench's latency limit and fast-burn gate."""
    from autoops.demo.story import POLICY_FILE

    data = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    data["metadata"]["name"] = "bench-rollback"
    data["rollout"]["max_latency_increase"] = config.max_latency_increase
    # The fast-rollback gate of the shipped canary-latency example (14.4x burn, SRE workbook),
    # over windows that fit a 1 s scrape.
    data["rollout"]["fast_rollback_burn_rate"] = config.fast_rollback_burn_rate
    data["rollout"]["burn_rate_gates"] = [
        {"long_window_s": 60, "short_window_s": 10, "max_burn_rate": config.fast_rollback_burn_rate}
    ]
    path = directory / "bench-rollback-policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def failed_share(ledger: Path, start: float, end: float) -> tuple[int, int]:
    """(sent, failed) over the load chunks that overlap [start, end], from the ledger."""
    sent = failed = 0
    for line in ledger.read_text(encoding="utf-8").splitlines():
        chunk = json.loads(line)
        if "error" in chunk or chunk["ended"] < start or chunk["started"] > end:
            continue
        sent += int(chunk["sent"])
        failed += int(chunk["failed"])
    return sent, failed


class _RowCursor:
    """Where the next trial's load starts in the held-out rows: after the last trial's."""

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        """The row the next trial starts at."""
        return self.next

    def sent(self, count: int) -> None:
        """Move past the ``count`` rows a trial sent."""
        self.next += count


class _Trial:
    """A fresh controller on a fresh table, with load, for one canary."""

    def __init__(
        self, stack: Any, policy: Path, workdir: Path, name: str, rate: float, rows: _RowCursor
    ) -> None:
        from autoops.demo.controlled import StackController
        from autoops.demo.story import LoadDriver

        self.controller = StackController(
            stack, policy, workdir / f"{name}.db", regions=REGIONS, thread_name=f"bench-{name}"
        )
        self.running = self.controller.running
        self.reconciler: Any = self.controller.reconciler
        self.ledger = workdir / f"{name}-load.jsonl"
        self.load = LoadDriver(
            stack.http_url, stack.inference_token, ledger=self.ledger, start_row=rows.take()
        )
        self.load.rate = rate
        self._rows = rows

    def start(self, table: Any) -> None:
        """Write the trial's table, then start the load and the controller."""
        self.controller.start(table, self.load)

    def applied(self, kind: str) -> float | None:
        """When the candidate v2 was first promoted or rolled back (``kind``), if it was."""
        name = self.reconciler.policy.metadata.name
        for record in self.running.store.records(name, kinds=["outcome"]):
            action = record.body["action"]
            about = action.get("version", action.get("from_version"))
            if record.body["outcome"] == "updated" and action["kind"] == kind and about == "v2":
                return float(record.time)
        return None

    def rollback_reasons(self) -> list[str]:
        """The reasons recorded with each rollback intent (why the controller rolled back)."""
        name = self.reconciler.policy.metadata.name
        return [
            reason
            for record in self.running.store.records(name, kinds=["intent"])
            if any(a["kind"] == "rollback" for a in record.body["actions"])
            for reason in record.body.get("reasons", [])
        ]

    def canary_weight(self) -> float:
        """The candidate's weight in Serve's routing table now."""
        return float(self.reconciler.actuator.routing().weights.get("v2", 0.0))

    def set_faults(self, faults: dict[str, Any]) -> None:
        """Write ``faults`` into the routing table until Serve's config shows them."""
        actuator = self.reconciler.actuator
        for _ in range(10):
            table = actuator.routing()
            if dict(table.faults) == faults:
                return
            actuator.write_routing(table.model_copy(update={"faults": faults}))
        raise RuntimeError("the fault never stuck in the routing table")

    def close(self) -> None:
        """Stop the load and the controller."""
        self.load.stop()
        self._rows.sent(self.load.totals.sent)
        self.controller.close()


class _PassLog:
    """The controller's passes seen while waiting: when each began and ended (to the poll),
    and what it saw of the canary, relative to ``origin`` (where the reaction time goes)."""

    def __init__(self, trial: _Trial, origin: float) -> None:
        self._trial = trial
        self._origin = origin
        self._last: Any = None
        self.passes: list[dict[str, float | None]] = []

    def poll(self) -> None:
        """Note the controller's latest pass if it is new."""
        report = self._trial.reconciler.last
        if report is None or report is self._last:
            return
        self._last = report
        evidence = report.decision.evidence if report.decision is not None else {}

        def number(key: str) -> float | None:
            value = evidence.get(key)
            return round(float(value), 4) if isinstance(value, int | float) else None

        self.passes.append(
            {
                "began_s": round(report.time - self._origin, 2),
                "seen_s": round(time.time() - self._origin, 2),
                "canary_error_ratio": number("canary.error_ratio"),
                "canary_burn_rate": number("canary.burn_rate"),
                "failed_checks": number("rollout.failed_checks"),
            }
        )


def _first_canary_error(trial: _Trial, metrics: Any, start: float, end: float) -> float | None:
    """When Prometheus first saw a failed canary request (2 s rate at 1 s steps), if it can say.

    An upper bound on when the fault took effect: the ingress applies the routing table's faults
    once Serve has pushed it the new config, and its counters reach Prometheus a report and a
    scrape later.
    """
    from autoops.ports import MetricsQuery

    history = getattr(metrics, "history", None)
    if history is None:
        return None
    target = trial.reconciler.policy.target
    query = MetricsQuery(application=target.application, model=target.deployment, window_s=2.0)
    try:
        series = history(query, "error_ratio", start, end, 1.0)
    except Exception:  # the figure is optional; the trial's own result stands without it
        return None
    seen = [
        sample.timestamp
        for (version, _), samples in series.items()
        if version == "v2"
        for sample in samples
        if sample.value
    ]
    return min(seen) if seen else None


def failure_window(
    answers: list[tuple[float, str, str]], canary: str
) -> tuple[float | None, float | None]:
    """When the canary first failed a request and when the last request reached it.

    ``answers``: (sent at, version, path) per answered request, as a load driver keeps them.
    A request whose call failed is answered by the stable version with path
    ``breaker_fallback`` (the client never sees the failure), so the first such answer's send
    time is an upper bound on when the canary began failing, and the last request the canary
    answered, or failed, tells when the ingress stopped routing to it.
    """
    failed = [sent for sent, _, path in answers if path == "breaker_fallback"]
    reached = [
        sent for sent, version, path in answers if version == canary or path == "breaker_fallback"
    ]
    return (min(failed) if failed else None), (max(reached) if reached else None)


def _wait(condition: Callable[[], Any], timeout_s: float, poll_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    return None


def _base_table(config: RollbackBenchConfig) -> Any:
    from autoops.contract import CascadeConfig, RoutingTable, VersionFaults

    base = VersionFaults(extra_latency_ms=config.base_latency_ms)
    return RoutingTable(
        model="digits",
        stable_version="v1",
        weights={"v1": 1.0},
        region_weights=dict.fromkeys(REGIONS, 1.0),
        deployments={"small-v1": ["eu-west"], "v1": list(REGIONS), "v2": list(REGIONS)},
        # small-v1 is the cascade's small model (off here), never a rollout candidate.
        cascade=CascadeConfig(enabled=False, small_version="small-v1"),
        faults={"v1": base, "v2": base},
    )


def _faulty_trial(
    stack: Any,
    policy: Path,
    workdir: Path,
    config: RollbackBenchConfig,
    kind: str,
    rows: _RowCursor,
) -> dict[str, Any]:
    from autoops.contract import VersionFaults

    base = VersionFaults(extra_latency_ms=config.base_latency_ms)
    if kind == "gross":
        fault = VersionFaults(
            extra_latency_ms=config.base_latency_ms, error_rate=config.gross_error_rate
        )
    else:
        fault = VersionFaults(
            extra_latency_ms=config.base_latency_ms * (1 + config.subtle_latency_increase)
        )
    trial = _Trial(stack, policy, workdir, kind, config.rate_per_s, rows)
    try:
        trial.start(_base_table(config))
        if not _wait(lambda: trial.canary_weight() > 0, config.promote_timeout_s):
            return {"canary_started": False}
        trial.set_faults({"v1": base, "v2": fault})
        fault_live = time.time()
        passes = _PassLog(trial, fault_live)

        def rolled_back() -> float | None:
            passes.poll()
            return trial.applied("rollback")

        rolled_back_at = _wait(rolled_back, config.rollback_timeout_s)
        end = (rolled_back_at or time.time()) + config.window_after_s
        _wait(lambda: time.time() >= end, config.window_after_s + 5, poll_s=1.0)
        weight_after = trial.canary_weight()
        reasons = trial.rollback_reasons()
        first_error = _first_canary_error(
            trial, stack.metrics, fault_live, rolled_back_at or time.time()
        )
        failing_from, last_reached = failure_window(trial.load.answers_since(fault_live), "v2")
    finally:
        trial.close()
    sent, failed = failed_share(trial.ledger, fault_live, end)
    return {
        "canary_started": True,
        "rolled_back": rolled_back_at is not None,
        "time_to_rollback_s": None if rolled_back_at is None else rolled_back_at - fault_live,
        "first_failed_canary_request_s": _since(failing_from, fault_live),
        "time_from_first_failure_s": _since(rolled_back_at, failing_from),
        "last_canary_request_after_first_failure_s": _since(last_reached, failing_from),
        "first_error_in_prometheus_s": None if first_error is None else first_error - fault_live,
        "time_from_first_error_s": None
        if first_error is None or rolled_back_at is None
        else rolled_back_at - first_error,
        "canary_weight_after": weight_after,
        "rollback_reasons": reasons,
        "window_s": end - fault_live,
        "requests_in_window": sent,
        "failed_in_window": failed,
        "failed_share": failed / sent if sent else None,
        "passes_until_rollback": passes.passes,
    }


def _since(moment: float | None, origin: float | None) -> float | None:
    """Seconds from ``origin`` to ``moment`` (None when either is unknown)."""
    return None if moment is None or origin is None else round(moment - origin, 3)


def _healthy_trial(
    stack: Any, policy: Path, workdir: Path, config: RollbackBenchConfig, n: int, rows: _RowCursor
) -> dict[str, Any]:
    trial = _Trial(stack, policy, workdir, f"healthy-{n}", config.rate_per_s, rows)
    began = time.time()
    try:
        trial.start(_base_table(config))
        _wait(
            lambda: trial.applied("promote") or trial.applied("rollback"),
            config.promote_timeout_s,
        )
        promoted, rolled_back = trial.applied("promote"), trial.applied("rollback")
        reasons = trial.rollback_reasons()
    finally:
        trial.close()
    sent, failed = failed_share(trial.ledger, began, time.time())
    return {
        "promoted": promoted is not None,
        "rolled_back": rolled_back is not None,
        "time_to_promote_s": None if promoted is None else promoted - began,
        "rollback_reasons": reasons,
        "requests": sent,
        "failed": failed,
    }


def _healthy_summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    times = [t["time_to_promote_s"] for t in trials if t["time_to_promote_s"] is not None]
    return {
        "canaries": len(trials),
        "promoted": sum(t["promoted"] for t in trials),
        "false_rollbacks": sum(t["rolled_back"] for t in trials),
        "neither_in_time": sum(not t["promoted"] and not t["rolled_back"] for t in trials),
        "time_to_promote_s_median": statistics.median(times) if times else None,
        "time_to_promote_s_max": max(times) if times else None,
        "trials": trials,
    }


def _verdicts(gross: dict[str, Any], healthy: dict[str, Any]) -> dict[str, bool]:
    took = gross.get("time_from_first_failure_s")
    share = gross.get("failed_share")
    return {
        "gross_rollback_within_15_s": took is not None and took <= GOAL_ROLLBACK_S,
        "gross_failed_share_under_1_percent": share is not None and share < GOAL_FAILED_SHARE,
        "zero_false_rollbacks": healthy["false_rollbacks"] == 0,
    }


def run_rollback_bench(
    config: RollbackBenchConfig | None = None, progress: Callable[[str], None] | None = None
) -> BenchResult:
    """Start a local stack, run the gross, subtle and healthy trials, and shut it all down."""
    from autoops.demo.stack import start_stack

    config = config or RollbackBenchConfig()
    say = progress or (lambda _message: None)
    with (
        contextlib.redirect_stdout(sys.stderr),
        tempfile.TemporaryDirectory(prefix="autoops-bench-rollback-") as tmp,
    ):
        workdir = Path(tmp)
        policy = bench_policy(config, workdir)
        say("starting Ray, Serve and the metrics source")
        stack = start_stack(
            workdir,
            {"small-v1": ["eu-west"], "v1": list(REGIONS), "v2": list(REGIONS)},
            prefer_prometheus=config.prefer_prometheus,
        )
        try:
            say("gross fault: 20% errors on the canary")
            rows = _RowCursor()
            gross = _faulty_trial(stack, policy, workdir, config, "gross", rows)
            say("subtle fault: +30% latency on the canary")
            subtle = _faulty_trial(stack, policy, workdir, config, "subtle", rows)
            trials = []
            for n in range(config.healthy_canaries):
                say(f"healthy canary {n + 1}/{config.healthy_canaries}")
                trials.append(_healthy_trial(stack, policy, workdir, config, n, rows))
            source = stack.source
        finally:
            stack.close()
        policy_data = yaml.safe_load(policy.read_text(encoding="utf-8"))
    healthy = _healthy_summary(trials)
    return BenchResult(
        name="rollback",
        config={
            **asdict(config),
            "metrics_source": source,
            "scrape_interval_s": 1.0 if source == "prometheus" else None,
            "policy": {
                "tick_interval_s": policy_data["tick_interval_s"],
                "rollout": policy_data["rollout"],
            },
        },
        machine=machine_info(),
        results={
            "gross": gross,
            "subtle": subtle,
            "healthy": healthy,
            "goals": {
                "rollback_s": GOAL_ROLLBACK_S,
                "failed_share": GOAL_FAILED_SHARE,
                "false_rollbacks": 0,
            },
            "met": _verdicts(gross, healthy),
        },
        anchors={
            "flagger": {
                "reaction": "analysis interval x failed-check threshold",
                "example_interval_s": 60,
                "example_threshold": 5,
                "example_reaction_s": 300,
                "source": "Flagger docs, canary analysis (interval: 1m, threshold: 5)",
            }
        },
    )

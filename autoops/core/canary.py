"""Progressive delivery: judge the canary against the baseline and move the rollout one step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache

from autoops.core.aggregate import aggregate_version, error_noise, rows_by_version
from autoops.core.frozen import builder
from autoops.core.state import Phase, RolloutState
from autoops.model import (
    Action,
    Alert,
    Finding,
    FindingKind,
    Hold,
    Promote,
    Rollback,
    Snapshot,
    Verdict,
)
from autoops.policy.schema import Policy, Strategy


class Check(StrEnum):
    """The outcome of one canary analysis."""

    PASS = "pass"
    FAIL = "fail"
    CRITICAL = "critical"
    """A failure so clear that waiting for more failed checks only hurts users."""
    FLEET = "fleet"
    """Every version is failing: not the canary's fault."""
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Analysis:
    """One canary analysis: the outcome, why, and the numbers behind it."""

    check: Check
    reasons: tuple[str, ...]
    evidence: Mapping[str, float | str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RolloutStep:
    """What the rollout rule decided: actions, reasons, evidence, the new state, target traffic."""

    actions: tuple[Action, ...]
    reasons: tuple[str, ...]
    evidence: Mapping[str, float | str | None]
    state: RolloutState
    traffic: Mapping[str, float]
    shadow_version: str | None = None
    shadow_fraction: float = 0.0
    pending: tuple[tuple[str, Action], ...] = ()
    """(approval id, action) pairs waiting for a human."""


_step = builder(RolloutStep)
_analysis = builder(Analysis)


def approval_id(policy: Policy, action: Action) -> str:
    """A stable id for an action that waits for approval (the same action keeps its id)."""
    name = policy.metadata.name
    if isinstance(action, Promote):
        return f"{name}.promote.{action.version}"
    if isinstance(action, Rollback):
        return f"{name}.rollback.{action.from_version}"
    return f"{name}.{action.kind.value}"


P99_MIN_REQUESTS = 100
"""Canary requests in the window before its p99 is compared with the baseline's."""


def _burn(ratio: float | None, budget: float) -> float | None:
    return None if ratio is None else ratio / budget


def analyse(
    policy: Policy,
    snapshot: Snapshot,
    findings: tuple[Finding, ...],
    stable: str,
    canary: str,
    degraded: Mapping[str, str],
) -> Analysis:
    """Judge the canary against the stable baseline over the healthy regions."""
    grouped = rows_by_version(snapshot, frozenset(degraded))
    base = aggregate_version(grouped.get(stable, []))
    cand = aggregate_version(grouped.get(canary, []))
    rollout = policy.rollout
    slo = policy.slo
    budget = 1.0 - slo.availability
    evidence: dict[str, float | str | None] = {
        "canary.request_rate": cand.request_rate,
        "canary.error_ratio": cand.error_ratio,
        "canary.latency_p99_ms": cand.latency_p99_ms,
        "canary.accuracy": cand.accuracy,
        "canary.request_count": cand.request_count,
        "baseline.error_ratio": base.error_ratio,
        "baseline.latency_p99_ms": base.latency_p99_ms,
        "baseline.accuracy": base.accuracy,
    }
    if degraded:
        evidence["excluded_regions"] = ",".join(sorted(degraded))
    failures: list[str] = []
    fleet: list[str] = []
    critical = False

    relevant = [
        f
        for f in findings
        if f.kind is FindingKind.CANARY
        and f.version in (canary, None)
        and (f.region is None or f.region not in degraded)
    ]
    for f in relevant:
        evidence[f"judge.{f.signal}"] = f.verdict.value
        for stat, value in f.statistics.items():
            evidence[f"judge.{f.signal}.{stat}"] = value
        if f.verdict is Verdict.FAIL:
            failures.append(f"judge {f.detector} failed the canary on {f.signal}")
            critical = critical or f.critical

    shadow_mode = rollout.strategy is not Strategy.CANARY
    if shadow_mode:
        if cand.shadow_disagreement is None:
            if failures:
                return _verdict(failures, fleet, critical, evidence)
            return _analysis(Check.INCONCLUSIVE, ("no shadow comparison data yet",), evidence)
        evidence["canary.shadow_disagreement"] = cand.shadow_disagreement
        if cand.shadow_disagreement > rollout.max_shadow_disagreement:
            failures.append(
                f"shadow disagreement {cand.shadow_disagreement:.1%} > "
                f"{rollout.max_shadow_disagreement:.1%}"
            )
        return _verdict(failures, fleet, critical, evidence)

    # The core's own threshold rules need enough canary data; a judge's failure carries its
    # own statistics and stands without it.
    if cand.error_ratio is None or cand.request_rate is None:
        if failures:
            return _verdict(failures, fleet, critical, evidence)
        return _analysis(
            Check.INCONCLUSIVE, ("no canary metrics (missing data is not a pass)",), evidence
        )
    if cand.request_count is not None and cand.request_count < rollout.min_requests:
        if failures:
            return _verdict(failures, fleet, critical, evidence)
        return _analysis(
            Check.INCONCLUSIVE,
            (f"{cand.request_count:.0f} canary requests < {rollout.min_requests} needed",),
            evidence,
        )

    # Errors: absolute SLO plus relative to the baseline.
    base_err = base.error_ratio
    if cand.error_ratio > slo.error_rate:
        # When the baseline errs too, the canary is blamed only for errors beyond the baseline's
        # that sampling noise cannot explain.
        noise = (
            error_noise(cand.error_ratio, cand.request_count, base_err, base.request_count)
            if base_err is not None and base_err > slo.error_rate
            else 0.0
        )
        if noise:
            evidence["canary.error_noise"] = noise
        if (
            base_err is not None
            and base_err > slo.error_rate
            and (cand.error_ratio <= base_err + rollout.max_error_increase + noise)
        ):
            fleet.append(
                f"errors on every version (canary {cand.error_ratio:.1%}, baseline {base_err:.1%})"
            )
        elif base_err is None or cand.error_ratio > base_err + rollout.max_error_increase:
            failures.append(
                f"canary error ratio {cand.error_ratio:.2%} > SLO {slo.error_rate:.2%}"
                + ("" if base_err is None else f" and baseline {base_err:.2%}")
            )
    # Fast rollback: the canary alone burns the budget at a catastrophic rate.
    fast = rollout.fast_rollback_burn_rate
    if fast is not None:
        short = min(cand.burn_windows) if cand.burn_windows else None
        cand_ratio = cand.burn_windows.get(short) if short is not None else cand.error_ratio
        base_ratio = base.burn_windows.get(short) if short is not None else base_err
        cand_burn = _burn(cand_ratio, budget)
        base_burn = _burn(base_ratio, budget)
        evidence["canary.burn_rate"] = cand_burn
        evidence["baseline.burn_rate"] = base_burn
        if cand_burn is not None and cand_burn >= fast and (base_burn is None or base_burn < fast):
            critical = True
            failures.append(f"canary burns its error budget {cand_burn:.1f}x (limit {fast:g}x)")

    # Latency: absolute SLO plus relative to the baseline. A p99 of fewer than 100 requests is
    # their slowest one: one scheduling stall, not a regression, so the relative check waits
    # for enough requests (the SLO check does not).
    cp99, bp99 = cand.latency_p99_ms, base.latency_p99_ms
    enough = cand.request_count is None or cand.request_count >= P99_MIN_REQUESTS
    if cp99 is not None:
        if enough:
            relative_bad = bp99 is not None and cp99 > bp99 * (1 + rollout.max_latency_increase)
        else:  # too few requests to compare: only a canary over the SLO that stable meets
            relative_bad = cp99 > slo.latency_p99_ms and (
                bp99 is None or bp99 <= slo.latency_p99_ms
            )
        if (
            cp99 > slo.latency_p99_ms
            and bp99 is not None
            and bp99 > slo.latency_p99_ms
            and not relative_bad
        ):
            fleet.append(
                f"latency over the SLO on every version (canary {cp99:.0f} ms, "
                f"baseline {bp99:.0f} ms)"
            )
        elif relative_bad or (cp99 > slo.latency_p99_ms and bp99 is None):
            failures.append(
                f"canary p99 {cp99:.0f} ms vs baseline "
                + ("unknown" if bp99 is None else f"{bp99:.0f} ms")
                + f" (max +{rollout.max_latency_increase:.0%}, SLO {slo.latency_p99_ms:g} ms)"
            )

    # Accuracy: relative to the baseline, and the floor.
    ca, ba = cand.accuracy, base.accuracy
    if ca is not None:
        floor = policy.intent.accuracy_floor
        if ba is not None and ca < ba - rollout.max_accuracy_drop:
            failures.append(f"canary accuracy {ca:.1%} vs baseline {ba:.1%}")
        elif floor is not None and ca < floor and (ba is None or ba >= floor):
            failures.append(f"canary accuracy {ca:.1%} under the floor {floor:.1%}")
    if cand.shadow_disagreement is not None:
        evidence["canary.shadow_disagreement"] = cand.shadow_disagreement
        if cand.shadow_disagreement > rollout.max_shadow_disagreement:
            failures.append(
                f"canary disagrees with stable on {cand.shadow_disagreement:.1%} of requests"
            )

    # Burn-rate gates: the canary must not burn the budget in both windows.
    for gate in rollout.burn_rate_gates:
        long_w, short_w = int(gate.long_window_s), int(gate.short_window_s)
        c_long = _burn(cand.burn_windows.get(long_w), budget)
        c_short = _burn(cand.burn_windows.get(short_w), budget)
        b_long = _burn(base.burn_windows.get(long_w), budget)
        b_short = _burn(base.burn_windows.get(short_w), budget)
        evidence[f"canary.burn.{long_w}s"] = c_long
        evidence[f"canary.burn.{short_w}s"] = c_short
        if c_long is None or c_short is None:
            return _analysis(
                Check.INCONCLUSIVE,
                (f"no error ratio over the {long_w}s/{short_w}s burn-rate windows",),
                evidence,
            )
        if c_long > gate.max_burn_rate and c_short > gate.max_burn_rate:
            base_trips = (
                b_long is not None
                and b_short is not None
                and b_long > gate.max_burn_rate
                and b_short > gate.max_burn_rate
            )
            message = (
                f"burn rate {c_long:.1f}x/{c_short:.1f}x over {long_w}s/{short_w}s "
                f"> {gate.max_burn_rate:g}x"
            )
            (fleet if base_trips else failures).append(message)

    return _verdict(failures, fleet, critical, evidence)


def _verdict(
    failures: list[str],
    fleet: list[str],
    critical: bool,
    evidence: dict[str, float | str | None],
) -> Analysis:
    """The analysis from what failed: the canary's failures first, then fleet-wide faults."""
    if failures:
        return _analysis(Check.CRITICAL if critical else Check.FAIL, tuple(failures), evidence)
    if fleet:
        return _analysis(Check.FLEET, tuple(fleet), evidence)
    return _analysis(Check.PASS, ("canary within every limit",), evidence)


def stable_traffic(stable: str) -> dict[str, float]:
    """All traffic on the stable version."""
    return {stable: 1.0}


def step_traffic(policy: Policy, stable: str, canary: str, step: int) -> dict[str, float]:
    """The traffic split of a canary at a step (blue-green and shadow keep it on stable)."""
    if policy.rollout.strategy is not Strategy.CANARY or step < 0:
        return stable_traffic(stable)
    weight = policy.rollout.steps[step] / 100.0
    if weight >= 1.0:
        return {canary: 1.0}
    stable_weight, canary_weight = _step_weights(weight)
    return {stable: stable_weight, canary: canary_weight}


@lru_cache(maxsize=256)
def _step_weights(weight: float) -> tuple[float, float]:
    """(stable, canary) weights of a canary step, rounded (memoised: a policy has few steps)."""
    return round(1.0 - weight, 6), round(weight, 6)


def _candidate(snapshot: Snapshot, state: RolloutState, stable: str) -> str | None:
    for version in reversed(snapshot.applied.versions):
        if version != stable and version not in state.rejected_versions:
            return version
    return None


def idle_stable(state: RolloutState, snapshot: Snapshot, metrics_ok: bool) -> str | None:
    """The stable version when ``progress`` leaves this rollout as it is, else None.

    That is an idle rollout on a known stable version with no new version to roll out (or no
    usable metrics to start one on). Its step has no action, reason, evidence or mirror, the
    same state, and all traffic on the stable version: the common case, which ``decide`` takes
    without building the step.
    """
    stable = state.stable_version
    if state.phase is not Phase.IDLE or stable is None:
        return None
    if metrics_ok and _candidate(snapshot, state, stable) is not None:
        return None
    return stable


def progress(
    policy: Policy,
    snapshot: Snapshot,
    findings: tuple[Finding, ...],
    state: RolloutState,
    now: float,
    degraded: Mapping[str, str],
    approvals: frozenset[str],
    metrics_ok: bool,
) -> RolloutStep:
    """Move the rollout one step toward its goal (level-based: re-derived every pass)."""
    rollout = policy.rollout
    stable = state.stable_version or policy.target.stable_version
    if stable is None:
        applied = snapshot.applied.traffic
        stable = max(applied, key=lambda v: (applied[v], v)) if applied else None
    if stable is None:
        return _step((), ("no stable version known",), {}, state, {})
    if state.stable_version != stable:
        state = replace(state, stable_version=stable)
    actions: list[Action] = []
    reasons: list[str] = []

    if state.phase is Phase.IDLE:
        canary = _candidate(snapshot, state, stable)
        if canary is None or not metrics_ok:
            return _step((), (), {}, state, stable_traffic(stable))
        state = replace(
            state,
            phase=Phase.PROGRESSING,
            canary_version=canary,
            step=0,
            failed_checks=0,
            step_started_at=now,
            last_check_at=None,
            last_progress_at=now,
        )
        reasons.append(
            f"new version {canary} found: {rollout.strategy.value} rollout starts at "
            + (
                f"{rollout.steps[0]:g}%"
                if rollout.strategy is Strategy.CANARY
                else "0% live traffic, mirrored for analysis"
            )
        )
        return _with_traffic(policy, state, tuple(actions), tuple(reasons), {})

    canary = state.canary_version
    if canary is None or canary not in snapshot.applied.versions:
        gone = replace(state, phase=Phase.IDLE, canary_version=None, step=-1, failed_checks=0)
        return _step(
            (),
            (f"canary {canary} is no longer deployed: rollout ended",),
            {},
            gone,
            stable_traffic(stable),
        )

    if not metrics_ok:
        if (
            policy.remediations.on_metrics_outage == "fallback_to_stable"
            and state.phase is Phase.PROGRESSING
        ):
            paused = replace(state, phase=Phase.PAUSED)
            return _step(
                (Hold("metrics outage: canary paused, all traffic on stable"),),
                ("metrics outage: falling back to the stable version until metrics return",),
                {},
                paused,
                stable_traffic(stable),
            )
        # Hold: the deadline clock does not run while we are blind.
        held = replace(state, last_progress_at=now if state.last_progress_at is not None else None)
        return _with_traffic(
            policy,
            held,
            (Hold("metrics outage: rollout held"),),
            ("metrics outage: rollout held (no promotion or rollback on missing data)",),
            {},
        )
    if state.phase is Phase.PAUSED:
        state = replace(state, phase=Phase.PROGRESSING, step_started_at=now, last_progress_at=now)
        reasons.append("metrics are back: rollout resumes at its step")

    analysis = analyse(policy, snapshot, findings, stable, canary, degraded)
    evidence = dict(analysis.evidence)
    evidence["rollout.step"] = state.step
    evidence["rollout.failed_checks"] = state.failed_checks
    reasons.extend(analysis.reasons)

    if analysis.check in (Check.FAIL, Check.CRITICAL):
        interval_due = (
            state.last_check_at is None or now - state.last_check_at >= rollout.analysis_interval_s
        )
        failed = state.failed_checks + (1 if interval_due else 0)
        state = replace(
            state,
            failed_checks=failed,
            last_check_at=now if interval_due else state.last_check_at,
        )
        evidence["rollout.failed_checks"] = failed
        if analysis.check is Check.CRITICAL or failed >= rollout.failed_check_limit:
            why = (
                f"critical failure ({analysis.reasons[-1]})"
                if analysis.check is Check.CRITICAL
                else (f"{failed} failed checks reached the limit {rollout.failed_check_limit}")
            )
            return _fail(policy, state, stable, canary, why, reasons, evidence, approvals)
        reasons.append(f"failed check {failed}/{rollout.failed_check_limit}: holding the step")
        return _with_traffic(policy, state, (), tuple(reasons), evidence)

    if analysis.check is Check.FLEET:
        held = replace(state, last_progress_at=now)
        actions.append(
            Alert(
                "warning",
                "every version is failing, not just the canary: "
                + "; ".join(analysis.reasons)
                + " (no rollback; scaling and placement act on it)",
                topic="fleet_fault",
            )
        )
        reasons.append("fault on every version: canary not blamed, rollout held")
        return _with_traffic(policy, held, tuple(actions), tuple(reasons), evidence)

    if analysis.check is Check.INCONCLUSIVE:
        since = state.last_progress_at if state.last_progress_at is not None else now
        if now - since > rollout.progress_deadline_s:
            return _fail(
                policy,
                state,
                stable,
                canary,
                f"no conclusive analysis for {now - since:.0f}s "
                f"(deadline {rollout.progress_deadline_s:g}s)",
                reasons,
                evidence,
                approvals,
            )
        reasons.append("inconclusive: holding the step")
        return _with_traffic(policy, state, (), tuple(reasons), evidence)

    # PASS
    started = state.step_started_at if state.step_started_at is not None else now
    if now - started < rollout.analysis_interval_s:
        reasons.append(
            f"step {state.step + 1}/{len(rollout.steps)} passing for {now - started:.0f}s "
            f"of {rollout.analysis_interval_s:g}s"
        )
        return _with_traffic(policy, state, (), tuple(reasons), evidence)
    if state.step + 1 < len(rollout.steps):
        state = replace(state, step=state.step + 1, step_started_at=now, last_progress_at=now)
        reasons.append(
            f"analysis passed: advance to step {state.step + 1}/{len(rollout.steps)}"
            + (f" ({rollout.steps[state.step]:g}%)" if rollout.strategy is Strategy.CANARY else "")
        )
        return _with_traffic(policy, state, (), tuple(reasons), evidence)
    if rollout.strategy is Strategy.SHADOW:
        reasons.append(
            f"shadow analysis of {canary} passed every step: promoting is left to a human"
        )
        done = replace(
            state,
            phase=Phase.IDLE,
            canary_version=None,
            step=-1,
            rejected_versions=(*state.rejected_versions, canary),
        )
        return _step(
            (Alert("info", f"shadow version {canary} passed analysis"),),
            tuple(reasons),
            evidence,
            done,
            stable_traffic(stable),
        )
    promote = Promote(canary)
    waiting = _await_approval(
        policy,
        state,
        promote,
        approvals,
        reasons,
        evidence,
        f"analysis passed every step: promotion of {canary}",
    )
    if waiting is not None:
        return waiting
    promoted = RolloutState(
        phase=Phase.IDLE,
        stable_version=canary,
        rejected_versions=(*state.rejected_versions, stable),
    )
    reasons.append(f"analysis passed every step: {canary} promoted to stable")
    return _step((promote,), tuple(reasons), evidence, promoted, {canary: 1.0})


def _fail(
    policy: Policy,
    state: RolloutState,
    stable: str,
    canary: str,
    why: str,
    reasons: list[str],
    evidence: dict[str, float | str | None],
    approvals: frozenset[str],
) -> RolloutStep:
    """Act on a failed canary as the policy says: roll back, pause, or only alert."""
    remedy = policy.remediations.on_canary_failure
    if remedy == "alert":
        reasons.append(f"canary {canary} failed ({why}); policy says alert only")
        return _with_traffic(
            policy,
            state,
            (Alert("critical", f"canary {canary} failed: {why}"),),
            tuple(reasons),
            evidence,
        )
    if remedy == "pause":
        paused = replace(state, phase=Phase.PAUSED)
        reasons.append(f"canary {canary} failed ({why}); policy says pause on stable")
        return _step(
            (Alert("critical", f"canary {canary} paused: {why}"),),
            tuple(reasons),
            evidence,
            paused,
            stable_traffic(stable),
        )
    rollback = Rollback(from_version=canary, to_version=stable)
    waiting = _await_approval(
        policy,
        state,
        rollback,
        approvals,
        reasons,
        evidence,
        f"canary {canary} failed ({why}); rollback",
    )
    if waiting is not None:
        return waiting
    rolled = RolloutState(
        phase=Phase.IDLE,
        stable_version=stable,
        rejected_versions=(*state.rejected_versions, canary),
    )
    reasons.append(f"canary {canary} rolled back to {stable}: {why}")
    return _step(
        (rollback, Alert("critical", f"rolled back {canary} to {stable}: {why}")),
        tuple(reasons),
        evidence,
        rolled,
        stable_traffic(stable),
    )


def _await_approval(
    policy: Policy,
    state: RolloutState,
    action: Promote | Rollback,
    approvals: frozenset[str],
    reasons: list[str],
    evidence: Mapping[str, float | str | None],
    what: str,
) -> RolloutStep | None:
    """Hold the step while ``action`` waits for a human; None when not needed or approved."""
    if action.kind.value not in policy.guardrails.require_approval:
        return None
    ident = approval_id(policy, action)
    if ident in approvals:
        return None
    reasons.append(f"{what} waits for approval {ident}")
    waiting = replace(state, phase=Phase.WAITING_APPROVAL)
    step = _with_traffic(policy, waiting, (), tuple(reasons), evidence)
    return replace(step, pending=((ident, action),))


def _with_traffic(
    policy: Policy,
    state: RolloutState,
    actions: tuple[Action, ...],
    reasons: tuple[str, ...],
    evidence: Mapping[str, float | str | None],
) -> RolloutStep:
    """Attach the traffic (and mirror) the rollout state implies."""
    stable = state.stable_version or ""
    canary = state.canary_version
    if canary is None or state.phase is Phase.IDLE:
        return _step(actions, reasons, evidence, state, stable_traffic(stable))
    traffic = step_traffic(policy, stable, canary, state.step)
    shadow_version: str | None = None
    shadow_fraction = 0.0
    if policy.rollout.strategy is not Strategy.CANARY and state.phase is not Phase.PAUSED:
        shadow_version = canary
        shadow_fraction = policy.rollout.steps[max(state.step, 0)] / 100.0
    if state.phase is Phase.PAUSED:
        traffic = stable_traffic(stable)
    return _step(actions, reasons, evidence, state, traffic, shadow_version, shadow_fraction)

"""``decide(ctx) -> (Decision, new_state)``: the one pure decision function for every shell."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from autoops.core.aggregate import (
    aggregate_version,
    degraded_regions,
    rows_by_version,
    total_rate,
)
from autoops.core.canary import RolloutStep, idle_stable, progress, stable_traffic
from autoops.core.frozen import builder
from autoops.core.guards import (
    GuardInput,
    apply_guards,
    cap_shift,
    drop_unchanged,
    replica_cost_shown,
)
from autoops.core.moves import MovePlan, Warming, plan_move
from autoops.core.placement import Placement, objective_of, place, signal_map, split_replicas
from autoops.core.scaling import (
    ScalingVerdict,
    append_rate,
    cleared_timers,
    decide_scaling,
    scaling_load,
)
from autoops.core.state import ControllerState, DecisionContext, Phase, ScalingState
from autoops.model import (
    MUTATING_KINDS,
    Action,
    ActionKind,
    Alert,
    Decision,
    FindingKind,
    Hold,
    Promote,
    Retrain,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
    Snapshot,
    Verdict,
)
from autoops.policy.schema import Degradation, Intent, Policy, Scaling
from autoops.regions.model import RegionCatalogue

HOUR_S = 3600.0
Evidence = dict[str, float | str | None]


_controller_state = builder(ControllerState)
_scaling_state = builder(ScalingState)
_decision = builder(Decision)
_guard_input = builder(GuardInput)


def metrics_usable(policy: Policy, snapshot: Snapshot, now: float) -> tuple[bool, str | None]:
    """Whether the snapshot's metrics can be trusted, and why not when they cannot."""
    return _usable(snapshot, now, policy.remediations.metrics_stale_after_s)


def _usable(snapshot: Snapshot, now: float, limit: float) -> tuple[bool, str | None]:
    """``metrics_usable`` with the policy's staleness limit already read."""
    if snapshot.metrics_outage:
        return False, f"metrics outage: {snapshot.outage_reason or 'metrics source failing'}"
    if not snapshot.metrics:
        return False, "no metrics for the target (missing data is not healthy data)"
    last = snapshot.last_metrics_at
    if last is not None and now - last > limit:
        return False, f"metrics are {now - last:.0f}s old (stale after {limit:g}s)"
    return True, None


@dataclass(frozen=True, slots=True)
class _Rules:
    """The policy values every pass reads, read once per policy: plain attributes are read
    several times faster than a pydantic model's, and a fleet shares a few policies."""

    policy: Policy
    stale_after_s: float
    error_rate: float
    allowed_regions: tuple[str, ...]
    history_points: int
    scaling: Scaling
    intent: Intent
    latency_slo_ms: float
    min_replicas: int
    max_replicas: int
    target_ongoing: float
    budget: float | None
    degradation: Degradation
    cascade_enabled: bool
    normal_threshold: float
    dry_run: bool
    require_approval: frozenset[str]


def _read_rules(policy: Policy) -> _Rules:
    """The values ``decide`` reads from a policy on every pass."""
    scaling = policy.scaling
    return _Rules(
        policy,
        policy.remediations.metrics_stale_after_s,
        policy.slo.error_rate,
        policy.intent.allowed_regions,
        scaling.predictive.history_points,
        scaling,
        policy.intent,
        policy.slo.latency_p99_ms,
        scaling.min_replicas,
        scaling.max_replicas,
        scaling.target_ongoing_requests,
        policy.intent.budget_usd_per_hour,
        policy.degradation,
        policy.degradation.enabled,
        policy.degradation.normal_threshold,
        policy.guardrails.dry_run,
        frozenset(policy.guardrails.require_approval),
    )


_RULES: dict[int, _Rules] = {}


def _rules(policy: Policy) -> _Rules:
    """The policy's rules, memoised by identity (the targets of a policy share its object)."""
    hit = _RULES.get(id(policy))
    if hit is not None and hit.policy is policy:
        return hit
    rules = _read_rules(policy)
    if len(_RULES) > 1024:
        _RULES.clear()
    _RULES[id(policy)] = rules
    return rules


def _same_weights(a: Mapping[str, float], b: Mapping[str, float], tol: float = 1e-6) -> bool:
    if a == b:
        return True
    keys = set(a) | set(b)
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) <= tol for k in keys)


def _same_counts(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    if a == b:
        return True
    keys = set(a) | set(b)
    return all(a.get(k, 0) == b.get(k, 0) for k in keys)


_SEMANTIC = (Rollback, Promote)


def _any_semantic(actions: Sequence[Action]) -> bool:
    """Whether any action is a rollback or a promotion (they carry their own traffic)."""
    return any([isinstance(action, _SEMANTIC) for action in actions])


def _evacuated(
    degraded: Mapping[str, str], weights: Mapping[str, float], allowed: Sequence[str]
) -> frozenset[str]:
    """Regions being evacuated: degraded, or outside the compliance boundary."""
    if not degraded:
        for region in weights:
            if region not in allowed:
                break
        else:
            return _NO_REGIONS
    return frozenset(set(degraded) | {r for r in weights if r not in allowed})


_NO_REGIONS: frozenset[str] = frozenset()


def _target_region_weights(
    policy: Policy,
    applied: Mapping[str, float],
    placement: Placement,
    forced: frozenset[str],
    reasons: list[str],
) -> dict[str, float]:
    """The region weights to run: the placement's, unless the gain is inside the hysteresis."""
    if not placement.weights:
        reasons.append("placement: " + "; ".join(placement.reasons) + ": weights held")
        return dict(applied)
    if not forced and placement.informed and applied == placement.weights:
        # Already where placement wants it (the placement's weights are all positive).
        return dict(applied)
    active = [r for r, w in applied.items() if w > 0]
    evacuated = sorted([r for r in active if r in forced]) if forced else []
    if not placement.informed and active and not evacuated:
        reasons.append("placement: " + "; ".join(placement.reasons) + ": weights held")
        return dict(applied)
    if not active or evacuated or sum(applied.values()) <= 0:
        if evacuated:
            reasons.append(
                "rerouting away from "
                + ", ".join(f"{r} ({placement.excluded.get(r, 'not allowed')})" for r in evacuated)
            )
        return dict(placement.weights)
    if _same_weights(applied, placement.weights, 1e-3):
        return dict(applied)
    current = objective_of(applied, placement.scores)
    better = objective_of(placement.weights, placement.scores)
    h = policy.guardrails.region_hysteresis
    left_out = sorted(r for r in active if r in placement.excluded)
    if left_out:
        reasons.append(
            "placement: moving off "
            + ", ".join(f"{r} ({placement.excluded[r]})" for r in left_out)
            + f"; {'; '.join(placement.reasons)}"
        )
        return dict(placement.weights)
    if math.isinf(current) or better < current * (1 - h):
        reasons.append(
            f"placement: {'; '.join(placement.reasons)} (objective {current:.3g} -> {better:.3g}, "
            f"more than the {h:.0%} hysteresis)"
        )
        return dict(placement.weights)
    return dict(applied)


def _cascade(
    policy: Policy,
    rules: _Rules,
    snapshot: Snapshot,
    stable: str | None,
    pressure: str | None,
    relaxed: bool,
    reasons: list[str],
    evidence: Evidence,
) -> float | None:
    """The cascade threshold to run, or None to leave it alone."""
    current = snapshot.applied.cascade_threshold
    if current is None or not rules.cascade_enabled:
        return None
    if pressure is None and current >= rules.normal_threshold - 1e-6:
        return None  # at full quality with nothing pressing: the floor cannot ask for more
    deg = rules.degradation
    stable_rows = rows_by_version(snapshot).get(stable or "", [])
    accuracy = aggregate_version(stable_rows).accuracy if stable_rows else None
    evidence["stable.accuracy"] = accuracy
    floor = policy.intent.accuracy_floor
    if floor is not None and accuracy is not None and accuracy < floor:
        target = round(min(deg.normal_threshold, current + deg.step), 4)
        if target > current + 1e-6:
            reasons.append(
                f"accuracy {accuracy:.1%} under the floor {floor:.1%}: cascade threshold "
                f"{current:.2f} -> {target:.2f} (more to the large model)"
            )
            return target
        return None
    if pressure is not None:
        if floor is not None and accuracy is None:
            reasons.append(f"{pressure}, but accuracy is unknown: no degradation below the floor")
            return None
        target = round(max(deg.min_threshold, current - deg.step), 4)
        if target < current - 1e-6:
            reasons.append(
                f"{pressure}: cascade threshold {current:.2f} -> {target:.2f} "
                "(more answered by the small model)"
            )
            return target
        return None
    if relaxed and current < deg.normal_threshold - 1e-6:
        target = round(min(deg.normal_threshold, current + deg.step), 4)
        reasons.append(f"pressure gone: cascade threshold {current:.2f} -> {target:.2f}")
        return target
    return None


def decide(ctx: DecisionContext) -> tuple[Decision, ControllerState]:
    """Decide one pass for one target: absolute actions, reasons, evidence, and the new state."""
    policy, snapshot, state, now = ctx.policy, ctx.snapshot, ctx.state, ctx.now
    rules = _rules(policy)
    applied = snapshot.applied
    signals = signal_map(snapshot.signals)

    ok, why_not = _usable(snapshot, now, rules.stale_after_s)
    degraded = (
        degraded_regions(snapshot, rules.error_rate, signals)
        if ok
        else {r: "region marked unhealthy" for r, s in signals.items() if s.healthy is False}
    )
    evidence: Evidence = (
        {f"region.{region}.degraded": why for region, why in sorted(degraded.items())}
        if degraded
        else {}
    )
    forced = _evacuated(degraded, applied.region_weights, rules.allowed_regions)

    # -- rollout --------------------------------------------------------------------------
    rollout_state = state.rollout
    reasons: list[str] = []
    actions: list[Action] = []
    pending_rollout: tuple[Action, ...] = ()
    stable = idle_stable(rollout_state, snapshot, ok)
    if stable is not None:
        # What progress() returns here, without building its step: all traffic on stable.
        traffic = stable_traffic(stable)
        if (
            (applied.traffic != traffic and not _same_weights(applied.traffic, traffic))
            or applied.shadow_version is not None
            or abs(applied.shadow_fraction) > 1e-6
        ):
            actions.append(SetTraffic(traffic, None, 0.0))
    else:
        step: RolloutStep = progress(
            policy, snapshot, ctx.findings, rollout_state, now, degraded, ctx.approvals, ok
        )
        rollout_state = step.state
        reasons.extend(step.reasons)
        evidence.update(step.evidence)
        actions.extend(step.actions)
        if step.pending:
            pending_rollout = tuple([action for _, action in step.pending])
        if (
            step.traffic
            and not (step.actions and _any_semantic(step.actions))
            and (
                not _same_weights(applied.traffic, step.traffic)
                or applied.shadow_version != step.shadow_version
                or abs(applied.shadow_fraction - step.shadow_fraction) > 1e-6
            )
        ):
            actions.append(SetTraffic(step.traffic, step.shadow_version, step.shadow_fraction))
        stable = rollout_state.stable_version
    rate = total_rate(snapshot) if ok else None
    scaling_state = append_rate(state.scaling, now, rate, rules.history_points)
    current_total = sum(applied.replicas.values())
    evidence["replicas"] = current_total

    if not ok:
        reasons.insert(0, why_not or "metrics unusable")
        if not any(isinstance(a, Hold) for a in actions):
            actions.append(Hold(f"{why_not}: no scaling, placement or promotion on missing data"))
        new_state = replace(
            state,
            rollout=rollout_state,
            scaling=cleared_timers(scaling_state),
        )
        return _finish(
            ctx, rules, actions, reasons, evidence, new_state, forced, False, pending_rollout
        )

    # -- findings: anomaly and drift -----------------------------------------------------------
    anomaly_scale = False
    retrain_state = (state.retrain_requested_at, state.retrain_base_version)
    for finding in ctx.findings:
        if finding.verdict is not Verdict.FAIL:
            continue
        if finding.kind is FindingKind.ANOMALY:
            evidence[f"anomaly.{finding.signal}.score"] = finding.score
            remedy = policy.remediations.on_anomaly
            if remedy == "alert":
                actions.append(
                    Alert(
                        "warning",
                        f"anomaly on {finding.signal} ({finding.detector}, "
                        f"score {finding.score or 0:.2f})",
                        topic=f"anomaly:{finding.signal}",
                    )
                )
            elif remedy == "scale_out":
                anomaly_scale = True
                reasons.append(f"anomaly on {finding.signal}: scaling out one replica")
        elif finding.kind is FindingKind.DRIFT and finding.version in (stable, None) and stable:
            evidence[f"drift.{finding.signal}.p_value"] = finding.statistics.get("p_value")
            remedy_d = policy.remediations.on_drift
            if remedy_d == "retrain":
                if state.retrain_requested_at is None or state.retrain_base_version != stable:
                    deadline = now + policy.remediations.retrain_deadline_s
                    actions.append(Retrain(stable, deadline))
                    retrain_state = (now, stable)
                    reasons.append(
                        f"drift on {finding.signal} of {stable}: retraining "
                        f"(deadline in {policy.remediations.retrain_deadline_s:g}s)"
                    )
            elif remedy_d == "fallback":
                fallback = policy.remediations.fallback_version
                if fallback and fallback != stable and fallback in applied.versions:
                    actions.append(Rollback(from_version=stable, to_version=fallback))
                    reasons.append(f"drift on {finding.signal}: falling back to {fallback}")
                    rollout_state = replace(
                        rollout_state,
                        stable_version=fallback,
                        phase=Phase.IDLE,
                        canary_version=None,
                        step=-1,
                    )
            else:
                actions.append(
                    Alert(
                        "warning",
                        f"input drift on {finding.signal} of {stable}",
                        topic=f"drift:{finding.signal}",
                    )
                )
    if actions and _any_semantic(actions):
        # Promoted: the retrained version is stable now. Rolled back: drift that goes on may
        # ask for another retraining (on fresher labels) instead of waiting forever.
        retrain_state = (None, None)

    # -- scaling ------------------------------------------------------------------------------
    load, complete = scaling_load(snapshot)
    evidence["load"] = load
    evidence["request_rate"] = rate
    ready = applied.ready_replicas
    verdict: ScalingVerdict = decide_scaling(
        rules.scaling,
        scaling_state,
        now,
        load,
        complete,
        rate,
        current_total,
        None if ready is None else sum(ready.get(r, 0) for r in applied.replicas),
    )
    scaling_state = verdict.state
    desired_total = verdict.desired if verdict.desired is not None else current_total
    if anomaly_scale:
        desired_total = max(desired_total, current_total + 1)
    if verdict.desired is not None:
        reasons.append(f"scaling: {verdict.reason}")

    # -- placement ----------------------------------------------------------------------------
    placement = place(rules.intent, rules.latency_slo_ms, ctx.catalogue, signals, degraded)
    region_weights = _target_region_weights(
        policy, applied.region_weights, placement, forced, reasons
    )
    evidence.update(placement.evidence)
    if state.warming and verdict.desired is None and not anomaly_scale:
        # Replicas started for a move come on top of the fleet the scaling rule sized.
        desired_total = state.warming_fleet or desired_total
    warming: Warming = ()
    move: MovePlan | None = None
    if not _same_weights(region_weights, applied.region_weights, 1e-4):
        if forced and forced & {r for r, w in applied.region_weights.items() if w > 0}:
            actions.append(SetRegionWeights(region_weights))
        else:
            # The blast-radius guard moves only part of the traffic this tick: replicas must
            # follow the traffic that will really be there, not the final target.
            step_weights = cap_shift(
                region_weights,
                applied.region_weights,
                policy.guardrails.max_traffic_shift / 100.0,
            )
            move = plan_move(
                policy,
                ctx.catalogue,
                applied,
                step_weights,
                region_weights,
                desired_total,
                snapshot.metrics,
                state.warming,
                now,
            )
            if move.moves:
                actions.append(SetRegionWeights(region_weights))
            if move.reason:
                reasons.append(move.reason)
            region_weights, warming = dict(move.weights), move.warming

    costed: tuple[float, float] | None = None
    if move is not None:
        replicas_target = move.replicas
    elif region_weights:
        split, cost, shown = _sized(desired_total, tuple(region_weights.items()), ctx.catalogue)
        replicas_target = dict(split)
        costed = (cost, shown)
    else:
        replicas_target = dict(applied.replicas)
    if not _same_counts(replicas_target, applied.replicas) or not (
        rules.min_replicas <= current_total <= rules.max_replicas
    ):
        actions.append(SetReplicas(replicas_target))

    # -- degradation ---------------------------------------------------------------------------
    pressure: str | None = None
    if verdict.overloaded:
        pressure = "load needs more than max_replicas"
    budget = rules.budget
    if budget is not None:
        cost, shown = costed or replica_cost_shown(replicas_target, ctx.catalogue)
        evidence["cost_usd_per_hour"] = shown
        if cost > budget:
            pressure = pressure or f"${cost:.2f}/h over the budget ${budget:g}/h"
    target = rules.target_ongoing
    relaxed = load is not None and load / max(desired_total, 1) < target
    if applied.cascade_threshold is not None and rules.cascade_enabled:
        threshold = _cascade(policy, rules, snapshot, stable, pressure, relaxed, reasons, evidence)
        if threshold is not None:
            actions.append(SetCascadeThreshold(threshold))

    slo_at_risk = verdict.desired is not None and verdict.desired > current_total
    new_state = _controller_state(
        rollout_state,
        scaling_state,
        state.action_times,
        state.last_region_change_at,
        retrain_state[0],
        retrain_state[1],
        warming,
        desired_total if warming else 0,
    )
    return _finish(
        ctx, rules, actions, reasons, evidence, new_state, forced, slo_at_risk, pending_rollout
    )


@lru_cache(maxsize=4096)
def _sized(
    total: int, weights: tuple[tuple[str, float], ...], catalogue: RegionCatalogue
) -> tuple[tuple[tuple[str, int], ...], float, float]:
    """Replicas split by weight, their cost and its rounding (memoised: a fleet repeats a few)."""
    replicas = split_replicas(total, dict(weights))
    cost, shown = replica_cost_shown(replicas, catalogue)
    return tuple(replicas.items()), cost, shown


def _exempt(actions: Sequence[Action], phase: Phase) -> bool:
    """Whether the traffic change is a rollback, a promotion, or all traffic on one version."""
    if _any_semantic(actions):
        return True
    return phase is Phase.IDLE and any(
        [
            isinstance(a, SetTraffic) and len([w for w in a.weights.values() if w > 0]) == 1
            for a in actions
        ]
    )


def _scaled(scaling: ScalingState, now: float, direction: int) -> ScalingState:
    """The scaling state after a replica change in ``direction`` at ``now`` (timers stopped)."""
    return _scaling_state(
        None,
        None,
        now,
        direction,
        scaling.rate_history,
        scaling.trend,
        scaling.below_peak,
        scaling.service_s,
    )


def _finish(
    ctx: DecisionContext,
    rules: _Rules,
    actions: list[Action],
    reasons: list[str],
    evidence: Evidence,
    state: ControllerState,
    forced: frozenset[str],
    slo_at_risk: bool,
    rollout_pending: tuple[Action, ...] = (),
) -> tuple[Decision, ControllerState]:
    """Run the guard pipeline and approvals, then record what the surviving actions change."""
    policy, now, applied = ctx.policy, ctx.now, ctx.snapshot.applied
    if not actions and not rollout_pending and not ctx.paused:
        # Nothing to guard or apply: only the hourly action window moves on.
        times = state.action_times
        if times and now - times[0] >= HOUR_S:
            times = tuple(t for t in times if now - t < HOUR_S)
            state = replace(state, action_times=times)
        quiet = _decision(now, (), tuple(reasons), evidence, (), (), rules.dry_run)
        return quiet, state
    guard_input = _guard_input(
        policy,
        ctx.catalogue,
        now,
        applied.traffic,
        applied.region_weights,
        applied.replicas,
        state.action_times,
        state.scaling.last_scale_at,
        state.scaling.last_direction,
        forced,
        slo_at_risk,
        _exempt(actions, state.rollout.phase),
    )
    guarded = apply_guards(actions, guard_input)
    reasons.extend(guarded.notes)
    guarded.actions = drop_unchanged(
        guarded.actions,
        applied.traffic,
        applied.region_weights,
        applied.replicas,
        applied.cascade_threshold,
        applied.shadow_version if applied.shadow_fraction > 0 else None,
    )

    final: list[Action] = []
    pending: list[Action] = list(rollout_pending)
    needs = rules.require_approval
    for action in guarded.actions:
        kind = action.kind.value
        if kind in needs and action.kind not in (ActionKind.PROMOTE, ActionKind.ROLLBACK):
            ident = f"{policy.metadata.name}.{kind}"
            if ident not in ctx.approvals:
                pending.append(action)
                reasons.append(f"{kind} waits for approval {ident}")
                continue
        final.append(action)

    if ctx.paused:
        held = [a for a in final if a.kind in MUTATING_KINDS]
        if held:
            reasons.append(
                "paused by an operator: would have applied " + ", ".join(a.kind.value for a in held)
            )
        final = [a for a in final if a.kind not in MUTATING_KINDS]
        final.append(Hold("paused by an operator"))
        new_state = replace(
            ctx.state,
            scaling=replace(ctx.state.scaling, rate_history=state.scaling.rate_history),
        )
    else:
        new_state = _recorded(state, final, now, sum(applied.replicas.values()))
    decision = _decision(
        now,
        tuple(final),
        tuple(reasons),
        evidence,
        tuple(guarded.changes),
        tuple(pending),
        rules.dry_run,
    )
    return decision, new_state


def _recorded(
    state: ControllerState, final: list[Action], now: float, current_total: int
) -> ControllerState:
    """The state once ``final`` is applied: action times, scaling direction, region change."""
    times = state.action_times
    if times and now - times[0] >= HOUR_S:
        times = tuple(t for t in times if now - t < HOUR_S)
    applied_count = 0
    scaling = state.scaling
    last_region = state.last_region_change_at
    for action in final:
        if action.kind in MUTATING_KINDS:
            applied_count += 1
        if isinstance(action, SetReplicas):
            total = action.total
            if total != current_total:
                scaling = _scaled(scaling, now, 1 if total > current_total else -1)
        elif isinstance(action, SetRegionWeights):
            last_region = now
    if applied_count:
        times = (*times, *([now] * applied_count))
    return _controller_state(
        state.rollout,
        scaling,
        times,
        last_region,
        state.retrain_requested_at,
        state.retrain_base_version,
        state.warming,
        state.warming_fleet,
    )

"""``decide(ctx) -> (Decision, new_state)``: the one pure decision function for every shell."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from autoops.core.aggregate import (
    aggregate_version,
    degraded_regions,
    rows_by_version,
    total_rate,
)
from autoops.core.canary import RolloutStep, progress
from autoops.core.guards import (
    GuardInput,
    apply_guards,
    cap_shift,
    drop_unchanged,
    replica_cost,
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
from autoops.core.state import ControllerState, DecisionContext, Phase
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
from autoops.policy.schema import Policy

HOUR_S = 3600.0
Evidence = dict[str, float | str | None]


def metrics_usable(policy: Policy, snapshot: Snapshot, now: float) -> tuple[bool, str | None]:
    """Whether the snapshot's metrics can be trusted, and why not when they cannot."""
    if snapshot.metrics_outage:
        return False, f"metrics outage: {snapshot.outage_reason or 'metrics source failing'}"
    if not snapshot.metrics:
        return False, "no metrics for the target (missing data is not healthy data)"
    last = snapshot.last_metrics_at
    limit = policy.remediations.metrics_stale_after_s
    if last is not None and now - last > limit:
        return False, f"metrics are {now - last:.0f}s old (stale after {limit:g}s)"
    return True, None


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
    active = {r for r, w in applied.items() if w > 0}
    if not placement.informed and active and not active & forced:
        reasons.append("placement: " + "; ".join(placement.reasons) + ": weights held")
        return dict(applied)
    if not active or active & forced or sum(applied.values()) <= 0:
        if active & forced:
            reasons.append(
                "rerouting away from "
                + ", ".join(
                    f"{r} ({placement.excluded.get(r, 'not allowed')})"
                    for r in sorted(active & forced)
                )
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
    snapshot: Snapshot,
    stable: str | None,
    pressure: str | None,
    relaxed: bool,
    reasons: list[str],
    evidence: Evidence,
) -> float | None:
    """The cascade threshold to run, or None to leave it alone."""
    current = snapshot.applied.cascade_threshold
    deg = policy.degradation
    if current is None or not deg.enabled:
        return None
    if pressure is None and current >= deg.normal_threshold - 1e-6:
        return None  # at full quality with nothing pressing: the floor cannot ask for more
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
    applied = snapshot.applied
    reasons: list[str] = []
    evidence: Evidence = {}
    actions: list[Action] = []
    signals = signal_map(snapshot.signals)

    ok, why_not = metrics_usable(policy, snapshot, now)
    degraded = (
        degraded_regions(snapshot, policy.slo.error_rate, signals)
        if ok
        else {r: "region marked unhealthy" for r, s in signals.items() if s.healthy is False}
    )
    for region, why in sorted(degraded.items()):
        evidence[f"region.{region}.degraded"] = why
    # Regions being evacuated: degraded, or outside the compliance boundary.
    allowed = set(policy.intent.allowed_regions)
    forced = frozenset(set(degraded) | {r for r in applied.region_weights if r not in allowed})

    # -- rollout --------------------------------------------------------------------------
    step: RolloutStep = progress(
        policy, snapshot, ctx.findings, state.rollout, now, degraded, ctx.approvals, ok
    )
    rollout_state = step.state
    reasons.extend(step.reasons)
    evidence.update(step.evidence)
    actions.extend(step.actions)
    pending_rollout = tuple(action for _, action in step.pending)
    semantic_traffic = any(isinstance(a, Rollback | Promote) for a in step.actions)
    if (
        step.traffic
        and not semantic_traffic
        and (
            not _same_weights(applied.traffic, step.traffic)
            or applied.shadow_version != step.shadow_version
            or abs(applied.shadow_fraction - step.shadow_fraction) > 1e-6
        )
    ):
        actions.append(SetTraffic(step.traffic, step.shadow_version, step.shadow_fraction))

    stable = rollout_state.stable_version
    scaling_state = append_rate(
        state.scaling,
        now,
        total_rate(snapshot) if ok else None,
        policy.scaling.predictive.history_points,
    )
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
        return _finish(ctx, actions, reasons, evidence, new_state, forced, False, pending_rollout)

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
    if any(isinstance(a, Promote | Rollback) for a in actions):
        # Promoted: the retrained version is stable now. Rolled back: drift that goes on may
        # ask for another retraining (on fresher labels) instead of waiting forever.
        retrain_state = (None, None)

    # -- scaling ------------------------------------------------------------------------------
    load, complete = scaling_load(snapshot)
    rate = total_rate(snapshot)
    evidence["load"] = load
    evidence["request_rate"] = rate
    ready = applied.ready_replicas
    verdict: ScalingVerdict = decide_scaling(
        policy.scaling,
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
    placement = place(policy.intent, policy.slo.latency_p99_ms, ctx.catalogue, signals, degraded)
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
        evacuating = forced & {r for r, w in applied.region_weights.items() if w > 0}
        if evacuating:
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

    if move is not None:
        replicas_target = move.replicas
    elif region_weights:
        replicas_target = split_replicas(desired_total, region_weights)
    else:
        replicas_target = dict(applied.replicas)
    if not _same_counts(replicas_target, applied.replicas) or not (
        policy.scaling.min_replicas <= current_total <= policy.scaling.max_replicas
    ):
        actions.append(SetReplicas(replicas_target))

    # -- degradation ---------------------------------------------------------------------------
    pressure: str | None = None
    if verdict.overloaded:
        pressure = "load needs more than max_replicas"
    budget = policy.intent.budget_usd_per_hour
    if budget is not None:
        cost = replica_cost(replicas_target, ctx.catalogue)
        evidence["cost_usd_per_hour"] = round(cost, 4)
        if cost > budget:
            pressure = pressure or f"${cost:.2f}/h over the budget ${budget:g}/h"
    target = policy.scaling.target_ongoing_requests
    relaxed = load is not None and load / max(desired_total, 1) < target
    threshold = _cascade(policy, snapshot, stable, pressure, relaxed, reasons, evidence)
    if threshold is not None:
        actions.append(SetCascadeThreshold(threshold))

    slo_at_risk = verdict.desired is not None and verdict.desired > current_total
    new_state = ControllerState(
        rollout_state,
        scaling_state,
        state.action_times,
        state.last_region_change_at,
        retrain_state[0],
        retrain_state[1],
        warming,
        desired_total if warming else 0,
    )
    return _finish(ctx, actions, reasons, evidence, new_state, forced, slo_at_risk, pending_rollout)


def _finish(
    ctx: DecisionContext,
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
        quiet = Decision(now, (), tuple(reasons), evidence, dry_run=policy.guardrails.dry_run)
        return quiet, state
    exempt = any(isinstance(a, Rollback | Promote) for a in actions) or any(
        isinstance(a, SetTraffic)
        and len([w for w in a.weights.values() if w > 0]) == 1
        and state.rollout.phase is Phase.IDLE
        for a in actions
    )
    guard_input = GuardInput(
        policy=policy,
        catalogue=ctx.catalogue,
        now=now,
        applied_traffic=applied.traffic,
        applied_region_weights=applied.region_weights,
        applied_replicas=applied.replicas,
        action_times=state.action_times,
        last_scale_at=state.scaling.last_scale_at,
        last_direction=state.scaling.last_direction,
        forced_regions=forced,
        slo_at_risk=slo_at_risk,
        exempt_traffic=exempt,
    )
    guarded = apply_guards(actions, guard_input)
    reasons.extend(guarded.notes)
    guarded.actions = drop_unchanged(
        guarded.actions,
        applied.traffic,
        applied.region_weights,
        applied.replicas,
        applied.cascade_threshold,
    )

    final: list[Action] = []
    pending: list[Action] = list(rollout_pending)
    needs = set(policy.guardrails.require_approval)
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
        return (
            Decision(
                now,
                tuple(final),
                tuple(reasons),
                evidence,
                tuple(guarded.changes),
                tuple(pending),
                policy.guardrails.dry_run,
            ),
            replace(
                ctx.state,
                scaling=replace(ctx.state.scaling, rate_history=state.scaling.rate_history),
            ),
        )

    times = state.action_times
    if times and now - times[0] >= HOUR_S:
        times = tuple(t for t in times if now - t < HOUR_S)
    applied_count = sum(1 for a in final if a.kind in MUTATING_KINDS)
    if applied_count:
        times = (*times, *([now] * applied_count))
    scaling = state.scaling
    current_total = sum(applied.replicas.values())
    for action in final:
        if isinstance(action, SetReplicas) and action.total != current_total:
            direction = 1 if action.total > current_total else -1
            scaling = replace(
                scaling,
                last_scale_at=now,
                last_direction=direction,
                above_since=None,
                below_since=None,
            )
    last_region = state.last_region_change_at
    if any(isinstance(a, SetRegionWeights) for a in final):
        last_region = now
    new_state = ControllerState(
        state.rollout,
        scaling,
        times,
        last_region,
        state.retrain_requested_at,
        state.retrain_base_version,
        state.warming,
        state.warming_fleet,
    )
    decision = Decision(
        time=now,
        actions=tuple(final),
        reasons=tuple(reasons),
        evidence=evidence,
        guard_changes=tuple(guarded.changes),
        pending_approval=tuple(pending),
        dry_run=policy.guardrails.dry_run,
    )
    return decision, new_state

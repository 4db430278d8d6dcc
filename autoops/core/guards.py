"""The guard pipeline, applied after every decision in a fixed order.

bounds → cooldown/hysteresis → rate limit → blast radius → budget/compliance.
Each guard is a small pure step that may change or drop actions and records a GuardChange.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

from autoops.core.placement import split_replicas
from autoops.model import (
    MUTATING_KINDS,
    Action,
    ActionKind,
    Alert,
    GuardChange,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue

HOUR_S = 3600.0

PRIORITY: Mapping[ActionKind, int] = {
    ActionKind.ROLLBACK: 0,
    ActionKind.SET_TRAFFIC: 1,
    ActionKind.SET_REGION_WEIGHTS: 2,
    ActionKind.SET_REPLICAS: 3,
    ActionKind.SET_CASCADE_THRESHOLD: 4,
    ActionKind.PROMOTE: 5,
    ActionKind.RETRAIN: 6,
}
"""Which changes survive the rate limit first: safety before optimisation."""


@dataclass(frozen=True, slots=True)
class GuardInput:
    """What every guard may look at besides the actions."""

    policy: Policy
    catalogue: RegionCatalogue
    now: float
    applied_traffic: Mapping[str, float]
    applied_region_weights: Mapping[str, float]
    applied_replicas: Mapping[str, int]
    action_times: tuple[float, ...]
    last_scale_at: float | None
    last_direction: int
    forced_regions: frozenset[str] = frozenset()
    """Regions being evacuated (degraded/disallowed): moving traffic off them is never capped."""
    slo_at_risk: bool = False
    """The load needs the replicas: the budget ceiling gives way (and the decision says so)."""
    exempt_traffic: bool = False
    """The traffic change is a rollback or a promotion after full analysis."""


@dataclass(slots=True)
class GuardResult:
    """Actions after the pipeline, with every change recorded."""

    actions: list[Action]
    changes: list[GuardChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Guard = Callable[[GuardResult, GuardInput], None]


def _fmt(action: Action) -> str:
    if isinstance(action, SetReplicas):
        return ",".join(f"{k}={v}" for k, v in sorted(action.replicas.items()) if v) or "0"
    if isinstance(action, SetTraffic | SetRegionWeights):
        return ",".join(f"{k}={v:.3f}" for k, v in sorted(action.weights.items()) if v > 0)
    if isinstance(action, SetCascadeThreshold):
        return f"{action.threshold:.2f}"
    return action.kind.value


def _spread(replicas: Mapping[str, int], g: GuardInput) -> dict[str, float]:
    """Where replicas go when re-split: the action's own spread, else what runs now."""
    weights = {r: float(n) for r, n in replicas.items() if n > 0}
    if weights:
        return weights
    weights = {r: float(n) for r, n in g.applied_replicas.items() if n > 0}
    return weights or dict(g.applied_region_weights)


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights scaled to sum to 1, keeping their proportions (negatives count as 0)."""
    clipped = {k: max(v, 0.0) for k, v in weights.items()}
    total = sum(clipped.values())
    if total <= 0:
        return clipped
    return {k: round(v / total, 6) for k, v in clipped.items()}


# --------------------------------------------------------------------------- 1. bounds


def bounds(result: GuardResult, g: GuardInput) -> None:
    """Keep replicas within [min, max], weights in [0, 1] summing to 1, thresholds in range."""
    scaling = g.policy.scaling
    out: list[Action] = []
    for action in result.actions:
        new = action
        if isinstance(action, SetReplicas):
            total = action.total
            clamped = min(max(total, scaling.min_replicas), scaling.max_replicas)
            if clamped != total:
                weights = (
                    {r: float(n) for r, n in action.replicas.items()}
                    if total
                    else dict(g.applied_region_weights)
                )
                new = SetReplicas(split_replicas(clamped, weights))
                limit = "max_replicas" if total > clamped else "min_replicas"
                result.changes.append(
                    GuardChange(
                        "bounds",
                        action.kind,
                        _fmt(action),
                        _fmt(new),
                        f"{total} replicas clamped to {limit}={clamped}",
                    )
                )
        elif isinstance(action, SetTraffic | SetRegionWeights):
            norm = _normalise(action.weights)
            if any(not math.isclose(norm[k], v, abs_tol=1e-6) for k, v in action.weights.items()):
                new = replace(action, weights=norm)
                result.changes.append(
                    GuardChange(
                        "bounds", action.kind, _fmt(action), _fmt(new), "weights normalised"
                    )
                )
        elif isinstance(action, SetCascadeThreshold):
            low = g.policy.degradation.min_threshold
            value = min(max(action.threshold, low), 1.0)
            if value != action.threshold:
                new = SetCascadeThreshold(value)
                result.changes.append(
                    GuardChange(
                        "bounds",
                        action.kind,
                        _fmt(action),
                        _fmt(new),
                        f"threshold kept within [{low:g}, 1]",
                    )
                )
        out.append(new)
    result.actions = out


# --------------------------------------------------------------------------- 2. cooldown


def cooldown(result: GuardResult, g: GuardInput) -> None:
    """No scaling change soon after the last one (ramps may keep scaling up); drop tiny moves."""
    cool = g.policy.guardrails.scale_cooldown_s
    current_total = sum(g.applied_replicas.values())
    out: list[Action] = []
    for action in result.actions:
        if isinstance(action, SetReplicas) and g.last_scale_at is not None:
            direction = (action.total > current_total) - (action.total < current_total)
            since = g.now - g.last_scale_at
            continuing_ramp = direction > 0 and g.last_direction > 0
            if direction != 0 and since < cool and not continuing_ramp:
                result.changes.append(
                    GuardChange(
                        "cooldown",
                        action.kind,
                        _fmt(action),
                        "dropped",
                        f"last scaling {since:.0f}s ago < cooldown {cool:g}s",
                    )
                )
                continue
        if isinstance(action, SetRegionWeights) and not g.forced_regions:
            moves = [
                abs(w - g.applied_region_weights.get(r, 0.0)) for r, w in action.weights.items()
            ]
            if moves and max(moves) < 0.02:
                result.changes.append(
                    GuardChange(
                        "hysteresis",
                        action.kind,
                        _fmt(action),
                        "dropped",
                        "region weights would move by less than 2 points",
                    )
                )
                continue
        out.append(action)
    result.actions = out


# --------------------------------------------------------------------------- 3. rate limit


def _priority(action: Action) -> int:
    """Where an action stands in the rate limit's safety-first order."""
    return PRIORITY[action.kind]


def rate_limit(result: GuardResult, g: GuardInput) -> None:
    """At most ``max_actions_per_hour`` changes per hour; safety-first order when over."""
    limit = g.policy.guardrails.max_actions_per_hour
    now = g.now
    recent = len([t for t in g.action_times if now - t < HOUR_S])
    allowed = max(limit - recent, 0)
    mutating = [a for a in result.actions if a.kind in MUTATING_KINDS]
    if len(mutating) <= allowed:
        return
    mutating.sort(key=_priority)
    keep_ids = {id(a) for a in mutating[:allowed]}
    dropped = [a for a in mutating if id(a) not in keep_ids]
    if not dropped:
        return
    for action in dropped:
        result.changes.append(
            GuardChange(
                "rate_limit",
                action.kind,
                _fmt(action),
                "dropped",
                f"{recent} changes in the last hour; limit {limit}",
            )
        )
    result.actions = [
        a for a in result.actions if a.kind not in MUTATING_KINDS or id(a) in keep_ids
    ]
    result.actions.append(
        Alert(
            "warning",
            f"rate limit of {limit} changes/hour reached: {len(dropped)} change(s) held back",
        )
    )


# --------------------------------------------------------------------------- 4. blast radius


def blast_radius(result: GuardResult, g: GuardInput) -> None:
    """Cap how much traffic moves toward a new version or region, and how many replicas change."""
    max_shift = g.policy.guardrails.max_traffic_shift / 100.0
    max_step = g.policy.scaling.max_step
    out: list[Action] = []
    for action in result.actions:
        new: Action = action
        if isinstance(action, SetTraffic) and not g.exempt_traffic:
            new = SetTraffic(
                cap_shift(action.weights, g.applied_traffic, max_shift),
                action.shadow_version,
                action.shadow_fraction,
            )
        elif isinstance(action, SetRegionWeights):
            if not (g.forced_regions & {r for r, w in g.applied_region_weights.items() if w > 0}):
                new = SetRegionWeights(
                    cap_shift(action.weights, g.applied_region_weights, max_shift)
                )
        elif isinstance(action, SetReplicas) and max_step is not None:
            current = sum(g.applied_replicas.values())
            delta = action.total - current
            if abs(delta) > max_step:
                total = current + max_step * (1 if delta > 0 else -1)
                # Hard bounds win over the step limit: never leave [min, max] to go slowly.
                scaling = g.policy.scaling
                total = min(max(total, scaling.min_replicas), scaling.max_replicas)
                new = SetReplicas(split_replicas(total, _spread(action.replicas, g)))
        if new is not action and new != action:
            what = (
                f"at most {max_step} replicas added or removed per step"
                if isinstance(action, SetReplicas)
                else f"at most {max_shift:.0%} of traffic moved per step"
            )
            result.changes.append(
                GuardChange("blast_radius", action.kind, _fmt(action), _fmt(new), what)
            )
        out.append(new)
    result.actions = out


def cap_shift(
    target: Mapping[str, float], current: Mapping[str, float], max_shift: float
) -> dict[str, float]:
    """Move from ``current`` toward ``target`` so no key gains more than ``max_shift``."""
    keys = set(target) | set(current)
    delta = {k: target.get(k, 0.0) - current.get(k, 0.0) for k in keys}
    biggest_gain = max((d for d in delta.values() if d > 0), default=0.0)
    if biggest_gain <= max_shift + 1e-9 or sum(current.values()) <= 0:
        return dict(target)
    f = max_shift / biggest_gain
    return {k: round(current.get(k, 0.0) + f * delta[k], 6) for k in sorted(keys)}


# --------------------------------------------------------------------------- 5. budget & compliance


def budget_compliance(result: GuardResult, g: GuardInput) -> None:
    """Never outside the allowed regions; within the budget unless the SLO would break."""
    allowed = set(g.policy.intent.allowed_regions)
    budget = g.policy.intent.budget_usd_per_hour
    out: list[Action] = []
    for action in result.actions:
        new: Action = action
        if isinstance(action, SetRegionWeights):
            outside = {r for r, w in action.weights.items() if w > 0 and r not in allowed}
            if outside:
                kept = {r: w for r, w in action.weights.items() if r in allowed}
                if sum(kept.values()) <= 0:
                    kept = {r: 1.0 for r in allowed if r in g.catalogue}
                new = replace(action, weights=_normalise(kept))
                result.changes.append(
                    GuardChange(
                        "compliance",
                        action.kind,
                        _fmt(action),
                        _fmt(new),
                        f"regions outside the compliance boundary: {sorted(outside)}",
                    )
                )
        elif isinstance(action, SetReplicas):
            outside = {r for r, n in action.replicas.items() if n > 0 and r not in allowed}
            replicas = dict(action.replicas)
            if outside:
                moved = sum(replicas[r] for r in outside)
                inside = {r: float(n) for r, n in replicas.items() if r in allowed and n > 0}
                if not inside:
                    inside = {r: 1.0 for r in allowed if r in g.catalogue}
                replicas = split_replicas(
                    sum(n for r, n in replicas.items() if r not in outside) + moved, inside
                )
                replicas.update({r: 0 for r in outside})
                result.changes.append(
                    GuardChange(
                        "compliance",
                        action.kind,
                        _fmt(action),
                        _fmt(SetReplicas(replicas)),
                        f"replicas outside the compliance boundary: {sorted(outside)}",
                    )
                )
            if budget is not None:
                cost = replica_cost(replicas, g.catalogue)
                if cost > budget:
                    if g.slo_at_risk:
                        result.notes.append(
                            f"over the budget ceiling (${cost:.2f}/h > ${budget:g}/h) to protect "
                            "the SLO: the load needs these replicas"
                        )
                    else:
                        affordable = _affordable(replicas, g.catalogue, budget)
                        affordable = max(affordable, g.policy.scaling.min_replicas)
                        capped = split_replicas(
                            affordable, {r: float(n) for r, n in replicas.items()}
                        )
                        result.changes.append(
                            GuardChange(
                                "budget",
                                action.kind,
                                _fmt(SetReplicas(replicas)),
                                _fmt(SetReplicas(capped)),
                                f"${cost:.2f}/h over the ceiling ${budget:g}/h",
                            )
                        )
                        replicas = capped
            if replicas != dict(action.replicas):
                new = SetReplicas(replicas)
        out.append(new)
    result.actions = out


def replica_cost(replicas: Mapping[str, int], catalogue: RegionCatalogue) -> float:
    """$/h of running these replicas (catalogue replica prices)."""
    return _cost(tuple(replicas.items()), catalogue)[0]


def replica_cost_shown(
    replicas: Mapping[str, int], catalogue: RegionCatalogue
) -> tuple[float, float]:
    """$/h of running these replicas, and the same rounded to 4 decimals (for evidence)."""
    return _cost(tuple(replicas.items()), catalogue)


@lru_cache(maxsize=4096)
def _cost(items: tuple[tuple[str, int], ...], catalogue: RegionCatalogue) -> tuple[float, float]:
    """Memoised replica cost and its rounding (a fleet repeats a few layouts every pass)."""
    cost = sum(n * catalogue[r].replica_usd_per_hour for r, n in items if n and r in catalogue)
    return cost, round(cost, 4)


def _affordable(replicas: Mapping[str, int], catalogue: RegionCatalogue, budget: float) -> int:
    total = sum(replicas.values())
    cost = replica_cost(replicas, catalogue)
    if total == 0 or cost <= 0:
        return total
    return max(int(budget // (cost / total)), 0)


PIPELINE: tuple[tuple[str, Guard], ...] = (
    ("bounds", bounds),
    ("cooldown", cooldown),
    ("rate_limit", rate_limit),
    ("blast_radius", blast_radius),
    ("budget_compliance", budget_compliance),
)
"""The fixed order every decision passes through."""


def apply_guards(actions: list[Action], g: GuardInput) -> GuardResult:
    """Run every guard in order over the actions."""
    result = GuardResult(list(actions))
    if not actions:
        return result
    for _, guard in PIPELINE:
        guard(result, g)
    return result


def drop_unchanged(
    actions: list[Action],
    traffic: Mapping[str, float],
    region_weights: Mapping[str, float],
    replicas: Mapping[str, int],
    cascade: float | None,
    shadow_version: str | None = None,
) -> list[Action]:
    """Leave out changes that a guard turned into what is already applied (no-op actions).

    ``shadow_version``: the version mirrored now, if any; a traffic change that keeps the
    weights but ends that mirror is not a no-op.
    """
    out: list[Action] = []
    for action in actions:
        if isinstance(action, SetReplicas) and _same(action.replicas, replicas, 0):
            continue
        if isinstance(action, SetRegionWeights) and _same(action.weights, region_weights, 1e-6):
            continue
        if (
            isinstance(action, SetTraffic)
            and action.shadow_version is None
            and shadow_version is None
            and _same(action.weights, traffic, 1e-6)
        ):
            continue
        if (
            isinstance(action, SetCascadeThreshold)
            and cascade is not None
            and abs(action.threshold - cascade) < 1e-9
        ):
            continue
        out.append(action)
    return out


def _same(a: Mapping[str, float], b: Mapping[str, float], tol: float) -> bool:
    return all(abs(a.get(k, 0) - b.get(k, 0)) <= tol for k in set(a) | set(b))

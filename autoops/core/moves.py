"""Region moves, make-before-break: replicas come up in a region before traffic goes there.

Moving traffic to a region that runs no replica yet (they take a cold start to become ready)
fails every request sent there: the region then looks degraded, traffic is evacuated again, and
the move flaps. As Flagger and Argo Rollouts do for a canary, a move first starts replicas in
each region that gains traffic and moves traffic only once they are ready: when the serving
system reports them running (live: Serve's replica states), else when the region's metrics show
healthy replicas, or, where neither says, once ``scaling.predictive.horizon_s`` (the policy's
cold-start horizon) has passed since they were asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from autoops.core.frozen import builder
from autoops.core.guards import replica_cost
from autoops.core.placement import split_replicas
from autoops.model import AppliedState, VersionMetrics
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue

Warming = tuple[tuple[str, float], ...]
"""(region, when its first replicas were asked for) of regions warming up for a move."""


@dataclass(frozen=True, slots=True)
class MovePlan:
    """What one pass of a region move runs: the weights, the replicas, and why it waits."""

    weights: Mapping[str, float]
    """The weights traffic will really have after this pass (the applied ones while warming)."""
    replicas: dict[str, int]
    moves: bool
    """Whether traffic moves this pass."""
    warming: Warming
    reason: str | None = None


_plan = builder(MovePlan)


def healthy_by_region(metrics: tuple[VersionMetrics, ...]) -> dict[str, int]:
    """Healthy replicas each region's metrics report (regions without the gauge left out)."""
    out: dict[str, int] = {}
    for row in metrics:
        if row.healthy_replicas is not None:
            out[row.region] = max(out.get(row.region, 0), row.healthy_replicas)
    return out


def _ready(
    region: str,
    need: int,
    have: int,
    running: Mapping[str, int] | None,
    healthy: Mapping[str, int],
    since: Mapping[str, float],
    now: float,
    warmup_s: float,
) -> bool:
    """Whether ``region`` runs the ``need`` ready replicas its new share of traffic needs."""
    if running is not None and region in running:
        return running[region] >= need
    if region in healthy:
        return healthy[region] >= need
    if have < need:
        return False
    asked = since.get(region)
    # Replicas the serving system already ran before this move asked for more: ready.
    return asked is None or now - asked >= warmup_s


def _fits(policy: Policy, catalogue: RegionCatalogue, replicas: Mapping[str, int]) -> bool:
    """Whether ``replicas`` stay within max_replicas and the budget."""
    if sum(replicas.values()) > policy.scaling.max_replicas:
        return False
    budget = policy.intent.budget_usd_per_hour
    return budget is None or replica_cost(replicas, catalogue) <= budget


def plan_move(
    policy: Policy,
    catalogue: RegionCatalogue,
    applied: AppliedState,
    step: Mapping[str, float],
    target: Mapping[str, float],
    desired: int,
    metrics: tuple[VersionMetrics, ...],
    warming: Warming,
    now: float,
) -> MovePlan:
    """One pass of a (non-evacuating) move from the applied weights toward ``step``.

    ``step`` is this pass's share of the move (the blast-radius cap), ``target`` where the move
    ends: a cold region starts the replicas of its final share at once when there is room, so
    the later steps need not wait for another cold start.
    """
    current = applied.region_weights
    gaining = sorted(r for r, w in step.items() if w > current.get(r, 0.0) + 1e-9)
    since = dict(warming)
    healthy = healthy_by_region(metrics)
    warmup_s = policy.scaling.predictive.horizon_s
    after = split_replicas(desired, step)
    cold = [
        r
        for r in gaining
        if not _ready(
            r,
            after.get(r, 0),
            applied.replicas.get(r, 0),
            applied.ready_replicas,
            healthy,
            since,
            now,
            warmup_s,
        )
    ]
    if not cold:
        return _plan(step, after, True, ())
    before = split_replicas(desired, current)
    final = split_replicas(desired, target)
    warm = {**before, **{r: max(before.get(r, 0), final.get(r, 0), after[r]) for r in cold}}
    fits = _fits(policy, catalogue, warm)
    if not fits:
        warm = {**before, **{r: max(before.get(r, 0), after[r]) for r in cold}}
        fits = _fits(policy, catalogue, warm)
    names = ", ".join(cold)
    if not fits:
        # No room to run both: the move goes on as before, the replicas moving with the traffic.
        return _plan(
            step,
            after,
            True,
            (),
            f"no room within max_replicas and the budget to start replicas in {names} before "
            "traffic moves: they start with it",
        )
    started = tuple(
        (r, since[r] if r in since and applied.replicas.get(r, 0) >= warm[r] else now) for r in cold
    )
    return _plan(
        current,
        warm,
        False,
        started,
        f"make-before-break: starting replicas in {names}; traffic moves once they are ready",
    )

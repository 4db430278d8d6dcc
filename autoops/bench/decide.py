"""``autoops bench decide``: one decide() pass over many deployments across many regions."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from autoops.bench.common import BenchResult, machine_info, summarize
from autoops.core.decide import decide
from autoops.core.placement import place, signal_map
from autoops.core.scaling import append_rate
from autoops.core.state import ControllerState, DecisionContext, Phase, RolloutState, ScalingState
from autoops.model import AppliedState, RegionSignals, Snapshot, VersionMetrics
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue


@dataclass(frozen=True, slots=True)
class DecideBenchConfig:
    """Size of the synthetic fleet and how often to repeat the pass."""

    deployments: int = 1000
    regions: int = 16
    repeats: int = 30
    warmup: int = 3
    seed: int = 7


def _policies(regions: list[str]) -> list[Policy]:
    """A few policy shapes a fleet would mix: latency, carbon, cost; canary strategies."""
    shapes = []
    for i, objective in enumerate(("latency", "carbon", "cost", "weighted")):
        allowed = regions[i : i + 4] if len(regions) >= i + 4 else regions[:4]
        shapes.append(
            Policy.model_validate(
                {
                    "metadata": {"name": f"bench-{objective}"},
                    "target": {"application": "app", "deployment": "model", "stable_version": "v1"},
                    "slo": {"latency_p99_ms": 250, "error_rate": 0.01},
                    "intent": {
                        "allowed_regions": allowed,
                        "objective": objective,
                        "min_regions": 2,
                        "budget_usd_per_hour": 400,
                    },
                    "scaling": {
                        "min_replicas": 2,
                        "max_replicas": 64,
                        "predictive": {"enabled": True},
                    },
                    "rollout": {"steps": [5, 25, 50], "analysis_interval_s": 30},
                }
            )
        )
    return shapes


def build_contexts(config: DecideBenchConfig, catalogue: RegionCatalogue) -> list[DecisionContext]:
    """A seeded synthetic fleet in 2 of each policy's allowed regions.

    The mix: 20% mid-canary (analysed every pass), 10% under-provisioned (must scale out),
    10% placed away from their best regions (must move), the rest steady.
    """
    rng = random.Random(config.seed)
    regions = list(catalogue.names())[: config.regions]
    policies = _policies(regions)
    signals = tuple(
        RegionSignals(
            r,
            carbon_intensity=rng.uniform(50, 700),
            price_usd_per_mwh=rng.uniform(20, 200),
            healthy=True,
        )
        for r in regions
    )
    by_region = signal_map(signals)
    now = 10_000.0
    contexts = []
    for i in range(config.deployments):
        policy = policies[i % len(policies)]
        preferred = place(policy.intent, policy.slo.latency_p99_ms, catalogue, by_region, {})
        used = sorted(preferred.weights)
        if i % 10 == 7:
            used = [r for r in policy.intent.allowed_regions if r not in preferred.weights][:2]
        canary = i % 5 == 0
        versions = ("v1", "v2") if canary else ("v1",)
        traffic = {"v1": 0.95, "v2": 0.05} if canary else {"v1": 1.0}
        rows = []
        for region in used:
            for version in versions:
                share = traffic[version] / len(used)
                rate = 200 * share * rng.uniform(0.8, 1.2)
                rows.append(
                    VersionMetrics(
                        deployment=f"model-{i}",
                        version=version,
                        region=region,
                        request_rate=rate,
                        error_ratio=rng.uniform(0, 0.004),
                        latency_p50_ms=40,
                        latency_p95_ms=90,
                        latency_p99_ms=rng.uniform(100, 180),
                        ongoing_requests=rate * 0.08,
                        healthy_replicas=4,
                        accuracy=rng.uniform(0.93, 0.96),
                        request_count=rate * 30,
                    )
                )
        applied = AppliedState(
            versions=versions,
            traffic=traffic,
            region_weights={r: 1.0 / len(used) for r in used},
            replicas=_replicas(rng, used, rows, i),
            cascade_threshold=0.8,
        )
        snapshot = Snapshot(
            now, "app", f"model-{i}", applied, tuple(rows), signals, last_metrics_at=now
        )
        rollout = (
            RolloutState(
                phase=Phase.PROGRESSING,
                stable_version="v1",
                canary_version="v2",
                step=0,
                step_started_at=now - 10,
                last_progress_at=now - 10,
            )
            if canary
            else RolloutState(stable_version="v1")
        )
        state = ControllerState(rollout=rollout, scaling=_history(rng, now))
        contexts.append(DecisionContext(now, policy, snapshot, state, catalogue))
    return contexts


def _history(rng: random.Random, now: float) -> ScalingState:
    """Two minutes of noisy, flat request-rate history, built tick by tick as live passes do."""
    state = ScalingState()
    for k in range(24, 0, -1):
        state = append_rate(state, now - 5 * k, 200 + rng.uniform(-10, 10), keep=24)
    return state


def _replicas(
    rng: random.Random, used: list[str], rows: list[VersionMetrics], i: int
) -> dict[str, int]:
    """Replicas sized to the load (target 2 in flight each); every 10th deployment is short."""
    load = sum(r.ongoing_requests or 0.0 for r in rows)
    total = max(2, round(load / 2))
    if i % 10 == 3:
        total = max(2, total // 2)  # under-provisioned: the pass must scale it out
    share = total // len(used)
    out = {r: share for r in used}
    out[used[0]] += total - share * len(used)
    del rng
    return out


def run(
    config: DecideBenchConfig,
    catalogue: RegionCatalogue,
    progress: Callable[[int, int], None] | None = None,
) -> BenchResult:
    """Time ``repeats`` passes of decide() over the whole fleet (one core, one thread)."""
    contexts = build_contexts(config, catalogue)
    passes: list[float] = []
    actions = 0
    total = config.warmup + config.repeats
    for i in range(total):
        if progress is not None:
            progress(i, total)
        start = time.perf_counter()
        for ctx in contexts:
            decision, _ = decide(ctx)
            actions += len(decision.actions)
        elapsed = time.perf_counter() - start
        if i >= config.warmup:
            passes.append(elapsed)
    stats = summarize(passes)
    return BenchResult(
        name="decide",
        config={
            "deployments": config.deployments,
            "regions": len(list(catalogue.names())[: config.regions]),
            "repeats": config.repeats,
            "warmup": config.warmup,
            "seed": config.seed,
            "canary_share": 0.2,
            "underprovisioned_share": 0.1,
            "misplaced_share": 0.1,
        },
        machine=machine_info(),
        results={
            "pass_ms": stats,
            "per_deployment_us": stats["median_ms"] * 1000 / config.deployments,
            "actions_per_pass": actions / (config.warmup + config.repeats),
            "goal_median_ms": 20.0,
            "goal_met": stats["median_ms"] < 20.0,
        },
        anchors={
            "ray_serve_autoscaler": "Ray Serve's controller runs its autoscaling policy per "
            "deployment on every control-loop iteration (0.1 s period)",
        },
    )

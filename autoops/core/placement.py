"""Placement: region weights from cost, carbon, latency and health, inside the boundary."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from autoops.model import RegionSignals
from autoops.policy.schema import Intent, Objective
from autoops.regions.model import Region, RegionCatalogue


@dataclass(frozen=True, slots=True)
class Placement:
    """Target region weights, the score of each candidate (lower is better) and why."""

    weights: Mapping[str, float]
    scores: Mapping[str, float]
    reasons: tuple[str, ...]
    excluded: Mapping[str, str]
    """Allowed regions left out, with why."""
    informed: bool = True
    """False when no candidate had the signal the objective needs (weights are a fallback)."""
    evidence: Mapping[str, float | str | None] = field(default_factory=dict)
    """Each candidate's score, keyed ``region.NAME.score``, for the decision's evidence."""


def region_cost_per_hour(region: Region, signal: RegionSignals | None) -> float:
    """$/h of one replica in the region: its price plus the energy it draws at the grid price."""
    energy = 0.0
    if signal is not None and signal.price_usd_per_mwh is not None:
        energy = region.replica_power_kw * max(signal.price_usd_per_mwh, 0.0) / 1000.0
    return region.replica_usd_per_hour + energy


def _objective_values(
    intent: Intent,
    region: Region,
    signal: RegionSignals | None,
) -> tuple[float | None, float, float]:
    """(carbon intensity or None, $/h, latency ms) of a region."""
    carbon = signal.carbon_intensity if signal is not None else None
    return carbon, region_cost_per_hour(region, signal), region.latency_to(intent.user_group)


def place(
    intent: Intent,
    latency_slo_ms: float,
    catalogue: RegionCatalogue,
    signals: Mapping[str, RegionSignals],
    degraded: Mapping[str, str],
) -> Placement:
    """Rank the allowed, healthy regions by the objective and weight the best ``min_regions``."""
    degraded_items = tuple(sorted(degraded.items())) if degraded else ()
    # Targets of one policy share its Intent object, and a pass's targets one signals map: look
    # them up by identity first, so neither is re-hashed for every target.
    key = (id(intent), latency_slo_ms, id(catalogue), id(signals), degraded_items)
    hit = _BY_IDENTITY.get(key)
    if hit is not None and hit[0] is intent and hit[1] is catalogue and hit[2] is signals:
        return hit[3]
    result = _place_cached(intent, latency_slo_ms, catalogue, _freeze(signals), degraded_items)
    if len(_BY_IDENTITY) > 1024:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[key] = (intent, catalogue, signals, result)
    return result


_BY_IDENTITY: dict[
    tuple[int, float, int, int, tuple[tuple[str, str], ...]],
    tuple[Intent, RegionCatalogue, Mapping[str, RegionSignals], Placement],
] = {}


_MAPS: dict[int, tuple[tuple[RegionSignals, ...], Mapping[str, RegionSignals]]] = {}


_UNHEALTHY: dict[int, tuple[Mapping[str, RegionSignals], frozenset[str]]] = {}


def unhealthy_regions(signals: Mapping[str, RegionSignals]) -> frozenset[str]:
    """Regions whose health signal says unhealthy, memoised by identity of the signals map."""
    hit = _UNHEALTHY.get(id(signals))
    if hit is not None and hit[0] is signals:
        return hit[1]
    names = frozenset(name for name, sig in signals.items() if sig.healthy is False)
    if len(_UNHEALTHY) > 64:
        _UNHEALTHY.clear()
    _UNHEALTHY[id(signals)] = (signals, names)
    return names


def signal_map(signals: tuple[RegionSignals, ...]) -> Mapping[str, RegionSignals]:
    """Signals by region (read-only), memoised by identity: a tick's snapshots share one tuple."""
    hit = _MAPS.get(id(signals))
    if hit is not None and hit[0] is signals:
        return hit[1]
    mapping = {s.region: s for s in signals}
    if len(_MAPS) > 64:
        _MAPS.clear()
    _MAPS[id(signals)] = (signals, mapping)
    return mapping


class _FrozenSignals:
    """Signals as a sorted tuple with its hash computed once (it keys the placement memo)."""

    __slots__ = ("_hash", "items")

    def __init__(self, items: tuple[tuple[str, RegionSignals], ...]) -> None:
        self.items = items
        self._hash = hash(items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _FrozenSignals) and other.items == self.items


_FROZEN: dict[int, tuple[Mapping[str, RegionSignals], _FrozenSignals]] = {}


def _freeze(signals: Mapping[str, RegionSignals]) -> _FrozenSignals:
    """The signals, frozen and memoised by identity (one signals map serves a whole pass)."""
    hit = _FROZEN.get(id(signals))
    if hit is not None and hit[0] is signals:
        return hit[1]
    frozen = _FrozenSignals(tuple(sorted(signals.items())))
    if len(_FROZEN) > 64:
        _FROZEN.clear()
    _FROZEN[id(signals)] = (signals, frozen)
    return frozen


@lru_cache(maxsize=256)
def _place_cached(
    intent: Intent,
    latency_slo_ms: float,
    catalogue: RegionCatalogue,
    signal_items: _FrozenSignals,
    degraded_items: tuple[tuple[str, str], ...],
) -> Placement:
    """Pure placement, memoised on its inputs (placement is shared by every target of a policy)."""
    signals = dict(signal_items.items)
    degraded = dict(degraded_items)
    excluded: dict[str, str] = {}
    candidates: dict[str, tuple[float | None, float, float]] = {}
    for name in intent.allowed_regions:
        if name not in catalogue:
            excluded[name] = "not in the region catalogue"
            continue
        if name in degraded:
            excluded[name] = degraded[name]
            continue
        region = catalogue[name]
        values = _objective_values(intent, region, signals.get(name))
        if values[2] >= latency_slo_ms:
            excluded[name] = (
                f"latency to users {values[2]:.0f} ms cannot meet the p99 SLO {latency_slo_ms:g} ms"
            )
            continue
        candidates[name] = values
    reasons: list[str] = []
    if not candidates:
        return Placement({}, {}, ("no allowed region is healthy and within reach",), excluded)

    ceiling = intent.carbon_ceiling_g_per_kwh
    if ceiling is not None:
        under = {n for n, v in candidates.items() if v[0] is not None and v[0] <= ceiling}
        if under:
            for name in list(candidates):
                if name not in under:
                    carbon = candidates[name][0]
                    shown = "unknown" if carbon is None else f"{carbon:.0f}"
                    excluded[name] = f"carbon {shown} g/kWh above the ceiling {ceiling:g}"
                    del candidates[name]

    scores = _scores(intent, candidates)
    ranked = sorted(scores, key=lambda n: (scores[n], n))
    chosen = [n for n in ranked if math.isfinite(scores[n])][: intent.min_regions]
    informed = bool(chosen)
    if not chosen:
        # Every candidate lacks the signal the objective needs: no basis to prefer one.
        chosen = ranked
        reasons.append(
            f"no {intent.objective.value} data for any allowed region: spread evenly "
            "over the healthy ones"
        )
    share = 1.0 / len(chosen)
    weights = {n: share for n in chosen}
    reasons.append(
        f"objective {intent.objective.value}: "
        + ", ".join(f"{n}={scores[n]:.3g}" for n in ranked)
        + f"; chosen {', '.join(chosen)}"
    )
    evidence: dict[str, float | str | None] = {
        f"region.{name}.score": round(score, 4) if math.isfinite(score) else None
        for name, score in scores.items()
    }
    return Placement(weights, scores, tuple(reasons), excluded, informed, evidence)


def _scores(
    intent: Intent, candidates: Mapping[str, tuple[float | None, float, float]]
) -> dict[str, float]:
    """Score each candidate (lower is better); a missing signal scores infinity."""
    objective = intent.objective
    if objective is Objective.CARBON:
        return {n: (v[0] if v[0] is not None else math.inf) for n, v in candidates.items()}
    if objective is Objective.COST:
        return {n: v[1] for n, v in candidates.items()}
    if objective is Objective.LATENCY:
        return {n: v[2] for n, v in candidates.items()}
    carbons = [v[0] for v in candidates.values() if v[0] is not None]
    mean_carbon = sum(carbons) / len(carbons) if carbons else 1.0
    mean_cost = sum(v[1] for v in candidates.values()) / len(candidates) or 1.0
    mean_latency = sum(v[2] for v in candidates.values()) / len(candidates) or 1.0
    w = intent.weights
    scores: dict[str, float] = {}
    for name, (carbon, cost, latency) in candidates.items():
        carbon_term = (carbon / mean_carbon) if carbon is not None and mean_carbon else math.inf
        if w.carbon == 0:
            carbon_term = 0.0
        scores[name] = (
            w.cost * cost / mean_cost + w.carbon * carbon_term + w.latency * latency / mean_latency
        )
    return scores


def objective_of(weights: Mapping[str, float], scores: Mapping[str, float]) -> float:
    """Traffic-weighted score of a weighting; regions without a score count as infinity."""
    total = 0.0
    for name, weight in weights.items():
        if weight <= 0:
            continue
        total += weight * scores.get(name, math.inf)
    return total


def split_replicas(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` replicas across regions by weight (largest remainder), ≥1 per used region."""
    return dict(_split_cached(total, tuple(weights.items())))


@lru_cache(maxsize=4096)
def _split_cached(total: int, items: tuple[tuple[str, float], ...]) -> tuple[tuple[str, int], ...]:
    """Memoised split (a fleet shares a few weightings), as a tuple so the cache stays immutable."""
    return tuple(_split(total, dict(items)).items())


def _split(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split behind ``split_replicas``."""
    used = sorted((n for n, w in weights.items() if w > 0), key=lambda n: (-weights[n], n))
    if total <= 0 or not used:
        return {n: 0 for n in weights}
    if total < len(used):
        used = used[:total]
    weight_sum = sum(weights[n] for n in used)
    raw = {n: total * weights[n] / weight_sum for n in used}
    out = {n: max(1, math.floor(raw[n])) for n in used}
    remaining = total - sum(out.values())
    order = sorted(used, key=lambda n: (-(raw[n] - math.floor(raw[n])), n))
    i = 0
    while remaining > 0:
        out[order[i % len(order)]] += 1
        remaining -= 1
        i += 1
    while remaining < 0:
        # Only possible when the ≥1 floor overshoots: take from the largest.
        biggest = max(out, key=lambda n: (out[n], n))
        out[biggest] -= 1
        remaining += 1
    for name in weights:
        out.setdefault(name, 0)
    return out

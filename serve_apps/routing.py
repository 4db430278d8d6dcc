"""Where one request goes: version by weights, region by weights, shadow, cascade, overload.

Pure: the breakers, the time and the randomness are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from autoops.contract import VERSION_HEADER, RoutingTable
from serve_apps.breaker import BreakerBoard

Path = Literal[
    "primary", "header", "cascade_small", "cascade_escalated", "degraded", "breaker_fallback"
]


class RoutingError(ValueError):
    """The routing table (or a request) names something the ingress cannot route to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownVersion(RoutingError):  # noqa: N818 -- the interface spec's name
    """The version header names a version that has no deployment."""

    def __init__(self, version: str, known: Collection[str]) -> None:
        super().__init__(VERSION_HEADER, f"unknown version {version!r}; deployed: {sorted(known)}")
        self.version = version


@dataclass(frozen=True)
class RoutePlan:
    """Where one request goes, and why."""

    version: str
    region: str
    first_version: str | None
    shadow_version: str | None
    degraded: bool
    shed: bool
    reason: str
    path: Path = "primary"
    first_region: str | None = None
    shadow_region: str | None = None


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    positive = {k: w for k, w in sorted(weights.items()) if w > 0}
    total = sum(positive.values())
    return {k: w / total for k, w in positive.items()} if total > 0 else {}


def _pick(weights: Sequence[tuple[str, float]], rng: random.Random) -> str:
    """One key, drawn with probability proportional to its (positive) weight."""
    total = sum(w for _, w in weights)
    point = rng.random() * total
    for key, weight in weights:
        point -= weight
        if point < 0:
            return key
    return weights[-1][0]


class Router:
    """Plans each request's route from the routing table and the deployments that exist."""

    def __init__(self, table: RoutingTable, deployed: Collection[tuple[str, str]]) -> None:
        self._table = table
        self._regions: dict[str, list[str]] = {}
        for version, region in sorted(set(deployed)):
            self._regions.setdefault(version, []).append(region)
        self._weights = _normalise(table.weights)
        self._region_weights = _normalise(table.region_weights)
        self._check()

    @property
    def table(self) -> RoutingTable:
        """The routing table this router applies."""
        return self._table

    def deployed_versions(self) -> list[str]:
        """Versions with at least one deployment, sorted."""
        return sorted(self._regions)

    def normalised_weights(self) -> dict[str, float]:
        """Version weights scaled to sum to 1 (zero weights left out)."""
        return dict(self._weights)

    def normalised_region_weights(self) -> dict[str, float]:
        """Region weights scaled to sum to 1 (zero weights left out)."""
        return dict(self._region_weights)

    def pick_region(self, version: str, rng: random.Random, prefer: str | None = None) -> str:
        """A region of ``version``: ``prefer`` when deployed there, else by region weights."""
        regions = self._regions[version]
        if prefer in regions:
            return prefer
        weighted = [(r, self._region_weights[r]) for r in regions if r in self._region_weights]
        return _pick(weighted, rng) if weighted else regions[0]

    def plan(
        self,
        *,
        header_version: str | None,
        in_flight: int,
        breakers: BreakerBoard,
        now: float,
        rng: random.Random,
    ) -> RoutePlan:
        """Plan one request: overload, then the header, then weights and breakers."""
        table = self._table
        if in_flight >= table.overload.max_in_flight:
            return self._overload_plan(in_flight, rng)
        path: Path
        if header_version and table.header_override:
            if header_version not in self._regions:
                raise UnknownVersion(header_version, self._regions)
            version, path, reason = header_version, "header", f"pinned by {VERSION_HEADER}"
        else:
            version, path, reason = self._pick_version(breakers, now, rng)
        region = self.pick_region(version, rng)
        shadow_version, shadow_region = self._shadow(version, region, rng)
        first_version, first_region = None, None
        small = table.cascade.small_version
        if (
            table.cascade.enabled
            and path != "header"
            and small in self._regions
            and small != version
            and breakers.state(small, now) == "closed"
        ):
            first_version, first_region = small, self.pick_region(small, rng, prefer=region)
        return RoutePlan(
            version=version,
            region=region,
            first_version=first_version,
            shadow_version=shadow_version,
            degraded=False,
            shed=False,
            reason=reason,
            path=path,
            first_region=first_region,
            shadow_region=shadow_region,
        )

    def escalate(self, confidences: Sequence[float]) -> bool:
        """True when any row's confidence is under the cascade threshold."""
        threshold = self._table.cascade.threshold
        return any(c < threshold for c in confidences)

    def _pick_version(
        self, breakers: BreakerBoard, now: float, rng: random.Random
    ) -> tuple[str, Path, str]:
        allowed = [(v, w) for v, w in self._weights.items() if breakers.allow(v, now, rng)]
        if allowed:
            return _pick(allowed, rng), "primary", "weights"
        stable = self._table.stable_version
        return stable, "breaker_fallback", "breaker fallback: every weighted version is open"

    def _shadow(
        self, version: str, region: str, rng: random.Random
    ) -> tuple[str | None, str | None]:
        shadow = self._table.shadow
        if (
            shadow.version is None
            or shadow.fraction <= 0
            or shadow.version == version
            or shadow.version not in self._regions
            or rng.random() >= shadow.fraction
        ):
            return None, None
        return shadow.version, self.pick_region(shadow.version, rng, prefer=region)

    def _overload_plan(self, in_flight: int, rng: random.Random) -> RoutePlan:
        table = self._table
        small = table.cascade.small_version
        limit = table.overload.max_in_flight
        if small is not None and small in self._regions:
            return RoutePlan(
                version=small,
                region=self.pick_region(small, rng),
                first_version=None,
                shadow_version=None,
                degraded=True,
                shed=False,
                reason=f"overload: {in_flight} in flight >= {limit}, small model answers",
                path="degraded",
            )
        stable = table.stable_version
        return RoutePlan(
            version=stable,
            region=self.pick_region(stable, rng),
            first_version=None,
            shadow_version=None,
            degraded=False,
            shed=True,
            reason=f"overload: {in_flight} in flight >= {limit} and no small model: shed",
            path="degraded",
        )

    def _check(self) -> None:
        table = self._table
        for version in self._weights:
            if version not in self._regions:
                raise RoutingError(f"weights[{version}]", "weight on a version with no deployment")
        served = {r for regions in self._regions.values() for r in regions}
        for region in self._region_weights:
            if region not in served:
                raise RoutingError(
                    f"region_weights[{region}]", "weight on a region with no deployment"
                )
        if table.stable_version not in self._regions:
            raise RoutingError("stable_version", f"{table.stable_version!r} has no deployment")
        shadow = table.shadow
        if shadow.fraction > 0 and shadow.version and shadow.version not in self._regions:
            raise RoutingError("shadow.version", f"{shadow.version!r} has no deployment")
        small = table.cascade.small_version
        if table.cascade.enabled and small and small not in self._regions:
            raise RoutingError("cascade.small_version", f"{small!r} has no deployment")

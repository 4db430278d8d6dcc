"""The region catalogue's value types (plain data, usable by the pure core)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GpuOffer:
    """A GPU type a region offers and its on-demand price."""

    type: str
    usd_per_hour: float


@dataclass(frozen=True, slots=True)
class Region:
    """One serving region: where it is, which grid feeds it, what it costs, how far users are."""

    name: str
    """Catalogue key, e.g. ``eu-west``."""
    cloud: str
    """Cloud provider: ``aws``, ``gcp``, ``azure`` or ``local``."""
    cloud_region: str
    """The provider's own region id, e.g. ``eu-west-1``."""
    carbon_zone: str
    """Grid zone whose carbon intensity applies (a file in data/carbon)."""
    price_zone: str
    """Zone whose electricity price applies (a file in data/electricity_prices)."""
    gpus: tuple[GpuOffer, ...]
    latency_ms: Mapping[str, float]
    """Round-trip latency from each user group, ms."""
    replica_usd_per_hour: float
    """$/h of one serving replica (its GPU share plus host), used for budgets."""
    replica_power_kw: float = 0.3
    """Power drawn by one replica, kW (idle replicas draw it too)."""
    serve_endpoint: str | None = None
    """Ray dashboard URL of this region's cluster, when there is one."""
    node_label: str | None = None
    """``ray.io/availability-region`` label value of this region's nodes."""
    description: str = ""

    def latency_to(self, group: str | None) -> float:
        """Latency to one user group, or the mean over all groups when ``group`` is None."""
        if group is None:
            values = list(self.latency_ms.values())
            return sum(values) / len(values) if values else 0.0
        return self.latency_ms.get(group, max(self.latency_ms.values(), default=0.0))


@dataclass(frozen=True, eq=False)
class RegionCatalogue:
    """Every known region, by name (compared and hashed by identity, so it can key a memo)."""

    regions: Mapping[str, Region] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.regions

    def __getitem__(self, name: str) -> Region:
        return self.regions[name]

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions.values())

    def __len__(self) -> int:
        return len(self.regions)

    def names(self) -> tuple[str, ...]:
        """Region names in catalogue order."""
        return tuple(self.regions)

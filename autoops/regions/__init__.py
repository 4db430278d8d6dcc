"""The region catalogue: the one source of regions for policies, simulator, signals and deployments."""

from autoops.regions.model import GpuOffer, Region, RegionCatalogue

__all__ = ["GpuOffer", "Region", "RegionCatalogue"]

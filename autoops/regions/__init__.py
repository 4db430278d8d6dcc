"""The region catalogue: the one source of regions for policies, simulator, signals, deployments."""

from autoops.regions.loader import default_catalogue, latency_groups, load_catalogue
from autoops.regions.model import GpuOffer, Region, RegionCatalogue

__all__ = [
    "GpuOffer",
    "Region",
    "RegionCatalogue",
    "default_catalogue",
    "latency_groups",
    "load_catalogue",
]

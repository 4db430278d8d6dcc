"""Region moves in the simulated world: replicas come up before traffic moves (no flapping)."""

from __future__ import annotations

import itertools

from autoops.bench.sim import REPO_ROOT
from autoops.model import RegionSignals
from autoops.policy.loader import load_policy
from autoops.regions.loader import default_catalogue
from autoops.sim.baselines import AutoOpsController
from autoops.sim.engine import SimConfig, simulate
from autoops.sim.signals import StaticSignals
from tests.sim.fakes import Flat


def test_a_carbon_move_into_a_cold_region_drops_nothing_and_does_not_flap() -> None:
    """The carbon week's first move (eu-west to ca-central, 60 s cold start) on flat load.

    Without make-before-break, traffic moved onto ca-central's cold replicas: every request
    sent there failed, the region read as degraded, traffic went back, and the move flapped
    until the rate limit stopped it.
    """
    catalogue = default_catalogue()
    policy = load_policy(REPO_ROOT / "policies" / "carbon-aware.yaml", catalogue)
    signals = StaticSignals(
        {
            "eu-west": RegionSignals("eu-west", 110.0, 60.0, True),
            "eu-central": RegionSignals("eu-central", 230.0, 60.0, True),
            "ca-central": RegionSignals("ca-central", 30.0, 10.0, True),
        }
    )
    config = SimConfig(duration_s=600.0, step_s=5.0, cold_start_s=60.0, seed=2)
    result = simulate(policy, catalogue, Flat(50.0, 600.0), signals, AutoOpsController(), config)
    assert result.totals["dropped"] == 0.0
    assert result.totals["failed_share"] < 0.01
    served_by = [{r for r, w in t.region_weights.items() if w > 0} for t in result.ticks]
    assert served_by[-1] == {"ca-central"}
    # eu-west's share only ever falls: traffic never comes back to it.
    west = [t.region_weights.get("eu-west", 0.0) for t in result.ticks]
    assert all(b <= a for a, b in itertools.pairwise(west))
    # ca-central gets traffic only once replicas asked for there have had the cold start.
    asked = next(t.time for t in result.ticks if t.replicas.get("ca-central", 0) > 0)
    first = next(t.time for t in result.ticks if t.region_weights.get("ca-central", 0.0) > 0)
    assert first - asked >= config.cold_start_s

"""What an applied routing table becomes after absolute actions (pure; used by every shell)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from autoops.model import (
    Action,
    AppliedState,
    Promote,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)


def apply_actions(applied: AppliedState, actions: Iterable[Action]) -> AppliedState:
    """The applied state after ``actions``, as an idempotent actuator would leave it."""
    for action in actions:
        if isinstance(action, SetTraffic):
            applied = replace(
                applied,
                traffic=dict(action.weights),
                shadow_version=action.shadow_version,
                shadow_fraction=action.shadow_fraction,
            )
        elif isinstance(action, Rollback):
            applied = replace(applied, traffic={action.to_version: 1.0}, shadow_version=None)
        elif isinstance(action, Promote):
            applied = replace(applied, traffic={action.version: 1.0}, shadow_version=None)
        elif isinstance(action, SetRegionWeights):
            applied = replace(applied, region_weights=dict(action.weights))
        elif isinstance(action, SetReplicas):
            applied = replace(applied, replicas=dict(action.replicas))
        elif isinstance(action, SetCascadeThreshold):
            applied = replace(applied, cascade_threshold=action.threshold)
    return applied

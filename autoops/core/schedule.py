"""Deferrable work: run it at the hour of lowest forecast carbon intensity before its deadline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlotChoice:
    """When deferrable work should start, and why."""

    start: float
    intensity: float | None
    region: str | None
    reason: str


def greenest_slot(
    now: float,
    deadline: float,
    forecast: Sequence[tuple[float, str, float | None]],
    duration_s: float = 0.0,
) -> SlotChoice:
    """The earliest start of lowest forecast intensity among (time, region, gCO2/kWh) slots.

    Slots before ``now`` or that would finish after ``deadline`` are ignored; a slot with no
    forecast is never chosen over one with a forecast. With no usable slot the work starts now.
    """
    latest = deadline - max(duration_s, 0.0)
    usable = [
        (t, region, value)
        for t, region, value in forecast
        if value is not None and math.isfinite(value) and value >= 0 and now <= t <= latest
    ]
    if not usable:
        return SlotChoice(now, None, None, "no carbon forecast before the deadline: start now")
    t, region, value = min(usable, key=lambda s: (s[2], s[0], s[1]))
    assert value is not None
    if t <= now:
        return SlotChoice(now, value, region, f"now is greenest ({value:.0f} g/kWh in {region})")
    return SlotChoice(t, value, region, f"deferred {t - now:.0f}s to {value:.0f} g/kWh in {region}")

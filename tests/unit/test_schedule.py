import math

import pytest

from autoops.core.schedule import greenest_slot


@pytest.mark.parametrize(
    ("forecast", "deadline", "duration", "start", "region"),
    [
        pytest.param(
            [(0, "a", 300), (3600, "a", 100), (7200, "b", 50)],
            10_000,
            0,
            7200,
            "b",
            id="lowest-before-deadline",
        ),
        pytest.param(
            [(0, "a", 300), (3600, "a", 100), (7200, "b", 50)],
            7_000,
            0,
            3600,
            "a",
            id="slot-past-deadline-ignored",
        ),
        pytest.param(
            [(0, "a", 300), (3600, "a", 100), (7200, "b", 50)],
            8_000,
            1_000,
            3600,
            "a",
            id="slot-that-would-overrun-ignored",
        ),
        pytest.param(
            [(0, "a", 100), (3600, "a", 100)], 10_000, 0, 0, "a", id="ties-start-earliest"
        ),
        pytest.param(
            [(0, "a", None), (3600, "b", math.nan), (7200, "c", 400)],
            10_000,
            0,
            7200,
            "c",
            id="missing-forecast-never-chosen",
        ),
    ],
)
def test_greenest_slot_picks_lowest_intensity_inside_the_deadline(
    forecast: list[tuple[float, str, float | None]],
    deadline: float,
    duration: float,
    start: float,
    region: str,
) -> None:
    choice = greenest_slot(0.0, deadline, forecast, duration)
    assert choice.start == start
    assert choice.region == region


def test_greenest_slot_starts_now_without_any_forecast() -> None:
    choice = greenest_slot(50.0, 1000.0, [(0, "a", None), (5000, "b", 10.0)])
    assert choice.start == 50.0
    assert choice.intensity is None
    assert "start now" in choice.reason

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from autoops.bench.nab_score import (
    PROFILES,
    SeriesScore,
    normalized_score,
    probationary_length,
    scaled_sigmoid,
    score_series,
    window_indices,
)

# A small corpus: (rows, windows as inclusive row ranges).
CORPUS: list[tuple[int, list[tuple[int, int]]]] = [
    (1000, [(300, 349), (700, 749)]),
    (4032, [(2787, 3189)]),
    (400, []),
    (16000, [(1000, 1396), (5000, 5396), (9000, 9396)]),
]


def _score(profile: str, detections: list[list[int]]) -> float:
    scores = [
        score_series(d, rows, windows, PROFILES[profile])
        for (rows, windows), d in zip(CORPUS, detections, strict=True)
    ]
    return normalized_score(scores)


@pytest.mark.parametrize("profile", list(PROFILES), ids=list(PROFILES))
def test_never_firing_detector_scores_zero(profile: str) -> None:
    assert _score(profile, [[] for _ in CORPUS]) == 0.0


@pytest.mark.parametrize("profile", list(PROFILES), ids=list(PROFILES))
def test_detector_firing_at_the_start_of_every_window_scores_100(profile: str) -> None:
    # NAB v1.1 divides a window's sigmoid by its maximum (2*sigmoid(5) - 1 = 0.98661), so the
    # first row scores exactly tp: no shortfall (v1.0's scorer.py would give 98.66 here).
    detections = [[start for start, _ in windows] for _, windows in CORPUS]
    assert _score(profile, detections) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("profile", list(PROFILES), ids=list(PROFILES))
def test_firing_everywhere_inside_windows_scores_100_too(profile: str) -> None:
    detections = [[i for s, e in windows for i in range(s, e + 1)] for _, windows in CORPUS]
    assert _score(profile, detections) == pytest.approx(100.0, abs=1e-9)


def test_hand_worked_case() -> None:
    # 100 rows: probation = floor(0.15 * 100) = 15 rows; one window rows 40..49, W = 10.
    # Detections at 10, 30, 45, 47 and 60, standard profile (tp 1, fp 0.11, fn 1).
    #   row 10: in probation, ignored.
    #   row 45: in the window, position -(49 - 45 + 1) / 10 = -0.5;
    #           sigmoid_scaled(-0.5) = 2 / (1 + e^-2.5) - 1 = 2 * 0.9241418 - 1 = 0.8482836;
    #           divided by sigmoid_scaled(-1) = 2 / (1 + e^-5) - 1 = 0.9866143: +0.8597925.
    #   row 47: later in the same window: only the earliest detection counts.
    #   row 30: before any window: the full FP weight, -0.11.
    #   row 60: 11 rows after the window's end, position 11 / (10 - 1) = 1.2222222;
    #           sigmoid_scaled(1.2222) = 2 / (1 + e^6.1111) - 1 = 2 * 0.0022135 - 1 = -0.9955730;
    #           times 0.11: -0.1095130.
    # raw = 0.8597925 - 0.11 - 0.1095130 = 0.6402795; null = -1 (one window missed);
    # perfect = 1; normalised = 100 * (0.6402795 + 1) / (1 + 1) = 82.01398.
    result = score_series([10, 30, 45, 47, 60], 100, [(40, 49)], PROFILES["standard"])
    assert result.raw == pytest.approx(0.6402795, abs=1e-6)
    assert result.false_positives == 2
    assert result.detected_windows == 1
    assert normalized_score([result]) == pytest.approx(82.01398, abs=1e-4)


@pytest.mark.parametrize(
    ("profile", "expected_raw"),
    [
        # one FP before any window and one missed window, on 100 rows with window 40..49
        pytest.param("standard", -0.11 - 1.0, id="standard"),
        pytest.param("reward_low_FP_rate", -0.22 - 1.0, id="low-fp"),
        pytest.param("reward_low_FN_rate", -0.11 - 2.0, id="low-fn"),
    ],
)
def test_profiles_weigh_false_positives_and_misses(profile: str, expected_raw: float) -> None:
    result = score_series([20], 100, [(40, 49)], PROFILES[profile])
    assert result.raw == pytest.approx(expected_raw)


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        pytest.param(-1.0, 0.98661, id="left-edge"),
        pytest.param(-0.5, 0.84828, id="middle"),
        pytest.param(0.0, 0.0, id="right-edge"),
        pytest.param(1.0, -0.98661, id="one-width-after"),
        pytest.param(3.0, -1.0, id="far-after"),
    ],
)
def test_scaled_sigmoid_matches_nab(position: float, expected: float) -> None:
    assert scaled_sigmoid(position) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(100, 15, id="small"),
        pytest.param(4032, 604, id="nab-4032"),
        pytest.param(15902, 750, id="capped-at-750"),
    ],
)
def test_probationary_length_is_15_percent_capped(rows: int, expected: int) -> None:
    assert probationary_length(rows) == expected


def test_window_wholly_in_probation_is_not_scored() -> None:
    result = score_series([], 100, [(2, 8)], PROFILES["standard"])
    assert result.raw == 0.0
    assert result.null == 0.0
    assert result.perfect == 1.0  # NAB's perfect counts every labelled window


def test_false_positive_just_after_a_window_costs_little() -> None:
    near = score_series([50], 100, [(40, 49)], PROFILES["standard"])
    far = score_series([90], 100, [(40, 49)], PROFILES["standard"])
    assert -1.0 - 0.11 <= far.raw < near.raw < -1.0


def test_window_indices_map_timestamps_to_rows_with_duplicates() -> None:
    t0 = datetime(2014, 1, 1)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(10)]
    stamps.insert(6, stamps[5])  # a duplicated row, as in some NAB files
    windows = [(stamps[2], stamps[5]), (t0 + timedelta(minutes=31), t0 + timedelta(hours=9))]
    # The first row stamped with the end closes the window, as in NAB's sweeper.
    assert window_indices(stamps, windows) == [(2, 5), (8, 10)]


def test_normalised_score_sums_over_the_corpus_before_normalising() -> None:
    good = SeriesScore(
        raw=1.0, null=-1.0, perfect=1.0, windows=1, detected_windows=1, false_positives=0
    )
    bad = SeriesScore(
        raw=-1.0 - 0.11 * 10,
        null=-3.0,
        perfect=3.0,
        windows=3,
        detected_windows=0,
        false_positives=10,
    )
    # (1.0 - 2.1 - (-4)) / (4 - (-4)) = 2.9 / 8
    assert normalized_score([good, bad]) == pytest.approx(100 * 2.9 / 8)
    assert not math.isclose(normalized_score([good, bad]), 0.5 * (100 + (-1.1 + 3) / 6 * 100))

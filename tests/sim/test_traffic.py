"""Traffic sources: the seeded synthetic load and the Azure / Alibaba trace loaders."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoops.sim.api import Request, TrafficSource
from autoops.sim.traffic import (
    AlibabaQpsTrace,
    AzureRequestTrace,
    SyntheticTraffic,
    TraceError,
)

ROOT = Path(__file__).resolve().parents[2]


def _data_dir() -> Path | None:
    env = os.environ.get("AUTOOPS_DATA_DIR")
    candidate = Path(env) if env else ROOT.parent / "shared" / "data"
    return candidate if (candidate / "traces").is_dir() else None


DATA = _data_dir()
needs_data = pytest.mark.skipif(
    DATA is None,
    reason="shared data not found (set AUTOOPS_DATA_DIR or put it at ../shared/data)",
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _times(source: TrafficSource, start: float, end: float) -> list[float]:
    return [r.time for r in source.requests(start, end)]


# --------------------------------------------------------------------------- synthetic


def test_synthetic_same_seed_gives_same_rates_and_requests() -> None:
    a = SyntheticTraffic(6 * 3600, peak_rps=20, seed=7)
    b = SyntheticTraffic(6 * 3600, peak_rps=20, seed=7)
    ts = np.arange(0, 6 * 3600, 13.7)
    assert np.array_equal(a.rates(ts), b.rates(ts))
    assert [a.rate(t) for t in ts[:500]] == [b.rate(t) for t in ts[:500]]
    assert list(a.requests(0, 3600)) == list(b.requests(0, 3600))
    assert a.bursts == b.bursts


def test_synthetic_different_seed_gives_different_traffic() -> None:
    a = SyntheticTraffic(6 * 3600, peak_rps=20, seed=1)
    b = SyntheticTraffic(6 * 3600, peak_rps=20, seed=2)
    assert _times(a, 0, 600) != _times(b, 0, 600)
    assert a.bursts != b.bursts


def test_synthetic_peak_is_peak_rps_and_trough_is_base_share() -> None:
    src = SyntheticTraffic(86_400, peak_rps=50, seed=3, burst_rate_per_hour=0, drift_per_day=0)
    rates = src.rates(np.arange(0, 86_400, 1.0))
    assert rates.max() == pytest.approx(50, rel=1e-9)
    assert rates.min() == pytest.approx(0.3 * 50, rel=1e-6)
    assert src.rate(16 * 3600) == pytest.approx(50)  # peak at 16:00
    assert src.rate(4 * 3600) == pytest.approx(15)  # trough at 04:00


def test_synthetic_bursts_raise_the_rate_inside_them_only() -> None:
    src = SyntheticTraffic(2 * 86_400, peak_rps=10, seed=5, burst_rate_per_hour=1, drift_per_day=0)
    calm = SyntheticTraffic(2 * 86_400, peak_rps=10, seed=5, burst_rate_per_hour=0, drift_per_day=0)
    assert src.bursts
    start, end, amp = src.bursts[0]
    mid = (start + end) / 2
    ratio_inside = src.rate(mid) / calm.rate(mid)
    ratio_outside = src.rate(start - 1) / calm.rate(start - 1)
    assert ratio_inside == pytest.approx(ratio_outside * (1 + amp))


def test_synthetic_drift_grows_the_same_hour_day_over_day() -> None:
    src = SyntheticTraffic(
        3 * 86_400, peak_rps=10, seed=0, burst_rate_per_hour=0, drift_per_day=0.1
    )
    assert src.rate(86_400 + 3600) / src.rate(3600) == pytest.approx(1.1)


@pytest.mark.parametrize("t", [-200.0, 3600.0, 1e9], ids=["before", "at-end", "far-after"])
def test_synthetic_offers_nothing_outside_its_duration(t: float) -> None:
    src = SyntheticTraffic(3600, peak_rps=10, seed=0)
    assert src.rate(t) == 0.0
    assert _times(src, t, t + 100) == []


def test_synthetic_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError, match="peak_rps"):
        SyntheticTraffic(3600, peak_rps=0, seed=0)


# --------------------------------------------------------------------------- Poisson arrivals


def _alibaba_two_windows(tmp_path: Path) -> AlibabaQpsTrace:
    path = _write(
        tmp_path / "qps.csv",
        "timestamp_anon,value,container_ip,request_type\n"
        "1000,2.0,a,Generative Requests\n"
        "1000,3.0,b,Generative Requests\n"
        "1060,1.0,a,Generative Requests\n",
    )
    return AlibabaQpsTrace.load(path, window_s=60, seed=11)


SOURCES: dict[str, Callable[[Path], TrafficSource]] = {
    "synthetic": lambda _: SyntheticTraffic(4 * 3600, peak_rps=30, seed=4, burst_rate_per_hour=2),
    "alibaba": _alibaba_two_windows,
}


@pytest.mark.parametrize("name", sorted(SOURCES), ids=sorted(SOURCES))
def test_poisson_count_over_a_long_window_matches_the_rate_integral(
    name: str, tmp_path: Path
) -> None:
    src = SOURCES[name](tmp_path)
    grid = np.arange(0.0, src.duration_s, 0.25)
    expected = float(sum(src.rate(t) for t in grid) * 0.25)
    count = sum(1 for _ in src.requests(0, src.duration_s))
    # seeded, so deterministic; 5 standard deviations of a Poisson count plus 0.5% model slack
    assert abs(count - expected) <= 5 * math.sqrt(expected) + 0.005 * expected


@pytest.mark.parametrize("name", sorted(SOURCES), ids=sorted(SOURCES))
@pytest.mark.parametrize("step", [1.0, 7.3, 60.0, 333.3], ids=["1s", "7.3s", "60s", "333.3s"])
def test_requests_do_not_depend_on_how_time_is_sliced(
    name: str, step: float, tmp_path: Path
) -> None:
    src = SOURCES[name](tmp_path)
    end = min(src.duration_s, 1800.0)
    whole = _times(src, 0, end)
    sliced: list[float] = []
    t = 0.0
    while t < end:
        sliced.extend(_times(src, t, min(t + step, end)))
        t += step
    fresh = SOURCES[name](tmp_path)  # a new instance (empty cache) gives the same requests
    assert sliced == whole == _times(fresh, 0, end)
    assert whole == sorted(whole)
    assert all(0 <= x < end for x in whole)


# --------------------------------------------------------------------------- Azure


AZURE_CSV = (
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:15:46.5000000,100,20\n"
    "2023-11-16 18:15:47.0000000,200,40\n"
    "2023-11-16 18:15:50.5000000,50,10\n"
    "2023-11-16 18:16:10.5000000,250,50\n"
)


def test_azure_times_are_relative_to_the_first_request_and_sizes_average_one(
    tmp_path: Path,
) -> None:
    trace = AzureRequestTrace.load(_write(tmp_path / "az.csv", AZURE_CSV))
    reqs = list(trace.requests(0, trace.duration_s))
    mean_tokens = (120 + 240 + 60 + 300) / 4
    assert reqs == [
        Request(0.0, 120 / mean_tokens),
        Request(0.5, 240 / mean_tokens),
        Request(4.0, 60 / mean_tokens),
        Request(24.0, 300 / mean_tokens),
    ]
    assert sum(r.size for r in reqs) / len(reqs) == pytest.approx(1.0)
    assert len(trace) == 4
    assert trace.duration_s == 25.0  # first whole second after the last request


def test_azure_rate_counts_requests_in_the_window_around_t(tmp_path: Path) -> None:
    trace = AzureRequestTrace.load(_write(tmp_path / "az.csv", AZURE_CSV), window_s=10)
    assert trace.rate(5.0) == pytest.approx(3 / 10)  # [0, 10): 3 requests
    assert trace.rate(0.0) == pytest.approx(3 / 10)  # shifted to [0, 10) at the start
    assert trace.rate(21.0) == pytest.approx(1 / 10)  # shifted to [15, 25) at the end
    assert trace.rate(12.0) == pytest.approx(0.0)  # [7, 17): nothing
    assert trace.rate(25.0) == 0.0
    assert trace.peak_rps == pytest.approx(0.3)
    ts = [0.0, 5.0, 12.0, 21.0, 25.0, -1.0]
    assert trace.rates(ts).tolist() == pytest.approx([trace.rate(t) for t in ts])


def test_azure_peak_rps_compresses_time_and_keeps_the_shape(tmp_path: Path) -> None:
    path = _write(tmp_path / "az.csv", AZURE_CSV)
    native = AzureRequestTrace.load(path)
    fast = AzureRequestTrace.load(path, peak_rps=3.0)  # 10x the native peak of 0.3 rps
    assert fast.peak_rps == pytest.approx(3.0)
    assert fast.duration_s == pytest.approx(2.5)
    assert [r.time for r in fast.requests(0, 10)] == pytest.approx([0.0, 0.05, 0.4, 2.4])
    assert [r.size for r in fast.requests(0, 10)] == [r.size for r in native.requests(0, 100)]
    assert fast.rate(0.5) == pytest.approx(10 * native.rate(5.0))


def test_azure_requests_are_half_open_windows(tmp_path: Path) -> None:
    trace = AzureRequestTrace.load(_write(tmp_path / "az.csv", AZURE_CSV))
    assert [r.time for r in trace.requests(0.5, 24.0)] == [0.5, 4.0]


# --------------------------------------------------------------------------- Alibaba


ALIBABA_CSV = (
    "timestamp_anon,value,container_ip,request_type\n"
    "1000.0,0.5,c1,Generative Requests\n"  # window 0 (t=0): 0.5 + 1.5 + 2.0 = 4.0
    "1000.0,1.5,c2,Generative Requests\n"
    "1000.0,2.0,,API Requests\n"
    "1070.0,1.0,c1,Generative Requests\n"  # window 1 (t=70): 1.0
    "1180.0,3.0,c1,Generative Requests\n"  # window 3 (t=180): two instants, (3+1+4)/2 = 4.0
    "1180.0,1.0,c2,Generative Requests\n"
    "1237.0,4.0,c1,Generative Requests\n"
)


def test_alibaba_sums_containers_per_window_and_averages_over_instants(tmp_path: Path) -> None:
    trace = AlibabaQpsTrace.load(_write(tmp_path / "qps.csv", ALIBABA_CSV), window_s=60)
    # window 2 (120..180 s) has no row: 0 QPS (only non-zero containers are listed)
    assert trace.window_values.tolist() == [4.0, 1.0, 0.0, 4.0]
    assert trace.duration_s == 240.0
    assert trace.peak_rps == 4.0


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0.0, 4.0),  # before the first centre: first window's value
        (30.0, 4.0),  # window 0's centre
        (45.0, 3.25),  # a quarter of the way from 4.0 (30 s) to 1.0 (90 s)
        (60.0, 2.5),  # halfway
        (75.0, 1.75),
        (90.0, 1.0),
        (120.0, 0.5),
        (180.0, 2.0),
        (239.0, 4.0),  # after the last centre: last window's value
        (240.0, 0.0),  # outside the trace
        (-1.0, 0.0),
    ],
    ids=[
        "start",
        "centre0",
        "quarter",
        "boundary",
        "three-quarters",
        "centre1",
        "into-empty",
        "out-of-empty",
        "tail",
        "end",
        "before",
    ],
)
def test_alibaba_rate_interpolates_linearly_between_window_centres(
    t: float, expected: float, tmp_path: Path
) -> None:
    trace = AlibabaQpsTrace.load(_write(tmp_path / "qps.csv", ALIBABA_CSV), window_s=60)
    assert trace.rate(t) == pytest.approx(expected)
    assert float(trace.rates([t])[0]) == pytest.approx(expected)


def test_alibaba_peak_rps_scales_every_window(tmp_path: Path) -> None:
    trace = AlibabaQpsTrace.load(
        _write(tmp_path / "qps.csv", ALIBABA_CSV), window_s=60, peak_rps=100
    )
    assert trace.window_values.tolist() == [100.0, 25.0, 0.0, 100.0]
    assert max(trace.rate(t) for t in np.arange(0, 240, 0.5)) == pytest.approx(100.0)


def test_alibaba_seed_changes_arrivals_but_not_rates(tmp_path: Path) -> None:
    path = _write(tmp_path / "qps.csv", ALIBABA_CSV)
    a = AlibabaQpsTrace.load(path, seed=1, peak_rps=50)
    b = AlibabaQpsTrace.load(path, seed=2, peak_rps=50)
    assert [a.rate(t) for t in range(240)] == [b.rate(t) for t in range(240)]
    assert _times(a, 0, 240) != _times(b, 0, 240)
    assert _times(a, 0, 240) == _times(AlibabaQpsTrace.load(path, seed=1, peak_rps=50), 0, 240)


# --------------------------------------------------------------------------- bad files


AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ALIBABA_HEADER = "timestamp_anon,value,container_ip,request_type\n"

BAD_FILES = [
    ("azure", None, "no such file"),
    ("azure", "TIME,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,2\n", "'TIMESTAMP'"),
    ("azure", AZURE_HEADER + "2023-11-16 18:15:46,ten,2\n", "line 2: column 'ContextTokens'"),
    (
        "azure",
        AZURE_HEADER + "2023-11-16 18:15:46,1,2\nyesterday,1,2\n",
        "line 3: column 'TIMESTAMP'",
    ),
    ("azure", AZURE_HEADER + "2023-11-16 18:15:46,1\n", "line 2: column 'GeneratedTokens'"),
    ("azure", "", "empty file"),
    ("alibaba", None, "no such file"),
    ("alibaba", "ts,value\n1,2\n", "'timestamp_anon'"),
    ("alibaba", ALIBABA_HEADER + "100,0.5,a,x\n160,lots,a,x\n", "line 3: column 'value'"),
    ("alibaba", ALIBABA_HEADER + "abc,0.5,a,x\n", "line 2: column 'timestamp_anon'"),
    ("alibaba", ALIBABA_HEADER + "100,nan,a,x\n", "line 2: column 'value'"),
    ("alibaba", ALIBABA_HEADER, "no samples"),
]


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    BAD_FILES,
    ids=[
        "azure-missing",
        "azure-header",
        "azure-number",
        "azure-timestamp",
        "azure-short-row",
        "azure-empty",
        "alibaba-missing",
        "alibaba-header",
        "alibaba-number",
        "alibaba-timestamp",
        "alibaba-nan",
        "alibaba-no-rows",
    ],
)
def test_bad_trace_files_raise_trace_error_naming_file_and_column(
    fmt: str, content: str | None, message: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{fmt}.csv"
    if content is not None:
        _write(path, content)
    loader = AzureRequestTrace.load if fmt == "azure" else AlibabaQpsTrace.load
    with pytest.raises(TraceError) as info:
        loader(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- real data


@needs_data
def test_real_azure_trace_has_19366_requests_over_about_an_hour() -> None:
    assert DATA is not None
    trace = AzureRequestTrace.load(DATA / "traces" / "azure_llm_2023_conv.csv")
    reqs = list(trace.requests(0, trace.duration_s))
    assert len(trace) == len(reqs) == 19_366
    assert 3000 < trace.duration_s < 3700
    assert sum(r.size for r in reqs) / len(reqs) == pytest.approx(1.0)
    scaled = AzureRequestTrace.load(DATA / "traces" / "azure_llm_2023_conv.csv", peak_rps=200)
    assert scaled.peak_rps == pytest.approx(200)
    assert len(scaled) == 19_366
    assert scaled.duration_s < trace.duration_s


@needs_data
def test_real_alibaba_trace_covers_about_22_hours_and_scales_to_the_peak() -> None:
    assert DATA is not None
    trace = AlibabaQpsTrace.load(DATA / "traces" / "alibaba_genai_qps.csv", peak_rps=120)
    assert 21.5 * 3600 < trace.duration_s < 23 * 3600
    assert trace.peak_rps == pytest.approx(120)
    rates = trace.rates(np.arange(0, trace.duration_s, 30.0))
    assert rates.max() <= 120 + 1e-9
    assert rates.mean() > 0

"""Signals: hourly carbon and price replayed from CSV, fixed signals, and scheduled overrides."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from autoops.model import RegionSignals
from autoops.regions.loader import default_catalogue
from autoops.regions.model import Region
from autoops.sim.signals import (
    CARBON_COLUMN,
    HOURS,
    CarbonSpike,
    CsvSignals,
    FutureSignals,
    Override,
    Overrides,
    PriceSpike,
    RegionOutage,
    StaticSignals,
)
from autoops.sim.traffic import TraceError

ROOT = Path(__file__).resolve().parents[2]


def _data_dir() -> Path | None:
    env = os.environ.get("AUTOOPS_DATA_DIR")
    candidate = Path(env) if env else ROOT.parent / "shared" / "data"
    return candidate if (candidate / "carbon").is_dir() else None


DATA = _data_dir()
needs_data = pytest.mark.skipif(
    DATA is None,
    reason="shared data not found (set AUTOOPS_DATA_DIR or put it at ../shared/data)",
)


def _region(name: str, carbon_zone: str, price_zone: str) -> Region:
    return Region(
        name=name,
        cloud="local",
        cloud_region=name,
        carbon_zone=carbon_zone,
        price_zone=price_zone,
        gpus=(),
        latency_ms={"eu": 10.0},
        replica_usd_per_hour=1.0,
    )


CARBON_HEADER = (
    f"Datetime (UTC),Zone Id,Carbon Intensity gCO\u2082eq/kWh (direct),{CARBON_COLUMN}\n"
)
PRICE_HEADER = "Datetime (UTC),Datetime (Local),Price (USD/MWh)\n"


def _stamp(hour: int) -> str:
    day, h = divmod(hour, 24)
    month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    month = 0
    while day >= month_days[month]:
        day -= month_days[month]
        month += 1
    return f"2023-{month + 1:02d}-{day + 1:02d} {h:02d}:00:00"


def _make_data(tmp_path: Path, carbon: dict[int, float], price: dict[int, float]) -> Path:
    """A data dir with zone Z (carbon and price) holding the given hours (others are gaps)."""
    (tmp_path / "carbon").mkdir()
    (tmp_path / "electricity_prices").mkdir()
    (tmp_path / "carbon" / "Z_2023_hourly.csv").write_text(
        CARBON_HEADER + "".join(f"{_stamp(h)},Z,0,{v}\n" for h, v in sorted(carbon.items())),
        encoding="utf-8",
    )
    (tmp_path / "electricity_prices" / "Z_2023.csv").write_text(
        PRICE_HEADER + "".join(f"{_stamp(h)}+00:00,x,{v}\n" for h, v in sorted(price.items())),
        encoding="utf-8",
    )
    return tmp_path


HOURLY = {0: 100.0, 1: 110.0, 2: 120.0, 3: 130.0, HOURS - 1: 999.0}
PRICES = {0: 50.0, 1: 51.0, 2: 52.0, 3: 53.0, HOURS - 1: 77.0}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return _make_data(tmp_path, HOURLY, PRICES)


# --------------------------------------------------------------------------- CSV replay


@pytest.mark.parametrize(
    ("start_hour", "t", "carbon", "price"),
    [
        (0, 0.0, 100.0, 50.0),
        (0, 3599.9, 100.0, 50.0),  # still hour 0: never the next hour's value
        (0, 3600.0, 110.0, 51.0),
        (0, 2 * 3600 + 5, 120.0, 52.0),
        (2, 0.0, 120.0, 52.0),  # the clock offset maps t=0 to hour 2
        (2, 3600.0, 130.0, 53.0),
        (0, 10 * 3600.0, 130.0, 53.0),  # a gap holds the last earlier hour
        (HOURS - 1, 0.0, 999.0, 77.0),  # the last hour of the year
        (HOURS - 1, 3600.0, 100.0, 50.0),  # wraps to 1 January
        (0, HOURS * 3600.0 + 3600.0, 110.0, 51.0),  # a year later: hour 1 again
    ],
    ids=[
        "hour0",
        "end-of-hour0",
        "hour1",
        "hour2",
        "offset",
        "offset-plus-one",
        "gap",
        "year-end",
        "wrap",
        "next-year",
    ],
)
def test_csv_signals_return_the_hour_holding_t(
    small: Path, start_hour: int, t: float, carbon: float, price: float
) -> None:
    sig = CsvSignals.load(small, [_region("r1", "Z", "Z")], start_hour=start_hour)
    assert sig.at(t) == (RegionSignals("r1", carbon, price, True),)


def test_csv_signals_missing_zone_files_give_none_and_a_warning(small: Path) -> None:
    regions = [
        _region("ok", "Z", "Z"),
        _region("nocarbon", "NOPE", "Z"),
        _region("noprice", "Z", "X"),
    ]
    sig = CsvSignals.load(small, regions)
    assert sig.at(0) == (
        RegionSignals("ok", 100.0, 50.0, True),
        RegionSignals("nocarbon", None, 50.0, True),
        RegionSignals("noprice", 100.0, None, True),
    )
    assert len(sig.missing) == 2
    assert "nocarbon" in sig.missing[0] and "NOPE_2023_hourly.csv" in sig.missing[0]
    assert "noprice" in sig.missing[1] and "X_2023.csv" in sig.missing[1]


def test_csv_signals_future_is_the_current_hour_then_the_next_ones(small: Path) -> None:
    sig = CsvSignals.load(small, [_region("r1", "Z", "Z")], start_hour=HOURS - 1)
    ahead = sig.future(1800.0, 3)
    assert ahead[0] == sig.at(1800.0)
    assert [s[0].carbon_intensity for s in ahead] == [999.0, 100.0, 110.0]
    assert isinstance(sig, FutureSignals)


def test_csv_signals_reject_a_start_hour_outside_the_year(small: Path) -> None:
    with pytest.raises(ValueError, match="start_hour"):
        CsvSignals.load(small, [_region("r1", "Z", "Z")], start_hour=HOURS)


@pytest.mark.parametrize(
    ("folder", "name", "content", "message"),
    [
        (
            "carbon",
            "Z_2023_hourly.csv",
            "Datetime (UTC),Carbon\n2023-01-01 00:00:00,1\n",
            CARBON_COLUMN,
        ),
        (
            "carbon",
            "Z_2023_hourly.csv",
            CARBON_HEADER + "2023-01-01 00:00:00,Z,0,high\n",
            f"line 2: column '{CARBON_COLUMN}'",
        ),
        (
            "electricity_prices",
            "Z_2023.csv",
            PRICE_HEADER + "noon,x,3\n",
            "line 2: column 'Datetime (UTC)'",
        ),
        (
            "electricity_prices",
            "Z_2023.csv",
            PRICE_HEADER + "2022-05-01 00:00:00,x,3\n",
            "no row falls in 2023",
        ),
    ],
    ids=["carbon-header", "carbon-number", "price-timestamp", "price-wrong-year"],
)
def test_malformed_signal_files_raise_trace_error_naming_file_and_column(
    tmp_path: Path, folder: str, name: str, content: str, message: str
) -> None:
    data = _make_data(tmp_path, HOURLY, PRICES)
    path = data / folder / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TraceError) as info:
        CsvSignals.load(data, [_region("r1", "Z", "Z")])
    assert str(path) in str(info.value)
    assert message in str(info.value)


# --------------------------------------------------------------------------- fixed values


def test_static_signals_are_the_same_at_every_time() -> None:
    sig = StaticSignals.uniform(["a", "b"], carbon_intensity=200.0, price_usd_per_mwh=40.0)
    assert (
        sig.at(0)
        == sig.at(1e7)
        == (
            RegionSignals("a", 200.0, 40.0, True),
            RegionSignals("b", 200.0, 40.0, True),
        )
    )
    assert sig.regions == ("a", "b")
    assert sig.future(0, 2) == (sig.at(0), sig.at(0))


def test_static_signals_reject_a_key_that_is_not_the_region() -> None:
    with pytest.raises(ValueError, match="holds signals of region"):
        StaticSignals({"a": RegionSignals("b")})


# --------------------------------------------------------------------------- overrides


BASE = StaticSignals(
    {
        "a": RegionSignals("a", 100.0, 50.0, True),
        "b": RegionSignals("b", 300.0, 80.0, True),
    }
)


@pytest.mark.parametrize(
    ("override", "t", "expected_a"),
    [
        (CarbonSpike("a", 100, 50, 900.0), 99.9, RegionSignals("a", 100.0, 50.0, True)),
        (CarbonSpike("a", 100, 50, 900.0), 100.0, RegionSignals("a", 900.0, 50.0, True)),
        (CarbonSpike("a", 100, 50, 900.0), 149.9, RegionSignals("a", 900.0, 50.0, True)),
        (CarbonSpike("a", 100, 50, 900.0), 150.0, RegionSignals("a", 100.0, 50.0, True)),
        (PriceSpike("a", 100, 50, 500.0), 120.0, RegionSignals("a", 100.0, 500.0, True)),
        (PriceSpike("a", 100, 50, 500.0), 200.0, RegionSignals("a", 100.0, 50.0, True)),
        (RegionOutage("a", 100, 50), 120.0, RegionSignals("a", 100.0, 50.0, False)),
        (RegionOutage("a", 100, 50), 0.0, RegionSignals("a", 100.0, 50.0, True)),
    ],
    ids=[
        "carbon-before",
        "carbon-start",
        "carbon-last-instant",
        "carbon-after",
        "price-inside",
        "price-after",
        "outage-inside",
        "outage-before",
    ],
)
def test_overrides_apply_only_inside_their_window_and_region(
    override: Override, t: float, expected_a: RegionSignals
) -> None:
    sig = Overrides(BASE, [override])
    assert sig.at(t) == (expected_a, RegionSignals("b", 300.0, 80.0, True))


def test_overlapping_overrides_combine_and_the_later_one_wins() -> None:
    sig = Overrides(
        BASE,
        [
            CarbonSpike("a", 0, 100, 500.0),
            CarbonSpike("a", 50, 100, 700.0),
            RegionOutage("a", 0, 60),
        ],
    )
    assert sig.at(10)[0] == RegionSignals("a", 500.0, 50.0, False)
    assert sig.at(55)[0] == RegionSignals("a", 700.0, 50.0, False)
    assert sig.at(120)[0] == RegionSignals("a", 700.0, 50.0, True)


def test_overrides_reject_an_unknown_region() -> None:
    with pytest.raises(ValueError, match="unknown region"):
        Overrides(BASE, [RegionOutage("nowhere", 0, 10)])


def test_overrides_future_applies_each_hour_at_its_own_time(small: Path) -> None:
    csv_sig = CsvSignals.load(small, [_region("r1", "Z", "Z")])
    sig = Overrides(csv_sig, [CarbonSpike("r1", 3600, 3600, 5000.0)])
    ahead = sig.future(0, 3)
    assert [s[0].carbon_intensity for s in ahead] == [100.0, 5000.0, 120.0]


def test_overrides_future_needs_a_source_that_can_look_ahead() -> None:
    class PastOnly:
        def at(self, t: float) -> tuple[RegionSignals, ...]:
            return (RegionSignals("a"),)

    with pytest.raises(TypeError, match="cannot look ahead"):
        Overrides(PastOnly(), []).future(0, 2)


# --------------------------------------------------------------------------- real data


def _gb_rows() -> list[dict[str, str]]:
    assert DATA is not None
    with (DATA / "carbon" / "GB_2023_hourly.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@needs_data
@pytest.mark.parametrize("row", [0, 1234, 5000, HOURS - 1], ids=["first", "1234", "5000", "last"])
def test_real_gb_carbon_is_the_value_of_the_row_for_the_current_hour(row: int) -> None:
    assert DATA is not None
    rows = _gb_rows()
    eu_west = default_catalogue()["eu-west"]
    assert eu_west.carbon_zone == "GB"
    sig = CsvSignals.load(DATA, [eu_west], start_hour=row)
    expected = float(rows[row][CARBON_COLUMN])
    following = float(rows[(row + 1) % HOURS][CARBON_COLUMN])
    assert sig.at(0.0)[0].carbon_intensity == expected
    assert sig.at(3599.999)[0].carbon_intensity == expected  # never the next (future) hour
    assert sig.at(3600.0)[0].carbon_intensity == following
    assert sig.missing == ()


@needs_data
def test_real_catalogue_regions_all_have_carbon_and_price_data() -> None:
    assert DATA is not None
    catalogue = default_catalogue()
    sig = CsvSignals.load(DATA, list(catalogue), start_hour=4000)
    assert sig.missing == ()
    now = sig.at(12 * 3600.0)
    assert [s.region for s in now] == list(catalogue.names())
    assert all(s.carbon_intensity is not None and s.carbon_intensity > 0 for s in now)
    assert all(s.price_usd_per_mwh is not None and s.healthy for s in now)

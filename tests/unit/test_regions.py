"""The region catalogue: the shipped file, user files that extend it, and its data zones."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoops.regions import default_catalogue, latency_groups, load_catalogue
from autoops.regions.loader import ENV_VAR
from autoops.yamlio import ConfigError

REPO = Path(__file__).resolve().parents[2]
GROUPS = {"na", "eu", "apac", "sa", "af"}


def _data_dir() -> Path | None:
    env = os.environ.get("AUTOOPS_DATA_DIR")
    candidate = Path(env) if env else REPO.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


needs_data = pytest.mark.skipif(
    _data_dir() is None,
    reason="shared data not found (set AUTOOPS_DATA_DIR or put it at ../shared/data)",
)


@pytest.fixture(autouse=True)
def _no_user_regions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV_VAR, raising=False)
    default_catalogue.cache_clear()
    yield
    default_catalogue.cache_clear()


def test_shipped_region_without_price_data_borrows_the_nearest_zone() -> None:
    west = load_catalogue()["eu-west"]
    assert (west.carbon_zone, west.price_zone) == ("GB", "BE")
    assert "electricity price from zone BE" in west.description


def test_shipped_catalogue_has_a_region_per_carbon_zone() -> None:
    catalogue = load_catalogue()
    assert len(catalogue) >= 16
    zones = [region.carbon_zone for region in catalogue]
    assert all(zones)
    assert len(set(zones)) == len(zones)


@pytest.mark.parametrize("name", sorted(load_catalogue().names()))
def test_every_shipped_region_is_complete(name: str) -> None:
    region = load_catalogue()[name]
    assert region.cloud == "aws"
    assert region.price_zone
    assert region.gpus
    assert all(g.usd_per_hour > 0 for g in region.gpus)
    assert 0 < region.replica_usd_per_hour <= max(g.usd_per_hour for g in region.gpus)
    assert region.replica_power_kw > 0
    assert set(region.latency_ms) == GROUPS
    assert region.node_label == name
    assert region.serve_endpoint is None


def test_default_catalogue_is_cached() -> None:
    assert default_catalogue() is default_catalogue()
    assert set(latency_groups(default_catalogue())) == GROUPS


USER_FILE = """\
regions:
  us-west:
    serve_endpoint: http://10.0.0.5:8265
    latency_ms: {me: 210}
  eu-paris:
    description: Paris
    cloud: aws
    cloud_region: eu-west-3
    carbon_zone: FR
    price_zone: FR
    replica_usd_per_hour: 1.05
    latency_ms: {eu: 20, na: 85}
  eu-dublin:
    cloud: aws
    cloud_region: eu-west-1
    carbon_zone: IE
    price_zone: BE
    replica_usd_per_hour: 1.1
    latency_ms: {eu: 22}
  us-texas: null
"""


def test_user_file_adds_overrides_and_removes_regions(tmp_path: Path) -> None:
    user = tmp_path / "regions.yaml"
    user.write_text(USER_FILE, encoding="utf-8")
    shipped = load_catalogue()
    catalogue = load_catalogue([user])
    assert len(catalogue) == len(shipped) + 1
    west = catalogue["us-west"]
    assert west.serve_endpoint == "http://10.0.0.5:8265"
    assert west.latency_ms == {**shipped["us-west"].latency_ms, "me": 210}
    assert west.gpus == shipped["us-west"].gpus
    assert catalogue["eu-paris"].node_label == "eu-paris"
    assert "us-texas" not in catalogue


def test_region_with_borrowed_price_zone_says_so(tmp_path: Path) -> None:
    user = tmp_path / "regions.yaml"
    user.write_text(USER_FILE, encoding="utf-8")
    dublin = load_catalogue([user])["eu-dublin"]
    assert dublin.price_zone == "BE"
    assert "electricity price from zone BE" in dublin.description


def test_user_files_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "regions.yaml"
    user.write_text(USER_FILE, encoding="utf-8")
    monkeypatch.setenv(ENV_VAR, os.pathsep.join([str(user), ""]))
    assert "eu-paris" in default_catalogue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "regions:\n  eu-paris:\n    cloud: aws\n    cloud_region: eu-west-3\n"
            "    carbon_zone: ''\n    price_zone: FR\n    replica_usd_per_hour: 1\n"
            "    latency_ms: {eu: 20}\n",
            ["{f}:5: regions.eu-paris.carbon_zone: string should have at least 1 character"],
            id="empty_carbon_zone",
        ),
        pytest.param(
            "regions:\n  eu-paris:\n    cloud: aws\n    cloud_region: eu-west-3\n"
            "    carbon_zone: FR\n    replica_usd_per_hour: 1\n    latency_ms: {eu: 20}\n",
            ["{f}:2: regions.eu-paris.price_zone: required field is missing"],
            id="missing_price_zone",
        ),
        pytest.param(
            "regions:\n  us-west:\n    cloud: ibm\n    gpu: []\n",
            [
                "{f}:3: regions.us-west.cloud: input should be 'aws', 'gcp', 'azure' or 'local'",
                "{f}:4: regions.us-west.gpu: unknown field (did you mean 'gpus'?)",
            ],
            id="override_with_bad_fields",
        ),
        pytest.param(
            "regions:\n  us-west:\n    replica_usd_per_hour: -1\n",
            ["{f}:3: regions.us-west.replica_usd_per_hour: input should be greater than"],
            id="negative_price",
        ),
        pytest.param(
            "regions:\n  bad name: {}\n  other: 5\n",
            [
                "{f}:2: regions.bad name: region names are letters",
                "{f}:3: regions.other: expected a mapping of region fields or null (got 5)",
            ],
            id="bad_region_entries",
        ),
        pytest.param(
            "region:\n  us-west: {}\n",
            [
                "{f}:1: regions: required field is missing",
                "{f}:1: region: unknown field (did you mean 'regions'?)",
            ],
            id="misspelt_top_level",
        ),
        pytest.param("- a\n", ["{f}:1: top level must be a mapping"], id="top_level_list"),
    ],
)
def test_broken_user_file_gives_file_line_and_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    user = tmp_path / "regions.yaml"
    user.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_catalogue([user])
    got = [issue.format() for issue in info.value.issues]
    assert len(got) == len(expected), got
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want.format(f=user)), line


def test_missing_user_file_is_an_issue(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_catalogue([tmp_path / "nope.yaml"])
    assert [i.format() for i in info.value.issues] == [f"{tmp_path / 'nope.yaml'}: no such file"]


@needs_data
def test_every_carbon_zone_has_a_data_file() -> None:
    data = _data_dir()
    assert data is not None
    for region in load_catalogue():
        carbon = data / "carbon" / f"{region.carbon_zone}_2023_hourly.csv"
        prices = data / "electricity_prices" / f"{region.price_zone}_2023.csv"
        assert carbon.is_file(), f"{region.name}: no carbon data {carbon}"
        assert prices.is_file(), f"{region.name}: no price data {prices}"


@needs_data
def test_every_aws_region_is_in_the_network_cost_matrix() -> None:
    data = _data_dir()
    assert data is not None
    with (data / "network_cost" / "aws_transmission_cost_matrix.csv").open() as fh:
        header = next(csv.reader(fh))
    known = set(header[1:])
    for region in load_catalogue():
        if region.cloud == "aws":
            assert region.cloud_region in known, region.name

"""Live signals providers: CSV replay on the wall clock, the HTTP API, the override file."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from structlog.testing import capture_logs

from autoops.adapters.carbon import (
    CsvReplaySignals,
    ElectricityMapsSignals,
    OverrideFileSignals,
    SignalsSpec,
    build_signals,
    write_overrides,
)
from autoops.model import RegionSignals
from autoops.regions.loader import default_catalogue
from autoops.regions.model import Region, RegionCatalogue
from autoops.sim.signals import CARBON_COLUMN, HOURS, PRICE_COLUMN, StaticSignals, read_hourly
from autoops.yamlio import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = 1_700_000_000.0
"""An arbitrary wall-clock origin (unix seconds)."""
KEY_ENV = "AUTOOPS_TEST_EM_KEY"


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


CATALOGUE = RegionCatalogue(
    {
        "north": _region("north", "ZN", "PN"),
        "south": _region("south", "ZS", "PS"),
        "twin": _region("twin", "ZN", "PN"),
    }
)


# --------------------------------------------------------------------------- CSV replay


@pytest.fixture(scope="module")
def hourly_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Zone files whose value at data hour h is h (carbon) and 1000 + h (price)."""
    root = tmp_path_factory.mktemp("data")
    (root / "carbon").mkdir()
    (root / "electricity_prices").mkdir()
    start = datetime(2023, 1, 1)
    stamps = [(start + timedelta(hours=h)).isoformat(sep=" ") for h in range(HOURS)]
    carbon = [f"Datetime (UTC),{CARBON_COLUMN}"] + [f"{s},{h}" for h, s in enumerate(stamps)]
    price = ["Datetime (UTC),Datetime (Local),Price (USD/MWh)"] + [
        f"{s},{s},{1000 + h}" for h, s in enumerate(stamps)
    ]
    (root / "carbon" / "ZN_2023_hourly.csv").write_text("\n".join(carbon) + "\n")
    (root / "electricity_prices" / "PN_2023.csv").write_text("\n".join(price) + "\n")
    return root


def _hour(stamp: str) -> int:
    delta = datetime.fromisoformat(stamp) - datetime(2023, 1, 1)
    return int(delta.total_seconds() // 3600)


@pytest.mark.parametrize(
    ("start", "speedup", "elapsed_s", "data_hour"),
    [
        pytest.param("2023-01-01T00:00", 1.0, 0.0, 0, id="origin-is-start"),
        pytest.param("2023-01-01T00:00", 1.0, 3599.0, 0, id="within-first-hour"),
        pytest.param("2023-01-01T00:00", 1.0, 3600.0, 1, id="next-hour"),
        pytest.param("2023-07-01T12:00", 1.0, 0.0, _hour("2023-07-01T12:00"), id="mid-year"),
        pytest.param("2023-03-01T10:30", 1.0, 1800.0, _hour("2023-03-01T11:00"), id="minutes"),
        pytest.param("2023-12-31T23:00", 1.0, 3600.0, 0, id="wraps-at-year-end"),
        pytest.param("2023-12-31T23:00", 1.0, 3599.0, HOURS - 1, id="last-hour"),
        pytest.param("2023-01-01T00:00", 1.0, -1.0, HOURS - 1, id="before-origin-wraps-back"),
        pytest.param("2023-01-01T00:00", 3600.0, 10.0, 10, id="speedup-hour-per-second"),
        pytest.param("2023-12-31T22:00", 60.0, 120.0, 0, id="speedup-wraps"),
        pytest.param("2023-12-31T22:00", 60.0, 60.0, HOURS - 1, id="speedup-before-wrap"),
        pytest.param("2023-01-01T00:00", 3600.0, HOURS * 2 + 5.0, 5, id="speedup-two-years"),
    ],
)
def test_csv_replay_maps_wall_time_to_data_hour(
    hourly_dir: Path, start: str, speedup: float, elapsed_s: float, data_hour: int
) -> None:
    signals = CsvReplaySignals(CATALOGUE, hourly_dir, ["north"], start, ORIGIN, speedup)
    (north,) = signals.at(ORIGIN + elapsed_s)
    assert north == RegionSignals("north", float(data_hour), 1000.0 + data_hour, True)
    expected = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(hours=data_hour)
    assert signals.data_hour(ORIGIN + elapsed_s) == expected


def test_csv_replay_accepts_an_aware_datetime_in_another_timezone(hourly_dir: Path) -> None:
    start = datetime.fromisoformat("2023-06-01T14:00+02:00")
    signals = CsvReplaySignals(CATALOGUE, hourly_dir, ["north"], start, ORIGIN)
    assert signals.at(ORIGIN)[0].carbon_intensity == _hour("2023-06-01T12:00")


def test_csv_replay_gives_none_and_says_so_for_a_zone_without_files(hourly_dir: Path) -> None:
    signals = CsvReplaySignals(CATALOGUE, hourly_dir, ["north", "south"], "2023-01-01", ORIGIN)
    assert signals.regions == ("north", "south")
    south = signals.at(ORIGIN)[1]
    assert (south.carbon_intensity, south.price_usd_per_mwh) == (None, None)
    assert len(signals.missing) == 2
    assert all("ZS" in m or "PS" in m for m in signals.missing)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"regions": ["nowhere"]}, "nowhere", id="unknown-region"),
        pytest.param({"start_hour": "2024-01-01T00:00"}, "outside the data year", id="year"),
        pytest.param({"start_hour": "next tuesday"}, "not an ISO date", id="bad-start"),
        pytest.param({"speedup": 0.0}, "speedup", id="zero-speedup"),
        pytest.param({"speedup": float("nan")}, "speedup", id="nan-speedup"),
    ],
)
def test_csv_replay_rejects_bad_settings(
    hourly_dir: Path, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {
        "regions": ["north"],
        "start_hour": "2023-01-01T00:00",
        "speedup": 1.0,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        CsvReplaySignals(CATALOGUE, hourly_dir, clock_origin=ORIGIN, **args)  # type: ignore[arg-type]


@needs_data
def test_csv_replay_of_the_shared_data_matches_the_zone_files() -> None:
    assert DATA is not None
    catalogue = default_catalogue()
    region = catalogue["us-west"]
    signals = CsvReplaySignals(catalogue, DATA, ["us-west"], "2023-08-15T18:00", ORIGIN, 60.0)
    hour = _hour("2023-08-15T18:00") + 3  # three data hours = three wall minutes at 60x
    carbon = read_hourly(DATA / "carbon" / f"{region.carbon_zone}_2023_hourly.csv", CARBON_COLUMN)
    price = read_hourly(DATA / "electricity_prices" / f"{region.price_zone}_2023.csv", PRICE_COLUMN)
    (got,) = signals.at(ORIGIN + 180.0)
    assert (got.carbon_intensity, got.price_usd_per_mwh) == (carbon[hour], price[hour])


# --------------------------------------------------------------------------- live HTTP

NOW = datetime(2024, 5, 1, 12, 20, tzinfo=UTC).timestamp()
HANG = (0, b"")
"""A canned reply that never comes (until the test ends): the client must time out."""


def _carbon(zone: str, value: object, stamp: str = "2024-05-01T12:00:00.000Z") -> bytes:
    return json.dumps({"zone": zone, "carbonIntensity": value, "datetime": stamp}).encode()


def _price(value: object, unit: str = "EUR/MWh") -> bytes:
    return json.dumps({"zone": "PN", "price": value, "unit": unit}).encode()


@dataclass
class FakeApi:
    """What the loopback server answers, and what it was asked."""

    url: str
    replies: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def count(self, path: str, zone: str) -> int:
        """How many times ``path`` was asked for ``zone``."""
        return sum(1 for p, z, _ in self.seen if (p, z) == (path, zone))


def _handler(api_ref: list[FakeApi]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api = api_ref[0]
            url = urlparse(self.path)
            zone = parse_qs(url.query).get("zone", [""])[0]
            api.seen.append((url.path, zone, self.headers.get("auth-token")))
            status, body = api.replies.get((url.path, zone), (404, b'{"error": "no data"}'))
            if (status, body) == HANG:
                api.release.wait(30)
                return
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """A real HTTP server on loopback, in a thread, answering canned JSON."""
    monkeypatch.setenv(KEY_ENV, "secret-key")
    ref: list[FakeApi] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    ref.append(FakeApi(url=f"http://127.0.0.1:{server.server_address[1]}/v3"))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield ref[0]
    finally:
        ref[0].release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _live(
    api: FakeApi, regions: list[str], timeout_s: float = 5.0, **kwargs: float
) -> ElectricityMapsSignals:
    return ElectricityMapsSignals(
        CATALOGUE, regions, api.url, KEY_ENV, timeout_s=timeout_s, cache_s=300.0, **kwargs
    )


CARBON_PATH = "/v3/carbon-intensity/latest"
PRICE_PATH = "/v3/price-day-ahead/latest"


def test_live_reads_carbon_and_price_with_the_key_in_the_auth_token_header(api: FakeApi) -> None:
    api.replies[(CARBON_PATH, "ZN")] = (200, _carbon("ZN", 123.5))
    api.replies[(PRICE_PATH, "PN")] = (200, _price(50.0))
    signals = _live(api, ["north"], usd_per_eur=1.1)
    try:
        (north,) = signals.at(NOW)
    finally:
        signals.close()
    assert north.region == "north"
    assert north.carbon_intensity == 123.5
    assert north.price_usd_per_mwh == pytest.approx(55.0)
    assert north.healthy is None
    assert {(p, z) for p, z, _ in api.seen} == {(CARBON_PATH, "ZN"), (PRICE_PATH, "PN")}
    assert {key for _, _, key in api.seen} == {"secret-key"}
    assert signals.errors == {}


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param((500, b"internal error"), "HTTP 500", id="http-500"),
        pytest.param((401, b'{"error": "bad token"}'), "HTTP 401", id="http-401"),
        pytest.param((200, b"<html>not json</html>"), "unusable answer", id="garbage"),
        pytest.param((200, _carbon("ZN", "high")), "carbonIntensity", id="not-a-number"),
        pytest.param((200, _carbon("ZN", -5)), "carbonIntensity", id="negative"),
        pytest.param((200, b'{"zone": "ZN"}'), "carbonIntensity", id="no-value"),
        pytest.param((200, b"[1, 2]"), "unusable answer", id="not-an-object"),
        pytest.param((200, _carbon("ZZ", 100)), "zone 'ZZ'", id="other-zone"),
        pytest.param((200, _carbon("ZN", 100, "2024-04-30T00:00Z")), "stale", id="stale"),
        pytest.param(HANG, "Timeout", id="timeout"),
    ],
)
def test_live_failure_gives_none_for_that_signal_only(
    api: FakeApi, reply: tuple[int, bytes], error: str
) -> None:
    api.replies[(CARBON_PATH, "ZN")] = reply
    api.replies[(PRICE_PATH, "PN")] = (200, _price(40.0, "USD/MWh"))
    signals = _live(api, ["north"], timeout_s=0.5 if reply == HANG else 30.0)
    try:
        with capture_logs() as logs:
            (north,) = signals.at(NOW)
    finally:
        signals.close()
    assert north == RegionSignals("north", None, 40.0, None)
    assert error in signals.errors["carbon-intensity:ZN"]
    assert [e["zone"] for e in logs if e["log_level"] == "warning"] == ["ZN"]


@pytest.mark.parametrize(
    ("reply", "price"),
    [
        pytest.param((404, b'{"error": "no price"}'), None, id="no-price-endpoint"),
        pytest.param((200, _price(70.0, "USD/MWh")), 70.0, id="usd-as-is"),
        pytest.param((200, _price(70.0, "GBP/MWh")), None, id="unknown-unit"),
        pytest.param((200, b'{"price": null, "unit": "EUR/MWh"}'), None, id="null-price"),
    ],
)
def test_live_price_is_none_unless_the_api_gives_a_usable_one(
    api: FakeApi, reply: tuple[int, bytes], price: float | None
) -> None:
    api.replies[(CARBON_PATH, "ZN")] = (200, _carbon("ZN", 200))
    api.replies[(PRICE_PATH, "PN")] = reply
    signals = _live(api, ["north"])
    try:
        (north,) = signals.at(NOW)
    finally:
        signals.close()
    assert (north.carbon_intensity, north.price_usd_per_mwh) == (200.0, price)


def test_live_caches_per_zone_until_cache_s_has_passed(api: FakeApi) -> None:
    api.replies[(CARBON_PATH, "ZN")] = (200, _carbon("ZN", 100))
    signals = _live(api, ["north", "twin"])
    try:
        first = signals.at(NOW)
        api.replies[(CARBON_PATH, "ZN")] = (200, _carbon("ZN", 300, "2024-05-01T12:25Z"))
        cached = signals.at(NOW + 299.0)
        asked_while_cached = api.count(CARBON_PATH, "ZN")
        fresh = signals.at(NOW + 300.0)
    finally:
        signals.close()
    assert [s.carbon_intensity for s in first] == [100.0, 100.0]
    assert [s.carbon_intensity for s in cached] == [100.0, 100.0]
    assert asked_while_cached == 1  # two regions, one zone, one request
    assert [s.carbon_intensity for s in fresh] == [300.0, 300.0]
    assert api.count(CARBON_PATH, "ZN") == 2


def test_live_retries_a_failed_zone_after_retry_s_and_recovers(api: FakeApi) -> None:
    api.replies[(CARBON_PATH, "ZN")] = (503, b"busy")
    signals = _live(api, ["north"], retry_s=30.0)
    try:
        assert signals.at(NOW)[0].carbon_intensity is None
        api.replies[(CARBON_PATH, "ZN")] = (200, _carbon("ZN", 90))
        assert signals.at(NOW + 29.0)[0].carbon_intensity is None
        assert api.count(CARBON_PATH, "ZN") == 1
        assert signals.at(NOW + 30.0)[0].carbon_intensity == 90.0
    finally:
        signals.close()
    assert "carbon-intensity:ZN" not in signals.errors


def test_live_without_the_key_in_the_environment_fails_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=KEY_ENV):
        ElectricityMapsSignals(CATALOGUE, ["north"], "http://127.0.0.1:9", KEY_ENV)


def test_live_rejects_an_unknown_region() -> None:
    with pytest.raises(ValueError, match="atlantis"):
        ElectricityMapsSignals(CATALOGUE, ["atlantis"], "http://127.0.0.1:9", None)


# --------------------------------------------------------------------------- override file

BASE = StaticSignals(
    {
        "north": RegionSignals("north", 100.0, 50.0, True),
        "south": RegionSignals("south", 200.0, 60.0, True),
    }
)


class Editor:
    """Writes the override file and moves its mtime forward, as an edit does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ns = 1_000_000_000_000_000_000

    def write(self, text: str) -> None:
        """Replace the file's content; its mtime changes on every write."""
        self.path.write_text(text)
        self._ns += 1_000_000_000
        os.utime(self.path, ns=(self._ns, self._ns))


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    return Editor(tmp_path / "overrides.yaml")


def _by_region(signals: tuple[RegionSignals, ...]) -> dict[str, RegionSignals]:
    return {s.region: s for s in signals}


@pytest.mark.parametrize(
    ("text", "north"),
    [
        pytest.param(
            "north: {carbon_intensity: 900}\n",
            RegionSignals("north", 900.0, 50.0, True),
            id="carbon-only",
        ),
        pytest.param(
            "north:\n  healthy: false\n", RegionSignals("north", 100.0, 50.0, False), id="down"
        ),
        pytest.param(
            "north: {price_usd_per_mwh: null}\n",
            RegionSignals("north", 100.0, None, True),
            id="null-makes-missing",
        ),
        pytest.param(
            '{"north": {"carbon_intensity": 5, "price_usd_per_mwh": -3.5}}',
            RegionSignals("north", 5.0, -3.5, True),
            id="json",
        ),
        pytest.param("# nothing yet\n\n", RegionSignals("north", 100.0, 50.0, True), id="empty"),
        pytest.param("north:\n", RegionSignals("north", 100.0, 50.0, True), id="null-entry"),
    ],
)
def test_override_file_replaces_only_the_fields_it_gives(
    editor: Editor, text: str, north: RegionSignals
) -> None:
    signals = OverrideFileSignals(BASE, editor.path)
    editor.write(text)
    got = _by_region(signals.at(ORIGIN))
    assert got["north"] == north
    assert got["south"] == RegionSignals("south", 200.0, 60.0, True)
    assert signals.error is None


def test_override_file_edits_are_picked_up_and_removal_clears_them(editor: Editor) -> None:
    signals = OverrideFileSignals(BASE, editor.path)
    assert signals.at(ORIGIN) == BASE.at(ORIGIN)
    editor.write("south: {healthy: false}\n")
    assert _by_region(signals.at(ORIGIN))["south"].healthy is False
    editor.write("south: {healthy: true, carbon_intensity: 1}\n")
    assert _by_region(signals.at(ORIGIN))["south"] == RegionSignals("south", 1.0, 60.0, True)
    editor.path.unlink()
    assert signals.at(ORIGIN) == BASE.at(ORIGIN)


def test_write_overrides_gives_a_file_the_reader_takes_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    path = tmp_path / "overrides.yaml"
    signals = OverrideFileSignals(BASE, path)
    write_overrides(path, {"north": {"carbon_intensity": 7.5, "healthy": False}})
    assert _by_region(signals.at(ORIGIN))["north"] == RegionSignals("north", 7.5, 50.0, False)
    write_overrides(path, {"south": {"price_usd_per_mwh": None}})
    got = _by_region(signals.at(ORIGIN))
    assert got["north"] == RegionSignals("north", 100.0, 50.0, True)
    assert got["south"] == RegionSignals("south", 200.0, None, True)
    assert [p.name for p in tmp_path.iterdir()] == ["overrides.yaml"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("north: {healthy: false}\nsouth: [1, 2\n", 3, "not valid YAML", id="syntax"),
        pytest.param(
            "north:\n  healthy: false\n  carbon_intesity: 5\n",
            3,
            "did you mean 'carbon_intensity'",
            id="typo",
        ),
        pytest.param("north:\n  carbon_intensity: -1\n", 2, "greater than", id="negative"),
        pytest.param("north:\n  healthy: maybe\n", 2, "bool", id="not-a-bool"),
        pytest.param("north: 5\n", 1, "expected a mapping", id="not-a-mapping"),
        pytest.param(
            "north: {healthy: false}\nnorht: {healthy: false}\n",
            2,
            "unknown region (did you mean 'north'?)",
            id="unknown-region",
        ),
        pytest.param("- north\n", 1, "top level must be a mapping", id="a-list"),
    ],
)
def test_malformed_override_file_keeps_the_last_good_overrides_and_says_where_once(
    editor: Editor, text: str, line: int, message: str
) -> None:
    editor.write("north: {carbon_intensity: 700}\n")
    signals = OverrideFileSignals(BASE, editor.path)
    editor.write(text)
    with capture_logs() as logs:
        first = signals.at(ORIGIN)
        second = signals.at(ORIGIN + 15.0)
    assert _by_region(first)["north"].carbon_intensity == 700.0
    assert second == first
    assert signals.error is not None
    assert f"{editor.path}:{line}:" in str(signals.error)
    assert message in str(signals.error)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1
    assert f"{editor.path}:{line}:" in errors[0]["error"]


def test_fixing_a_malformed_override_file_clears_the_error(editor: Editor) -> None:
    signals = OverrideFileSignals(BASE, editor.path)
    editor.write("north: {carbon_intensity: [}\n")
    signals.at(ORIGIN)
    assert signals.error is not None
    editor.write("north: {carbon_intensity: 10}\n")
    assert _by_region(signals.at(ORIGIN))["north"].carbon_intensity == 10.0
    assert signals.error is None


def test_override_file_naming_an_unknown_region_fails_at_start(editor: Editor) -> None:
    editor.write("north: {healthy: true}\natlantis: {healthy: false}\n")
    with pytest.raises(ConfigError) as raised:
        OverrideFileSignals(BASE, editor.path)
    assert f"{editor.path}:2: atlantis: unknown region" in str(raised.value)


def test_override_file_needs_to_know_the_regions_of_a_base_that_does_not_say(
    editor: Editor,
) -> None:
    class Anonymous:
        def at(self, t: float) -> tuple[RegionSignals, ...]:
            return (RegionSignals("north", 1.0, 2.0, True),)

    with pytest.raises(ValueError, match="regions="):
        OverrideFileSignals(Anonymous(), editor.path)
    editor.write("north: {healthy: false}\n")
    signals = OverrideFileSignals(Anonymous(), editor.path, regions=["north"])
    assert signals.at(ORIGIN)[0].healthy is False


# --------------------------------------------------------------------------- factory


def test_build_signals_static_with_an_override_file(editor: Editor) -> None:
    editor.write("south: {healthy: false}\n")
    spec = SignalsSpec(source="static", regions=("north", "south"), override_file=editor.path)
    signals = build_signals(spec, CATALOGUE, ORIGIN)
    assert signals.regions == ("north", "south")
    assert signals.at(ORIGIN) == (
        RegionSignals("north", None, None, True),
        RegionSignals("south", None, None, False),
    )


def test_build_signals_csv_replays_from_the_clock_origin(hourly_dir: Path) -> None:
    spec = SignalsSpec(
        source="csv", regions=("north",), data_dir=hourly_dir, start_hour="2023-02-01T00:00"
    )
    signals = build_signals(spec, CATALOGUE, ORIGIN)
    assert isinstance(signals, CsvReplaySignals)
    assert signals.at(ORIGIN + 7200.0)[0].carbon_intensity == _hour("2023-02-01T02:00")


def test_build_signals_live_uses_the_spec_settings(api: FakeApi) -> None:
    api.replies[(CARBON_PATH, "ZS")] = (200, _carbon("ZS", 42))
    spec = SignalsSpec(
        source="electricitymaps", regions=("south",), base_url=api.url, api_key_env=KEY_ENV
    )
    signals = build_signals(spec, CATALOGUE, ORIGIN)
    assert isinstance(signals, ElectricityMapsSignals)
    try:
        assert signals.at(NOW)[0].carbon_intensity == 42.0
    finally:
        signals.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(SignalsSpec(source="csv", regions=("north",)), "AUTOOPS_DATA_DIR", id="data"),
        pytest.param(SignalsSpec(source="static", regions=("mars",)), "mars", id="region"),
    ],
)
def test_build_signals_says_what_is_missing(spec: SignalsSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_signals(spec, CATALOGUE, ORIGIN)

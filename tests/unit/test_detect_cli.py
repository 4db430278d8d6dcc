from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autoops.detect_commands import bench_nab_command, detect_app

REPO = Path(__file__).resolve().parents[2]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(detect_app, name="detect")
    bench = typer.Typer()
    bench.command("nab")(bench_nab_command)
    bench.command("noop")(lambda: None)  # two commands keep "nab" a named subcommand
    app.add_typer(bench, name="bench")
    return app


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _series_csv(rows: int = 400) -> str:
    lines = ["timestamp,value"]
    for i in range(rows):
        value = 50.0 if i == 300 else 10.0 + (i % 7) * 0.1
        lines.append(f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00,{value}")
    return "\n".join(lines) + "\n"


def test_anomalies_writes_one_scored_row_per_input_row(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.csv", _series_csv())
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(_app(), ["detect", "anomalies", "-i", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "alarm"]
    assert len(rows) == 400
    assert rows[5]["timestamp"] == "2024-01-01 00:05:00"
    assert [i for i, r in enumerate(rows) if r["alarm"] == "1"] == [300]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)


def test_anomalies_reads_custom_columns_and_keeps_missing_values(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.csv", "t,latency,x\n1,1.0,a\n2,,b\n3,nan,c\n4,2.0,d\n")
    out = tmp_path / "out.csv"
    args = ["detect", "anomalies", "-i", str(source), "-o", str(out)]
    args += ["--timestamp-column", "t", "--value-column", "latency"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[2] == "2,,0.000000,0"
    assert len(lines) == 5


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        pytest.param("", [], ["in.csv", "empty file"], id="empty-file"),
        pytest.param("timestamp,value\n", [], ["in.csv", "no data rows"], id="header-only"),
        pytest.param(
            "timestamp,value\n2024-01-01,1\n2024-01-02,abc\n",
            [],
            ["in.csv", "'value'", "line 3", "'abc'"],
            id="non-numeric-value",
        ),
        pytest.param(
            "timestamp,latency\n2024-01-01,1\n",
            [],
            ["in.csv", "missing column 'value'", "latency"],
            id="missing-column",
        ),
        pytest.param(
            "ts,value\n2024-01-01,1\n",
            [],
            ["in.csv", "missing column 'timestamp'"],
            id="missing-timestamp-column",
        ),
        pytest.param(
            "timestamp,value\n2024-01-02,1\n2024-01-01,2\n",
            [],
            ["in.csv", "'timestamp'", "line 3", "earlier than line 2"],
            id="unsorted-timestamps",
        ),
        pytest.param(
            "timestamp,value\nyesterday,1\n",
            [],
            ["in.csv", "'timestamp'", "line 2", "not a timestamp"],
            id="bad-timestamp",
        ),
        pytest.param(
            "timestamp,value\n2024-01-01,1\n",
            ["--value-column", "p99"],
            ["in.csv", "missing column 'p99'"],
            id="missing-custom-column",
        ),
    ],
)
def test_anomalies_bad_input_exits_1_with_one_line_naming_file_and_column(
    tmp_path: Path, content: str, args: list[str], expected: list[str]
) -> None:
    source = _write(tmp_path / "in.csv", content)
    out = tmp_path / "out.csv"
    cmd = ["detect", "anomalies", "-i", str(source), "-o", str(out), *args]
    result = CliRunner().invoke(_app(), cmd)
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert "\n" not in message
    assert "Traceback" not in result.output
    for part in expected:
        assert part in message


def test_anomalies_missing_input_file_exits_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    cmd = ["detect", "anomalies", "-i", str(missing), "-o", str(tmp_path / "o.csv")]
    result = CliRunner().invoke(_app(), cmd)
    assert result.exit_code == 1
    assert "nope.csv" in result.stderr


def test_duplicate_timestamps_are_kept_in_file_order(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.csv", "timestamp,value\n2024-01-01,1\n2024-01-01,2\n")
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(_app(), ["detect", "anomalies", "-i", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3


def _tiny_nab(root: Path) -> Path:
    data = root / "nab" / "data" / "realTest"
    data.mkdir(parents=True)
    (data / "one.csv").write_text(_series_csv(), encoding="utf-8")
    labels = root / "nab" / "labels"
    labels.mkdir(parents=True)
    window = [["2024-01-01 04:50:00.000000", "2024-01-01 05:10:00.000000"]]
    (labels / "combined_windows.json").write_text(
        json.dumps({"realTest/one.csv": window}), encoding="utf-8"
    )
    return root


def test_bench_nab_writes_the_benchmark_json_shape(tmp_path: Path) -> None:
    root = _tiny_nab(tmp_path / "data")
    out = tmp_path / "nab.json"
    cmd = ["bench", "nab", "--data-dir", str(root), "--profile", "standard", "--output", str(out)]
    result = CliRunner().invoke(_app(), cmd)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == ["name", "config", "machine", "results", "anchors"]
    assert data["name"] == "nab"
    assert list(data["results"]["overall"]) == ["standard"]
    # the spike at row 300 is inside the window 290..310: detected at its middle
    assert data["results"]["per_series"]["realTest/one.csv"]["detected_windows"] == 1
    assert data["anchors"]["nab_scoreboard_standard"]["ARTime"] == 74.9


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--profile", "fancy"], "unknown profile fancy", id="unknown-profile"),
        pytest.param(["--data-dir", "/nonexistent/dir"], "no NAB data folder", id="no-data"),
    ],
)
def test_bench_nab_bad_options_exit_1(tmp_path: Path, args: list[str], expected: str) -> None:
    result = CliRunner().invoke(_app(), ["bench", "nab", *args])
    assert result.exit_code == 1
    assert expected in result.stderr


def _shared_data() -> Path:
    env = os.environ.get("AUTOOPS_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.mark.skipif(
    not (_shared_data() / "nab" / "labels" / "combined_windows.json").is_file(),
    reason="NAB data absent: set AUTOOPS_DATA_DIR or provide ../shared/data/nab",
)
def test_shared_nab_corpus_loads_with_its_windows() -> None:
    from autoops.bench.nab import load_corpus

    corpus = load_corpus(_shared_data())
    assert len(corpus) == 38
    assert sum(len(s.windows) for s in corpus) == 69

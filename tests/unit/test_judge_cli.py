"""`detect canary` from the shell: verdicts as reports, bad input as one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from autoops.judge_commands import bench_canary_command, canary_command

app = typer.Typer()
app.command("canary")(canary_command)
app.command("bench")(bench_canary_command)
runner = CliRunner()


def _write(path: Path, header: str, values: list[str]) -> Path:
    path.write_text("\n".join([header, *values]) + "\n", encoding="utf-8")
    return path


def _samples(tmp_path: Path, name: str, loc: float, seed: int, n: int = 100) -> Path:
    rng = np.random.default_rng(seed)
    rows = [f"{i},{v:.3f}" for i, v in enumerate(rng.normal(loc, 5.0, n))]
    return _write(tmp_path / name, "timestamp,latency_ms", rows)


def _invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("canary_loc", "direction", "verdict"),
    [
        pytest.param(130.0, "increase", "FAIL", id="rise-fails"),
        pytest.param(130.0, "decrease", "PASS", id="rise-ignored-for-decrease"),
        pytest.param(100.0, "either", "PASS", id="same-passes"),
    ],
)
def test_canary_prints_the_verdict_and_exits_zero(
    tmp_path: Path, canary_loc: float, direction: str, verdict: str
) -> None:
    base = _samples(tmp_path, "b.csv", 100.0, 1)
    can = _samples(tmp_path, "c.csv", canary_loc, 2)
    code, out, _ = _invoke(
        "canary", "--baseline", base, "--canary", can, "--metric", "latency_ms",
        "--direction", direction,
    )  # fmt: skip
    assert code == 0
    assert out.startswith(f"{verdict}: latency_ms")
    assert "p_value" in out


def test_canary_json_output_has_the_statistics(tmp_path: Path) -> None:
    base = _samples(tmp_path, "b.csv", 100.0, 1)
    can = _samples(tmp_path, "c.csv", 130.0, 2)
    code, out, _ = _invoke(
        "canary", "--baseline", base, "--canary", can, "--metric", "latency_ms", "--json"
    )
    report = json.loads(out)
    assert code == 0
    assert (report["verdict"], report["classification"]) == ("FAIL", "high")
    assert report["statistics"]["canary_n"] == 100
    assert report["statistics"]["p_value"] < 0.01


def test_canary_drops_and_counts_nan_and_empty_cells(tmp_path: Path) -> None:
    base = _samples(tmp_path, "b.csv", 100.0, 1)
    rows = [f"{i},{v}" for i, v in enumerate([101, 99, "NaN", "", 100, 98, 102, "nan"])]
    can = _write(tmp_path / "c.csv", "timestamp,latency_ms", rows)
    code, out, _ = _invoke(
        "canary", "--baseline", base, "--canary", can, "--metric", "latency_ms", "--json"
    )
    assert code == 0
    stats = json.loads(out)["statistics"]
    assert (stats["canary_dropped"], stats["canary_n"]) == (3, 5)


def test_canary_with_header_only_reports_nodata(tmp_path: Path) -> None:
    base = _samples(tmp_path, "b.csv", 100.0, 1)
    can = _write(tmp_path / "c.csv", "timestamp,latency_ms", [])
    code, out, _ = _invoke("canary", "--baseline", base, "--canary", can, "--metric", "latency_ms")
    assert code == 0
    assert out.startswith("NODATA")


def test_canary_proportion_test_on_outcomes(tmp_path: Path) -> None:
    base = _write(tmp_path / "b.csv", "error", ["0"] * 990 + ["1"] * 10)
    can = _write(tmp_path / "c.csv", "error", ["0"] * 950 + ["1"] * 50)
    code, out, _ = _invoke(
        "canary", "--baseline", base, "--canary", can, "--metric", "error",
        "--test", "proportion", "--direction", "increase", "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert (report["verdict"], report["test"]) == ("FAIL", "fisher_exact")


@pytest.mark.parametrize(
    ("canary_text", "args", "expected"),
    [
        pytest.param("timestamp,p99\n1,5\n", (), ["c.csv", "'latency_ms'", "p99"], id="no-column"),
        pytest.param(
            "timestamp,latency_ms\n1,5\n2,fast\n", (), ["c.csv:3", "'latency_ms'", "'fast'"],
            id="non-numeric-names-line",
        ),
        pytest.param("", (), ["c.csv", "empty file"], id="empty-file"),
        pytest.param(
            "latency_ms\n1\n2\n", ("--test", "proportion"), ["c.csv", "'latency_ms'", "0 or 1"],
            id="proportion-not-binary",
        ),
        pytest.param(
            "latency_ms\n1\n", ("--direction", "up"), ["--direction", "'up'"], id="bad-direction"
        ),
        pytest.param(
            "latency_ms\n1\n", ("--confidence", "1.5"), ["--confidence"], id="bad-confidence"
        ),
    ],
)  # fmt: skip
def test_bad_input_exits_one_with_one_line_naming_file_and_column(
    tmp_path: Path, canary_text: str, args: tuple[str, ...], expected: list[str]
) -> None:
    # 0/1 baseline values: numeric for the sample test and valid outcomes for the proportion one.
    base = _write(tmp_path / "b.csv", "timestamp,latency_ms", [f"{i},{i % 2}" for i in range(20)])
    can = tmp_path / "c.csv"
    can.write_text(canary_text, encoding="utf-8")
    code, out, err = _invoke(
        "canary", "--baseline", base, "--canary", can, "--metric", "latency_ms", *args
    )
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    for part in expected:
        assert part in err
    assert "Traceback" not in err


def test_missing_file_is_named(tmp_path: Path) -> None:
    base = _samples(tmp_path, "b.csv", 100.0, 1)
    code, _, err = _invoke(
        "canary", "--baseline", base, "--canary", tmp_path / "nope.csv", "--metric", "latency_ms"
    )
    assert code == 1
    assert "nope.csv: no such file" in err


def test_bench_canary_writes_the_five_keys(tmp_path: Path) -> None:
    output = tmp_path / "canary.json"
    code, out, _ = _invoke("bench", "--rollouts", "2", "--seed", "3", "--output", output)
    assert code == 0
    data = json.loads(output.read_text(encoding="utf-8"))
    assert list(data) == ["name", "config", "machine", "results", "anchors"]
    assert json.loads(out) == data
    assert data["anchors"]["flagger_defaults"]["best_case_reaction_s"] == 300
    assert set(data["results"]["detection"]) == {"errors_x2", "latency_+30%", "accuracy_-5pt"}

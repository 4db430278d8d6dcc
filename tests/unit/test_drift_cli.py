"""``detect drift`` on CSV files: the JSON it prints, and one clear line on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from autoops.drift_commands import drift_command

app = typer.Typer()
app.command()(drift_command)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sample(path: Path, seed: int, shift: float = 0.0, n: int = 200) -> Path:
    rng = np.random.default_rng(seed)
    rows: list[list[object]] = [
        [round(float(a) + shift, 6), round(float(b), 6), str(c)]
        for a, b, c in zip(
            rng.normal(size=n), rng.normal(size=n), rng.choice(["x", "y", "z"], n), strict=True
        )
    ]
    return _write_csv(path, ["latency", "tokens", "region"], rows)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_prints_exactly_the_documented_json_shape(tmp_path: Path) -> None:
    reference = _sample(tmp_path / "ref.csv", 1)
    current = _sample(tmp_path / "cur.csv", 2)
    code, out, _ = _invoke("--reference", str(reference), "--current", str(current))
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["drift", "p_value", "method", "features"]
    assert data["drift"] is False
    assert set(data["features"]) == {"latency", "tokens", "region"}
    for feature in data["features"].values():
        assert list(feature) == ["statistic", "p_value", "drift", "method"]
    assert data["features"]["region"]["method"] == "chi2"
    assert data["features"]["latency"]["method"] == "ks"


def test_drift_exits_zero_and_writes_the_output_file(tmp_path: Path) -> None:
    reference = _sample(tmp_path / "ref.csv", 1)
    current = _sample(tmp_path / "cur.csv", 2, shift=1.0)
    output = tmp_path / "out" / "drift.json"
    code, out, _ = _invoke(
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--alpha",
        "0.05",
        "--output",
        str(output),
    )
    assert code == 0
    assert json.loads(out)["drift"] is True
    assert json.loads(output.read_text(encoding="utf-8")) == json.loads(out)


def _mismatched(tmp_path: Path) -> tuple[Path, Path]:
    reference = _sample(tmp_path / "ref.csv", 1)
    current = _write_csv(tmp_path / "cur.csv", ["latency", "tokens", "zone"], [[1, 2, "a"]] * 30)
    return reference, current


def _empty(tmp_path: Path) -> tuple[Path, Path]:
    empty = tmp_path / "cur.csv"
    empty.write_text("", encoding="utf-8")
    return _sample(tmp_path / "ref.csv", 1), empty


def _header_only(tmp_path: Path) -> tuple[Path, Path]:
    return _sample(tmp_path / "ref.csv", 1), _write_csv(
        tmp_path / "cur.csv", ["latency", "tokens", "region"], []
    )


def _numeric_in_one_file_only(tmp_path: Path) -> tuple[Path, Path]:
    reference = _sample(tmp_path / "ref.csv", 1)
    rows: list[list[object]] = [["fast", 1.0, "x"]] * 30
    return reference, _write_csv(tmp_path / "cur.csv", ["latency", "tokens", "region"], rows)


def _too_few_rows(tmp_path: Path) -> tuple[Path, Path]:
    return _sample(tmp_path / "ref.csv", 1), _sample(tmp_path / "cur.csv", 2, n=10)


def _all_missing_column(tmp_path: Path) -> tuple[Path, Path]:
    rows: list[list[object]] = [[1.0 + i, "", "x"] for i in range(30)]
    return _sample(tmp_path / "ref.csv", 1), _write_csv(
        tmp_path / "cur.csv", ["latency", "tokens", "region"], rows
    )


def _missing_file(tmp_path: Path) -> tuple[Path, Path]:
    return _sample(tmp_path / "ref.csv", 1), tmp_path / "cur.csv"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            _mismatched,
            ["ref.csv but not in", "'region'", "cur.csv but not in", "'zone'"],
            id="mismatched-columns",
        ),
        pytest.param(_empty, ["cur.csv: empty file"], id="empty-file"),
        pytest.param(_header_only, ["cur.csv: no data rows"], id="header-only"),
        pytest.param(
            _numeric_in_one_file_only,
            ["cur.csv: column 'latency' is not numeric", "'fast'"],
            id="non-numeric-in-one-file",
        ),
        pytest.param(_too_few_rows, ["cur.csv: 10 complete rows", "at least 20"], id="too-few"),
        pytest.param(_missing_file, ["cur.csv: file not found"], id="missing-file"),
        pytest.param(
            _all_missing_column, ["cur.csv: column 'tokens' has no values"], id="all-missing"
        ),
    ],
)
def test_bad_input_exits_one_with_a_line_naming_file_and_column(
    tmp_path: Path, make: Callable[[Path], tuple[Path, Path]], expected: list[str]
) -> None:
    reference, current = make(tmp_path)
    code, out, err = _invoke("--reference", str(reference), "--current", str(current))
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    for part in expected:
        assert part in err


def test_missing_cells_are_dropped_not_fatal(tmp_path: Path) -> None:
    reference = _sample(tmp_path / "ref.csv", 1)
    rows: list[list[object]] = [
        [0.1 * i, "" if i % 10 == 0 else 1.0 + 0.01 * i, "x"] for i in range(60)
    ]
    current = _write_csv(tmp_path / "cur.csv", ["latency", "tokens", "region"], rows)
    code, out, _ = _invoke("--reference", str(reference), "--current", str(current))
    assert code == 0
    assert set(json.loads(out)["features"]) == {"latency", "tokens", "region"}


@pytest.mark.parametrize("alpha", [pytest.param("0", id="zero"), pytest.param("1", id="one")])
def test_alpha_outside_the_open_unit_interval_exits_one(tmp_path: Path, alpha: str) -> None:
    reference = _sample(tmp_path / "ref.csv", 1)
    code, _, err = _invoke(
        "--reference", str(reference), "--current", str(reference), "--alpha", alpha
    )
    assert code == 1
    assert "--alpha" in err

"""`autoops run --scrape` finds the scrape targets of the cluster it is connected to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoops.adapters.scrape import BuiltinScraper
from autoops.run_commands import metrics_source


def _sd_file(path: Path, targets: list[str]) -> Path:
    path.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": targets}]), "utf-8")
    return path


def test_the_scraper_reads_the_given_session_sd_file_not_the_default_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray's default temp directory names another cluster's session (another test, another user).
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "default"))
    (tmp_path / "default" / "ray").mkdir(parents=True)
    _sd_file(tmp_path / "default" / "ray" / "prom_metrics_service_discovery.json", ["10.0.0.9:1"])
    ours = _sd_file(tmp_path / "session.json", ["127.0.0.1:9"])
    source = metrics_source(None, True, None, sd_file=ours)
    try:
        assert isinstance(source, BuiltinScraper)
        assert source.targets() == ["127.0.0.1:9"]
    finally:
        source.stop()


def test_without_a_session_the_scraper_reads_ray_s_default_sd_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    _sd_file(tmp_path / "ray" / "prom_metrics_service_discovery.json", ["127.0.0.1:7"])
    source = metrics_source(None, True, None)
    try:
        assert isinstance(source, BuiltinScraper)
        assert source.targets() == ["127.0.0.1:7"]
    finally:
        source.stop()

"""The generated prometheus.yml, finding the binary, and ``autoops prometheus config|up``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoops.adapters.prometheus_server import (
    BINARY_ENV,
    CONTROLLER_METRICS_TARGET,
    SD_FILE_NAME,
    PrometheusNotInstalledError,
    default_service_discovery_file,
    find_prometheus,
    prometheus_config,
    session_service_discovery_file,
)
from autoops.prometheus_commands import prometheus_app


def test_the_discovery_file_name_is_the_one_the_installed_ray_writes() -> None:
    from ray._private import ray_constants

    assert ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE == SD_FILE_NAME


def test_the_default_discovery_file_is_in_rays_default_temp_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ray._common.utils import get_default_ray_temp_dir

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert default_service_discovery_file() == Path(get_default_ray_temp_dir()) / SD_FILE_NAME
    assert default_service_discovery_file() == tmp_path / "ray" / SD_FILE_NAME
    assert session_service_discovery_file("/s") == Path("/s") / SD_FILE_NAME


def test_the_config_scrapes_ray_through_its_discovery_file_and_the_controller() -> None:
    config = yaml.safe_load(prometheus_config(["/tmp/ray/sd.json"], ["127.0.0.1:8765"], 1.0))
    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["scrape_timeout"] == "1s"
    ray_job, controller = config["scrape_configs"]
    assert ray_job["job_name"] == "ray"
    assert ray_job["file_sd_configs"][0]["files"] == ["/tmp/ray/sd.json"]
    assert controller == {
        "job_name": "autoops",
        "static_configs": [{"targets": ["127.0.0.1:8765"]}],
    }


def test_a_slow_scrape_interval_keeps_the_timeout_at_ten_seconds() -> None:
    config = yaml.safe_load(prometheus_config(["/x.json"], (), 30.0))
    assert config["global"]["scrape_timeout"] == "10s"
    assert [job["job_name"] for job in config["scrape_configs"]] == ["ray"]


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_a_scrape_interval_that_is_not_positive_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        prometheus_config(["/x.json"], (), interval)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
@pytest.mark.parametrize("interval", [0.5, 1.0, 15.0])
def test_promtool_accepts_the_generated_config(tmp_path: Path, interval: float) -> None:
    path = tmp_path / "prometheus.yml"
    sd = tmp_path / SD_FILE_NAME
    sd.write_text('[{"labels": {"job": "ray"}, "targets": ["127.0.0.1:1"]}]')
    path.write_text(prometheus_config([sd], [CONTROLLER_METRICS_TARGET], interval))
    done = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_missing_binary_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BINARY_ENV, raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(PrometheusNotInstalledError, match="apt-get install prometheus"):
        find_prometheus()


def test_a_binary_path_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "prometheus"
    fake.write_text("not a program")
    with pytest.raises(PrometheusNotInstalledError, match="not an executable"):
        find_prometheus(fake)


def test_config_command_prints_the_yaml_with_the_given_file_and_interval() -> None:
    result = CliRunner().invoke(
        prometheus_app, ["config", "--sd-file", "/s/sd.json", "--scrape-interval", "2"]
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.output)
    assert config["global"]["scrape_interval"] == "2s"
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == ["/s/sd.json"]
    assert config["scrape_configs"][1]["static_configs"][0]["targets"] == [
        CONTROLLER_METRICS_TARGET
    ]


def test_config_command_writes_a_file_and_can_leave_the_controller_out(tmp_path: Path) -> None:
    out = tmp_path / "prometheus.yml"
    result = CliRunner().invoke(prometheus_app, ["config", "--no-controller", "-o", str(out)])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(out.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["ray"]


def test_up_without_a_binary_exits_1_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(BINARY_ENV, raising=False)
    monkeypatch.setenv("PATH", "")
    result = CliRunner().invoke(prometheus_app, ["up", "--port", "0"])
    assert result.exit_code == 1
    assert "apt-get install prometheus" in result.output

"""Recordings for the replay and calibration tests: the dry run's incident, recorded live-style."""

from __future__ import annotations

from pathlib import Path

import yaml

from autoops.policy.loader import load_policy
from autoops.regions.loader import load_catalogue
from autoops.runtime.record import Recorder
from autoops.sim.incident import run_incident

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "carbon-aware.yaml"
"""The policy the incident is recorded under."""


def record_incident(path: Path) -> Path:
    """Record the dry run's synthetic incident (bad canary, ramp, carbon spike) into ``path``."""
    recorder = Recorder(path)
    try:
        run_incident(load_policy(POLICY), load_catalogue(), on_pass=recorder)
    finally:
        recorder.close()
    return path


def alert_only_policy(directory: Path) -> Path:
    """POLICY renamed ``alert-only``, alerting instead of rolling a failed canary back."""
    data = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    data["metadata"]["name"] = "alert-only"
    data["remediations"]["on_canary_failure"] = "alert"
    path = directory / "alert-only.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path

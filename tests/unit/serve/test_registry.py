"""The model registry: versions, verified loading, lineage, stage history, last known good."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autoops.contract import INPUT_SIZE
from serve_apps import registry as registry_module
from serve_apps.models import DigitsSplit, evaluate, load_digits_split, predict_proba, train_model
from serve_apps.registry import (
    ModelRegistry,
    Stage,
    TamperedArtifactError,
    UnknownVersionError,
    VersionExistsError,
    VersionRecord,
    data_digest,
    ensure_default_versions,
    sha256_file,
)


@pytest.fixture(scope="module")
def split() -> DigitsSplit:
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def small(split: DigitsSplit) -> nn.Module:
    return train_model("small", split.X_train, split.y_train, seed=0, epochs=5)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture(scope="module")
def defaults(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ModelRegistry, dict[str, VersionRecord]]:
    registry = ModelRegistry(tmp_path_factory.mktemp("defaults"))
    return registry, ensure_default_versions(registry, seed=0)


def _register(
    registry: ModelRegistry,
    version: str,
    model: nn.Module,
    split: DigitsSplit,
    parent: str | None = None,
    now: float = 1000.0,
    reference_size: int = 500,
) -> VersionRecord:
    return registry.register(
        version,
        model,
        "small",
        split.X_train,
        split.y_train,
        metrics={"accuracy": 0.9},
        hyperparameters={"epochs": 5, "hidden": [32]},
        seed=11,
        parent_version=parent,
        reference_size=reference_size,
        now=now,
    )


# --------------------------------------------------------------------------- register and get


def test_registered_version_round_trips_with_lineage(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    _register(registry, "v1", small, split, now=10.0)
    record = _register(registry, "v2", small, split, parent="v1", now=20.0)

    assert registry.get("v2") == record
    assert record.kind == "small"
    assert record.artifact == "versions/v2/model.pt"
    assert record.sha256 == sha256_file(registry.root / record.artifact)
    assert record.lineage.parent_version == "v1"
    assert record.lineage.seed == 11
    assert record.lineage.created_at == 20.0
    assert record.lineage.metrics == {"accuracy": 0.9}
    assert record.lineage.hyperparameters == {"epochs": 5, "hidden": [32]}
    assert record.lineage.training_data_digest == data_digest(split.X_train, split.y_train)
    assert record.stage == "registered"
    assert [v.version for v in registry.versions()] == ["v1", "v2"]


def test_loaded_model_answers_like_the_registered_one(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    _register(registry, "v1", small, split)
    loaded = registry.load("v1")
    assert not loaded.training
    np.testing.assert_array_equal(
        predict_proba(loaded, split.X_test), predict_proba(small, split.X_test)
    )


def test_register_refuses_to_overwrite_an_existing_version(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    original = _register(registry, "v1", small, split)
    other = train_model("small", split.X_train, split.y_train, seed=99, epochs=1)
    with pytest.raises(VersionExistsError, match="'v1' is already registered"):
        _register(registry, "v1", other, split)
    assert registry.get("v1") == original
    assert sha256_file(registry.root / original.artifact) == original.sha256


def test_concurrent_registrations_of_one_version_publish_exactly_one(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            _register(registry, "v1", small, split)
            outcome = "registered"
        except VersionExistsError:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 3 + ["registered"]
    assert [p.name for p in (registry.root / "versions").iterdir()] == ["v1"]
    assert list((registry.root / ".staging").iterdir()) == []


@pytest.mark.parametrize(
    "version",
    [
        pytest.param("../escape", id="path-traversal"),
        pytest.param("a/b", id="slash"),
        pytest.param("", id="empty"),
        pytest.param("v1__eu", id="name-separator"),
        pytest.param(".hidden", id="leading-dot"),
    ],
)
def test_register_refuses_names_unusable_in_deployment_names(
    version: str, registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    with pytest.raises(ValueError, match="version"):
        _register(registry, version, small, split)
    assert not (registry.root / "versions").exists() or not any(
        (registry.root / "versions").iterdir()
    )


def test_register_refuses_an_unknown_parent(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    with pytest.raises(UnknownVersionError, match="'ghost'"):
        _register(registry, "v2", small, split, parent="ghost")


def test_register_refuses_weights_of_another_kind(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    with pytest.raises(ValueError, match="do not fit a 'large' model"):
        registry.register("v1", small, "large", split.X_train, split.y_train, {}, {}, seed=0)


def test_register_refuses_non_finite_metrics(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    with pytest.raises(ValueError, match="finite"):
        registry.register(
            "v1", small, "small", split.X_train, split.y_train, {"accuracy": float("nan")}, {}, 0
        )
    assert "v1" not in registry


def test_unknown_version_error_names_the_version_and_the_known_ones(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    _register(registry, "v1", small, split)
    _register(registry, "small-v1", small, split)
    for call in (registry.get, registry.load, registry.reference_sample):
        with pytest.raises(UnknownVersionError) as caught:
            call("v9")
        assert str(caught.value) == (
            "unknown model version 'v9'; registered versions: small-v1, v1"
        )
        assert isinstance(caught.value, KeyError)


def test_unknown_version_in_an_empty_registry(registry: ModelRegistry) -> None:
    with pytest.raises(UnknownVersionError, match="registered versions: none"):
        registry.get("v1")
    assert registry.versions() == []
    assert registry.last_known_good() is None


# --------------------------------------------------------------------------- supply chain


def test_tampered_artifact_is_refused_before_deserialising(
    registry: ModelRegistry,
    small: nn.Module,
    split: DigitsSplit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = _register(registry, "v1", small, split)
    artifact = registry.root / record.artifact
    evil = train_model("small", split.X_train, split.y_train, seed=5, epochs=1)
    torch.save(evil.state_dict(), artifact)
    actual = sha256_file(artifact)

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was reached with a tampered artifact")

    monkeypatch.setattr(torch, "load", must_not_load)
    with pytest.raises(TamperedArtifactError) as caught:
        registry.load("v1")
    message = str(caught.value)
    for part in ("'v1'", str(artifact.resolve()), record.sha256, actual):
        assert part in message
    assert (caught.value.expected, caught.value.actual) == (record.sha256, actual)


def test_missing_artifact_is_refused(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    record = _register(registry, "v1", small, split)
    (registry.root / record.artifact).unlink()
    with pytest.raises(TamperedArtifactError, match="missing"):
        registry.load("v1")


def test_record_pointing_outside_its_folder_is_refused(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    _register(registry, "v1", small, split)
    _register(registry, "v2", small, split)
    path = registry.root / "versions" / "v2" / "record.json"
    data = json.loads(path.read_text())
    data["artifact"] = "versions/v1/model.pt"
    path.write_text(json.dumps(data))
    with pytest.raises(registry_module.RegistryError, match="outside the version's folder"):
        registry.load("v2")


# --------------------------------------------------------------------------- reference sample


@pytest.mark.parametrize(
    ("reference_size", "expected_rows"),
    [pytest.param(500, 500, id="subsample"), pytest.param(5000, 1347, id="all-rows")],
)
def test_reference_sample_is_a_seeded_subsample_of_training_inputs(
    reference_size: int,
    expected_rows: int,
    registry: ModelRegistry,
    small: nn.Module,
    split: DigitsSplit,
) -> None:
    _register(registry, "v1", small, split, reference_size=reference_size)
    sample = registry.reference_sample("v1")
    assert sample.shape == (expected_rows, INPUT_SIZE)
    assert sample.dtype == np.float32
    training_rows = {row.tobytes() for row in split.X_train}
    assert all(row.tobytes() in training_rows for row in sample)
    _register(registry, "v2", small, split, reference_size=reference_size)
    np.testing.assert_array_equal(registry.reference_sample("v2"), sample)


# --------------------------------------------------------------------------- stages


def test_stage_history_appends_in_order_and_skips_repeats(
    registry: ModelRegistry, small: nn.Module, split: DigitsSplit
) -> None:
    _register(registry, "v2", small, split, now=1.0)
    registry.set_stage("v2", "canary", "rollout started", now=2.0)
    registry.set_stage("v2", "canary", "reconciled again", now=3.0)
    record = registry.set_stage("v2", "rejected", "error ratio 0.4 > 0.05", now=4.0)

    assert registry.get("v2") == record
    assert record.stage == "rejected"
    assert [(c.stage, c.at, c.reason) for c in record.stages] == [
        ("registered", 1.0, "registered"),
        ("canary", 2.0, "rollout started"),
        ("rejected", 4.0, "error ratio 0.4 > 0.05"),
    ]


def test_set_stage_of_unknown_version_fails(registry: ModelRegistry) -> None:
    with pytest.raises(UnknownVersionError, match="'v3'"):
        registry.set_stage("v3", "stable", "nobody")


Step = tuple[str, Stage, float]


@pytest.mark.parametrize(
    ("steps", "exclude", "expected"),
    [
        pytest.param([], (), None, id="never-stable"),
        pytest.param([("v1", "stable", 1)], (), "v1", id="the-stable-one"),
        pytest.param(
            [("v1", "stable", 1), ("v2", "canary", 2), ("v2", "rejected", 3)],
            (),
            "v1",
            id="after-a-rejected-canary",
        ),
        pytest.param(
            [("v1", "stable", 1), ("v2", "canary", 2), ("v2", "stable", 3)],
            (),
            "v2",
            id="after-a-promotion",
        ),
        pytest.param(
            [("v1", "stable", 1), ("v2", "canary", 2), ("v2", "stable", 3)],
            ("v2",),
            "v1",
            id="excluding-the-failing-stable",
        ),
        pytest.param(
            [("v1", "stable", 1), ("v2", "stable", 2), ("v2", "retired", 3)],
            (),
            "v1",
            id="retired-is-skipped",
        ),
        pytest.param(
            [("v1", "stable", 1), ("v1", "retired", 2)],
            (),
            None,
            id="only-stable-retired",
        ),
        pytest.param(
            [("v1", "stable", 1), ("v2", "stable", 2), ("v1", "canary", 3), ("v1", "stable", 4)],
            (),
            "v1",
            id="rolled-back-to-an-older-version",
        ),
        pytest.param(
            [("v1", "stable", 1), ("v2", "stable", 2), ("v1", "canary", 3)],
            (),
            "v2",
            id="ever-stable-and-now-canary-counts-by-its-last-stable-time",
        ),
    ],
)
def test_last_known_good(
    steps: Sequence[Step],
    exclude: tuple[str, ...],
    expected: str | None,
    registry: ModelRegistry,
    small: nn.Module,
    split: DigitsSplit,
) -> None:
    _register(registry, "v1", small, split, now=0.1)
    _register(registry, "v2", small, split, parent="v1", now=0.2)
    for version, stage, at in steps:
        registry.set_stage(version, stage, "test", now=at)
    found = registry.last_known_good(exclude=exclude)
    assert (found.version if found else None) == expected


# --------------------------------------------------------------------------- defaults


def test_default_versions_are_registered_with_lineage(
    defaults: tuple[ModelRegistry, dict[str, VersionRecord]], split: DigitsSplit
) -> None:
    registry, records = defaults
    assert {v: (r.kind, r.stage, r.lineage.parent_version) for v, r in records.items()} == {
        "small-v1": ("small", "registered", None),
        "v1": ("large", "stable", None),
        "v2": ("large", "registered", "v1"),
    }
    assert records["v1"].lineage.seed != records["v2"].lineage.seed
    assert registry.last_known_good() == records["v1"]
    for version, record in records.items():
        measured = evaluate(registry.load(version), split.X_test, split.y_test)["accuracy"]
        assert measured == pytest.approx(record.lineage.metrics["accuracy"])
    assert (
        records["v1"].lineage.metrics["accuracy"] > records["small-v1"].lineage.metrics["accuracy"]
    )


def test_default_versions_are_idempotent(
    defaults: tuple[ModelRegistry, dict[str, VersionRecord]], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, records = defaults

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("defaults were trained again")

    monkeypatch.setattr(registry_module, "train_model", must_not_train)
    assert ensure_default_versions(registry, seed=0) == records
    assert registry.get("v1").stages == records["v1"].stages

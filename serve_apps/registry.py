"""A file-based model registry: versions with verified artifacts, lineage and stage history.

Layout under the root::

    versions/<version>/model.pt       the state_dict (torch.save), checked by sha256 before loading
    versions/<version>/record.json    the VersionRecord (lineage + stage history)
    versions/<version>/reference.npy  a seeded sample of the training inputs, for drift tests

A version is written in a staging folder and published with one ``os.rename``, and every later
change to its record replaces the file atomically, so concurrent readers see a whole version or
none. Writers of one version's record hold an advisory lock (POSIX ``flock``).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import math
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator
from torch import nn

from autoops.contract import version_deployment_name
from serve_apps.models import (
    MODEL_KINDS,
    FloatArray,
    ModelKind,
    as_features,
    as_labels,
    build_model,
    evaluate,
    load_digits_split,
    train_model,
    training_config,
)

Stage = Literal["registered", "stable", "canary", "retired", "rejected"]
"""Where a version stands in its life: a new version is ``registered``."""

ARTIFACT_FILE = "model.pt"
RECORD_FILE = "record.json"
REFERENCE_FILE = "reference.npy"
_LOCK_FILE = ".lock"
_VERSIONS_DIR = "versions"
_STAGING_DIR = ".staging"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- errors


class RegistryError(Exception):
    """Something about the registry's content is wrong."""


class UnknownVersionError(RegistryError, KeyError):
    """No version of that name is registered."""

    def __init__(self, version: str, known: Collection[str]) -> None:
        self.version = version
        self.known = sorted(known)
        listed = ", ".join(self.known) if self.known else "none"
        super().__init__(f"unknown model version {version!r}; registered versions: {listed}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class VersionExistsError(RegistryError):
    """A version of that name is already registered; versions are never overwritten."""

    def __init__(self, version: str, path: Path) -> None:
        self.version = version
        super().__init__(
            f"model version {version!r} is already registered at {path}; versions are immutable, "
            "register the new model under a new version name"
        )


class TamperedArtifactError(RegistryError):
    """A version's artifact does not match the digest its record holds; it was not loaded."""

    def __init__(self, version: str, path: Path, expected: str, actual: str) -> None:
        self.version, self.path, self.expected, self.actual = version, path, expected, actual
        super().__init__(
            f"refusing to load model version {version!r}: artifact {path} has sha256 {actual}, "
            f"but the registry recorded sha256 {expected}"
        )


# --------------------------------------------------------------------------- records


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageChange(_Frozen):
    """One entry of a version's stage history."""

    stage: Stage = Field(description="The stage the version entered.")
    at: float = Field(description="When, in seconds since the epoch.")
    reason: str = Field(description="Why, in words (who decided and on what evidence).")


class Lineage(_Frozen):
    """Where a version comes from: data, settings, results and parent."""

    training_data_digest: str = Field(description="sha256 of the training inputs and labels.")
    hyperparameters: dict[str, JsonValue] = Field(description="Architecture and training settings.")
    metrics: dict[str, float] = Field(description="Evaluation results (accuracy, ...).")
    parent_version: str | None = Field(default=None, description="Version it was derived from.")
    seed: int = Field(description="Seed of its training and of its reference sample.")
    created_at: float = Field(description="Registration time, seconds since the epoch.")

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, metrics: dict[str, float]) -> dict[str, float]:
        bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
        if bad:
            raise ValueError(f"metrics must be finite numbers, got {bad}")
        return metrics


class VersionRecord(_Frozen):
    """A registered model version: its artifact, lineage and stage history."""

    version: str = Field(description="Version name (a part of deployment names).")
    kind: ModelKind = Field(description="Model kind, which decides the architecture.")
    artifact: str = Field(description="The state_dict's path, relative to the registry root.")
    sha256: str = Field(description="sha256 of the artifact file, checked before every load.")
    lineage: Lineage
    stages: tuple[StageChange, ...] = Field(
        min_length=1, description="Stage history, oldest first."
    )

    @field_validator("version")
    @classmethod
    def _valid_version(cls, version: str) -> str:
        check_version_name(version)
        return version

    @property
    def stage(self) -> Stage:
        """The current stage (the latest entry of the history)."""
        return self.stages[-1].stage

    def stable_since(self) -> float | None:
        """When the version last became stable, or None if it never was."""
        times = [change.at for change in self.stages if change.stage == "stable"]
        return max(times) if times else None


def check_version_name(version: str) -> None:
    """Raise ValueError unless ``version`` is valid in deployment names (hence as a folder)."""
    version_deployment_name("model", version, "region")


# --------------------------------------------------------------------------- file helpers


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_digest(
    X: npt.ArrayLike,  # noqa: N803 - X is the feature matrix
    y: npt.ArrayLike,
) -> str:
    """Hex sha256 of a labelled data set (float32 inputs and int64 labels, shapes included)."""
    features = as_features(X)
    labels = as_labels(y, len(features))
    digest = hashlib.sha256()
    for array in (features, labels):
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def reference_subsample(features: FloatArray, size: int, seed: int) -> FloatArray:
    """Up to ``size`` rows of ``features`` drawn without replacement, in their original order."""
    if size < 1:
        raise ValueError(f"reference_size must be >= 1, got {size}")
    if len(features) <= size:
        return features.copy()
    rows = np.sort(np.random.default_rng(seed).choice(len(features), size=size, replace=False))
    return features[rows]


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing)."""
    with path.open("a") as stream:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- registry


class ModelRegistry:
    """Model versions stored under one root folder (local disk or a shared file system)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ----------------------------------------------------------------- paths

    def _versions_root(self) -> Path:
        return self.root / _VERSIONS_DIR

    def _version_dir(self, version: str) -> Path:
        check_version_name(version)
        return self._versions_root() / version

    def _record_path(self, version: str) -> Path:
        return self._version_dir(version) / RECORD_FILE

    # ----------------------------------------------------------------- reading

    def _known(self) -> list[str]:
        if not self._versions_root().is_dir():
            return []
        return sorted(p.parent.name for p in self._versions_root().glob(f"*/{RECORD_FILE}"))

    def get(self, version: str) -> VersionRecord:
        """The record of ``version``; UnknownVersionError when there is none."""
        try:
            path = self._record_path(version)
            text = path.read_text(encoding="utf-8")
        except (ValueError, FileNotFoundError, NotADirectoryError):
            raise UnknownVersionError(version, self._known()) from None
        try:
            return VersionRecord.model_validate_json(text)
        except ValidationError as error:
            raise RegistryError(f"{path} is not a valid version record: {error}") from error

    def versions(self) -> list[VersionRecord]:
        """Every registered version, oldest first."""
        records = [self.get(version) for version in self._known()]
        return sorted(records, key=lambda r: (r.lineage.created_at, r.version))

    def __contains__(self, version: object) -> bool:
        return isinstance(version, str) and version in self._known()

    def artifact_path(self, record: VersionRecord) -> Path:
        """The artifact's absolute path; RegistryError if the record points outside its folder."""
        path = (self.root / record.artifact).resolve()
        if path.parent != self._version_dir(record.version).resolve():
            raise RegistryError(
                f"record of {record.version!r} points its artifact outside the version's folder: "
                f"{record.artifact!r}"
            )
        return path

    def load(self, version: str, device: str | torch.device = "cpu") -> nn.Module:
        """The model of ``version`` in eval mode on ``device``, after checking its sha256.

        The bytes are read once, hashed, and only then deserialised (weights only), so an
        artifact changed after registration is refused before torch reads any of it.
        """
        record = self.get(version)
        path = self.artifact_path(record)
        try:
            payload = path.read_bytes()
        except FileNotFoundError:
            raise TamperedArtifactError(version, path, record.sha256, "<missing file>") from None
        actual = hashlib.sha256(payload).hexdigest()
        if actual != record.sha256:
            raise TamperedArtifactError(version, path, record.sha256, actual)
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        model = build_model(record.kind)
        model.load_state_dict(state)
        return model.to(device).eval()

    def reference_sample(self, version: str) -> FloatArray:
        """The sample of training inputs kept with ``version`` (rows of 64 features)."""
        self.get(version)
        sample = np.load(self._version_dir(version) / REFERENCE_FILE, allow_pickle=False)
        return np.asarray(sample, dtype=np.float32)

    def last_known_good(self, exclude: Collection[str] = ()) -> VersionRecord | None:
        """The version that most recently became stable and is not retired, rejected or excluded."""
        candidates = [
            (since, record.version, record)
            for record in self.versions()
            if record.version not in exclude
            and record.stage not in ("retired", "rejected")
            and (since := record.stable_since()) is not None
        ]
        return max(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None

    # ----------------------------------------------------------------- writing

    def register(
        self,
        version: str,
        model: nn.Module,
        kind: ModelKind,
        X_train: npt.ArrayLike,  # noqa: N803 - X is the feature matrix
        y_train: npt.ArrayLike,
        metrics: Mapping[str, float],
        hyperparameters: Mapping[str, JsonValue],
        seed: int,
        parent_version: str | None = None,
        reference_size: int = 500,
        now: float | None = None,
    ) -> VersionRecord:
        """Store ``model`` as a new version (stage ``registered``); never overwrites one."""
        target = self._version_dir(version)
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {list(MODEL_KINDS)}")
        if (target / RECORD_FILE).exists():
            raise VersionExistsError(version, target)
        if parent_version is not None:
            self.get(parent_version)
        features = as_features(X_train)
        labels = as_labels(y_train, len(features))
        state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        try:
            build_model(kind).load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"the model's weights do not fit a {kind!r} model: {error}") from error
        at = time.time() if now is None else now
        staging_root = self.root / _STAGING_DIR
        staging_root.mkdir(parents=True, exist_ok=True)
        self._versions_root().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{version}.", dir=staging_root))
        try:
            torch.save(state, staging / ARTIFACT_FILE)
            np.save(
                staging / REFERENCE_FILE,
                reference_subsample(features, reference_size, seed),
                allow_pickle=False,
            )
            record = VersionRecord(
                version=version,
                kind=kind,
                artifact=f"{_VERSIONS_DIR}/{version}/{ARTIFACT_FILE}",
                sha256=sha256_file(staging / ARTIFACT_FILE),
                lineage=Lineage(
                    training_data_digest=data_digest(features, labels),
                    hyperparameters=dict(hyperparameters),
                    metrics=dict(metrics),
                    parent_version=parent_version,
                    seed=seed,
                    created_at=at,
                ),
                stages=(StageChange(stage="registered", at=at, reason="registered"),),
            )
            _write_atomically(staging / RECORD_FILE, record.model_dump_json(indent=2))
            try:
                os.rename(staging, target)
            except OSError:
                if (target / RECORD_FILE).exists():
                    raise VersionExistsError(version, target) from None
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return record

    def set_stage(
        self, version: str, stage: Stage, reason: str, now: float | None = None
    ) -> VersionRecord:
        """Append ``stage`` to the version's history; a no-op when it is already the stage."""
        self.get(version)
        directory = self._version_dir(version)
        with _locked(directory / _LOCK_FILE):
            record = self.get(version)
            if record.stage == stage:
                return record
            change = StageChange(stage=stage, at=time.time() if now is None else now, reason=reason)
            updated = record.model_copy(update={"stages": (*record.stages, change)})
            _write_atomically(directory / RECORD_FILE, updated.model_dump_json(indent=2))
        return updated


# --------------------------------------------------------------------------- defaults

SMALL_VERSION = "small-v1"
"""The default small model (cascade first answer, overload fallback)."""
STABLE_VERSION = "v1"
"""The default large model, registered as stable."""
CANDIDATE_VERSION = "v2"
"""A second large model (another seed, parent v1), the demo's canary candidate."""

_DEFAULTS: tuple[tuple[str, ModelKind, int, str | None], ...] = (
    (SMALL_VERSION, "small", 0, None),
    (STABLE_VERSION, "large", 0, None),
    (CANDIDATE_VERSION, "large", 1, STABLE_VERSION),
)
"""(version, kind, seed offset, parent) of every default version, parents first."""


def ensure_default_versions(registry: ModelRegistry, seed: int = 0) -> dict[str, VersionRecord]:
    """Train and register the demo's default versions unless present (v1 becomes stable).

    Idempotent and safe to race: versions already registered are left as they are, except that
    ``v1`` is made stable while its history holds nothing but its registration.
    """
    split = load_digits_split(seed)
    records: dict[str, VersionRecord] = {}
    for version, kind, offset, parent in _DEFAULTS:
        if version in registry:
            records[version] = registry.get(version)
            continue
        model = train_model(kind, split.X_train, split.y_train, seed + offset)
        hyperparameters = training_config(kind).hyperparameters() | {
            "data": "digits train split",
            "split_seed": seed,
            "test_size": 0.25,
        }
        try:
            records[version] = registry.register(
                version,
                model,
                kind,
                split.X_train,
                split.y_train,
                metrics=evaluate(model, split.X_test, split.y_test),
                hyperparameters=hyperparameters,
                seed=seed + offset,
                parent_version=parent,
            )
        except VersionExistsError:  # another process registered it meanwhile
            records[version] = registry.get(version)
    stable = records[STABLE_VERSION]
    if [change.stage for change in stable.stages] == ["registered"]:
        records[STABLE_VERSION] = registry.set_stage(
            STABLE_VERSION, "stable", "default stable version"
        )
    return records

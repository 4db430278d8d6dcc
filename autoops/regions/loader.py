"""Load the region catalogue: the shipped ``catalogue.yaml`` plus the user's own files."""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoops.regions.model import GpuOffer, Region, RegionCatalogue
from autoops.yamlio import (
    ConfigError,
    ConfigIssue,
    LineMap,
    format_path,
    issues_from_validation,
    load_yaml,
    parse_yaml,
)

ENV_VAR = "AUTOOPS_REGIONS"
"""Environment variable listing extra catalogue files, separated by ``os.pathsep``."""
SHIPPED = "catalogue.yaml"
"""The catalogue file that ships inside ``autoops.regions``."""

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_NAME = re.compile(_NAME_PATTERN)
GroupName = Annotated[str, Field(pattern=_NAME_PATTERN)]
ZoneName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSpec(_Spec):
    """A GPU type a region offers, as written in the catalogue file."""

    type: str = Field(min_length=1, max_length=64, description="GPU model, e.g. ``L4``.")
    usd_per_hour: NonNegFloat = Field(description="On-demand price of one GPU, $/h.")


class RegionSpec(_Spec):
    """One region as written in a catalogue file."""

    cloud: Literal["aws", "gcp", "azure", "local"] = Field(description="Cloud provider.")
    cloud_region: str = Field(min_length=1, max_length=64, description="Provider region id.")
    carbon_zone: ZoneName = Field(description="Grid zone whose carbon intensity applies.")
    price_zone: ZoneName = Field(
        description="Zone whose electricity price applies; a region without its own price "
        "data names the nearest zone with data."
    )
    gpus: tuple[GpuSpec, ...] = Field(default=(), description="GPU types offered.")
    replica_usd_per_hour: NonNegFloat = Field(description="$/h of one serving replica.")
    replica_power_kw: NonNegFloat = Field(default=0.3, description="kW one replica draws.")
    latency_ms: dict[GroupName, NonNegFloat] = Field(
        min_length=1, description="Round-trip latency from each user group, ms."
    )
    serve_endpoint: str | None = Field(
        default=None, description="Ray dashboard URL of this region's cluster."
    )
    node_label: str | None = Field(
        default=None, description="Node label value; defaults to the region name."
    )
    description: str = Field(default="", max_length=4096, description="Free text.")

    def to_region(self, name: str) -> Region:
        """The plain-data Region for this spec under ``name``."""
        description = self.description
        if self.price_zone != self.carbon_zone:
            note = f"electricity price from zone {self.price_zone}"
            description = f"{description} ({note})" if description else note
        return Region(
            name=name,
            cloud=self.cloud,
            cloud_region=self.cloud_region,
            carbon_zone=self.carbon_zone,
            price_zone=self.price_zone,
            gpus=tuple(GpuOffer(type=g.type, usd_per_hour=g.usd_per_hour) for g in self.gpus),
            latency_ms=dict(self.latency_ms),
            replica_usd_per_hour=self.replica_usd_per_hour,
            replica_power_kw=self.replica_power_kw,
            serve_endpoint=self.serve_endpoint,
            node_label=self.node_label or name,
            description=description,
        )


class CatalogueFile(_Spec):
    """The top level of a catalogue file: ``regions: {name: {...} | null}``."""

    regions: dict[str, Any] = Field(
        description="Regions by name; null removes a region defined by an earlier file."
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Fields of ``override`` replace those of ``base``; ``latency_ms`` entries are merged."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if key == "latency_ms" and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read(
    file: str, data: Any, lines: LineMap, issues: list[ConfigIssue]
) -> dict[str, dict[str, Any] | None]:
    """The region entries of one file; problems with its shape go to ``issues``."""
    try:
        parsed = CatalogueFile.model_validate(data)
    except ValidationError as exc:
        issues.extend(issues_from_validation(exc, CatalogueFile, data, lines, file))
        return {}
    out: dict[str, dict[str, Any] | None] = {}
    for name, body in parsed.regions.items():
        path = ("regions", name)
        where = lines.line_of(path)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            message = "region names are letters, digits, '-', '_' and '.', starting alphanumeric"
            issues.append(ConfigIssue(file, where, format_path(path), message))
        elif body is None or isinstance(body, dict):
            out[name] = body
        else:
            message = f"expected a mapping of region fields or null (got {body!r:.40})"
            issues.append(ConfigIssue(file, where, format_path(path), message))
    return out


def _user_files(extra: Sequence[str | os.PathLike[str]]) -> list[str]:
    env = os.environ.get(ENV_VAR, "")
    from_env = [p for p in env.split(os.pathsep) if p.strip()]
    return [*from_env, *(os.fspath(p) for p in extra)]


def load_catalogue(extra: Sequence[str | os.PathLike[str]] = ()) -> RegionCatalogue:
    """The shipped catalogue plus ``$AUTOOPS_REGIONS`` files, then ``extra`` files, in order."""
    shipped = resources.files("autoops.regions").joinpath(SHIPPED)
    sources: list[tuple[str, Any, LineMap]] = []
    data, lines = parse_yaml(shipped.read_bytes(), f"<autoops>/regions/{SHIPPED}")
    sources.append((f"<autoops>/regions/{SHIPPED}", data, lines))
    issues: list[ConfigIssue] = []
    for path in _user_files(extra):
        try:
            data, lines = load_yaml(path)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        sources.append((path, data, lines))
    raw: dict[str, dict[str, Any]] = {}
    origin: dict[str, tuple[str, LineMap]] = {}
    for file, data, lines in sources:
        for name, body in _read(file, data, lines, issues).items():
            if body is None:
                raw.pop(name, None)
                origin.pop(name, None)
                continue
            raw[name] = _merge(raw[name], body) if name in raw else dict(body)
            origin[name] = (file, lines)
    catalogue: dict[str, Region] = {}
    for name, body in raw.items():
        file, lines = origin[name]
        prefix = ("regions", name)
        try:
            spec = RegionSpec.model_validate(body)
        except ValidationError as exc:
            for issue in issues_from_validation(exc, RegionSpec, body, lines.sub(prefix), file):
                path = format_path(prefix) + (f".{issue.path}" if issue.path else "")
                line = issue.line if issue.line is not None else lines.line_of(prefix)
                issues.append(ConfigIssue(file, line, path, issue.message))
            continue
        catalogue[name] = spec.to_region(name)
    if issues:
        order = {file: index for index, (file, _, _) in enumerate(sources)}
        issues.sort(key=lambda i: (order.get(i.file, -1), i.line or 0))
        raise ConfigError(issues)
    return RegionCatalogue(regions=catalogue)


@functools.lru_cache(maxsize=1)
def default_catalogue() -> RegionCatalogue:
    """The catalogue with the user's ``$AUTOOPS_REGIONS`` files (cached; ``cache_clear()``)."""
    return load_catalogue()


def latency_groups(catalogue: RegionCatalogue) -> tuple[str, ...]:
    """Every user group that some region of the catalogue has a latency for, sorted."""
    return tuple(sorted({group for region in catalogue for group in region.latency_ms}))


def shipped_catalogue_path() -> Path:
    """Path of the shipped catalogue file (for documentation and tests)."""
    return Path(str(resources.files("autoops.regions").joinpath(SHIPPED)))

"""Load a policy file: safe YAML, schema validation, then the checks that need the catalogue."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoops.policy.schema import Policy
from autoops.regions.loader import default_catalogue, latency_groups
from autoops.regions.model import RegionCatalogue
from autoops.yamlio import (
    ConfigError,
    ConfigIssue,
    LineMap,
    format_path,
    issues_from_validation,
    load_yaml,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""JSON Schema dialect of the exported policy schema."""
SCHEMA_ID = "urn:autoops:policy:autoops/v1"
"""``$id`` of the exported policy schema."""


def _get(data: Any, *path: str) -> Any:
    """The value at ``path`` in raw YAML data, or None when any step is missing."""
    current = data
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _list_names(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def semantic_issues(
    data: Any, lines: LineMap, file: str, catalogue: RegionCatalogue
) -> list[ConfigIssue]:
    """Checks the schema alone cannot make: region names, latency groups, paired fields."""
    issues: list[ConfigIssue] = []

    def add(path: tuple[str | int, ...], message: str) -> None:
        issues.append(ConfigIssue(file, lines.line_of(path), format_path(path), message))

    regions = _get(data, "intent", "allowed_regions")
    if isinstance(regions, list):
        seen: dict[str, int] = {}
        for index, name in enumerate(regions):
            if not isinstance(name, str):
                continue  # the schema reports the type
            path = ("intent", "allowed_regions", index)
            if name in seen:
                add(path, f"region '{name}' is listed twice (also item {seen[name]})")
            elif name not in catalogue:
                known = _list_names(catalogue.names())
                add(path, f"unknown region '{name}' (known: {known})")
            seen.setdefault(name, index)
        min_regions = _get(data, "intent", "min_regions")
        if isinstance(min_regions, int) and 0 < len(seen) < min_regions:
            add(
                ("intent", "min_regions"),
                f"min_regions is {min_regions} but only {len(seen)} regions are allowed",
            )

    group = _get(data, "intent", "user_group")
    groups = latency_groups(catalogue)
    if isinstance(group, str) and group not in groups:
        add(
            ("intent", "user_group"),
            f"unknown user group '{group}' (the catalogue has latencies for: {', '.join(groups)})",
        )

    fallback = _get(data, "remediations", "fallback_version")
    on_drift = _get(data, "remediations", "on_drift") or "alert"
    if fallback is not None and on_drift != "fallback":
        add(
            ("remediations", "fallback_version"),
            f"fallback_version is used only with on_drift: fallback (on_drift is '{on_drift}')",
        )
    if fallback is None and on_drift == "fallback":
        add(
            ("remediations", "on_drift"),
            "on_drift: fallback needs remediations.fallback_version (the version to fall back to)",
        )
    return issues


def check_policy(
    data: Any, lines: LineMap, file: str, catalogue: RegionCatalogue | None = None
) -> Policy:
    """Validate parsed policy data; every schema and catalogue problem becomes one ConfigError."""
    catalogue = default_catalogue() if catalogue is None else catalogue
    issues = semantic_issues(data, lines, file, catalogue)
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues.extend(issues_from_validation(exc, Policy, data, lines, file))
    if issues or policy is None:
        issues.sort(key=lambda i: i.line or 0)
        raise ConfigError(issues)
    return policy


def load_policy(path: str | os.PathLike[str], catalogue: RegionCatalogue | None = None) -> Policy:
    """Load and fully check a policy file; problems raise ConfigError with file, line and field."""
    data, lines = load_yaml(path)
    return check_policy(data, lines, os.fspath(path), catalogue)


def validate_files(
    paths: Sequence[str | os.PathLike[str]], catalogue: RegionCatalogue | None = None
) -> tuple[int, list[str]]:
    """Check every policy file; return the exit code (0 all valid, 1 otherwise) and report lines."""
    out: list[str] = []
    if catalogue is None:
        try:
            catalogue = default_catalogue()
        except ConfigError as exc:
            return 1, [*(issue.format() for issue in exc.issues), "region catalogue invalid"]
    failed = 0
    for path in paths:
        try:
            load_policy(path, catalogue)
        except ConfigError as exc:
            failed += 1
            out.extend(issue.format() for issue in exc.issues)
        else:
            out.append(f"OK {os.fspath(path)}")
    if failed:
        noun = "file" if len(paths) == 1 else "files"
        out.append(f"{failed} of {len(paths)} policy {noun} invalid")
    return (1 if failed else 0), out


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of the policy language (field names as written in YAML)."""
    body = Policy.model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **body}


def schema_text() -> str:
    """The policy JSON Schema as the text of ``policies/schema.json``."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: str | os.PathLike[str]) -> None:
    """Write the policy JSON Schema to ``path`` (editors validate policies against it)."""
    Path(path).write_text(schema_text(), encoding="utf-8")

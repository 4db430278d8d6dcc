"""Policy files: examples validate, broken ones say FILE:LINE: field.path: problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoops.policy import Policy, load_policy, policy_json_schema, validate_files
from autoops.policy.commands import policy_app
from autoops.policy.explain import explain
from autoops.policy.loader import schema_text, write_schema
from autoops.regions import default_catalogue
from autoops.yamlio import ConfigError

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
EXAMPLES = sorted(POLICIES.glob("*.yaml"))

# Line numbers matter: the cases below edit this text and assert exact lines.
BASE = """\
apiVersion: autoops/v1
kind: Policy
metadata:
  name: test
target:
  application: digits
  deployment: classifier
  stable_version: v1
slo:
  latency_p99_ms: 200
intent:
  allowed_regions:
    - eu-west
    - eu-central
  user_group: eu
scaling:
  min_replicas: 1
  max_replicas: 4
rollout:
  steps: [5, 25, 50]
remediations:
  on_drift: alert
"""


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def test_base_policy_is_valid(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, BASE))
    assert policy.intent.allowed_regions == ("eu-west", "eu-central")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_policy_validates(path: Path) -> None:
    code, lines = validate_files([path])
    assert (code, lines) == (0, [f"OK {path}"])


def test_there_are_the_four_documented_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= {
        "canary-latency",
        "carbon-aware",
        "cost-budget",
        "conservative",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_point_editors_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./schema.json"


BROKEN = [
    pytest.param(
        _edit("  max_replicas: 4\n", "  max_replicas: 4\n  min_replica: 2\n"),
        ["{f}:19: scaling.min_replica: unknown field (did you mean 'min_replicas'?)"],
        id="unknown_field_at_its_key_line",
    ),
    pytest.param(
        _edit("  max_replicas: 4\n", "  max_replicas: lots\n"),
        [
            "{f}:18: scaling.max_replicas: input should be a valid integer, unable to parse "
            "string as an integer (got 'lots')"
        ],
        id="wrong_type",
    ),
    pytest.param(
        _edit("  min_replicas: 1\n", "  min_replicas: 6\n"),
        ["{f}:17: scaling.min_replicas: min_replicas (6) is greater than max_replicas (4)"],
        id="min_replicas_above_max_replicas",
    ),
    pytest.param(
        _edit("    - eu-central\n", "    - eu-central\n    - mars-1\n"),
        ["{f}:15: intent.allowed_regions.2: unknown region 'mars-1' (known: us-west, "],
        id="unknown_region_at_its_list_item",
    ),
    pytest.param(
        _edit("  steps: [5, 25, 50]\n", "  steps: [5, 25, 25]\n"),
        ["{f}:20: rollout.steps: steps must be strictly increasing, but 25 follows 25"],
        id="step_weights_not_increasing",
    ),
    pytest.param(
        _edit("  deployment: classifier\n", ""),
        ["{f}:5: target.deployment: required field is missing"],
        id="missing_required_field_at_parent_line",
    ),
    pytest.param(
        _edit("slo:\n  latency_p99_ms: 200\n", ""),
        ["{f}:1: slo: required field is missing"],
        id="missing_required_section_at_line_1",
    ),
    pytest.param(
        _edit("    - eu-west\n", "    - eu-west\n    - eu-west\n"),
        ["{f}:14: intent.allowed_regions.1: region 'eu-west' is listed twice (also item 0)"],
        id="region_listed_twice",
    ),
    pytest.param(
        _edit("  user_group: eu\n", "  user_group: mars\n"),
        [
            "{f}:15: intent.user_group: unknown user group 'mars' (the catalogue has "
            "latencies for: af, apac, eu, na, sa)"
        ],
        id="unknown_user_group",
    ),
    pytest.param(
        _edit("  on_drift: alert\n", "  on_drift: alert\n  fallback_version: v0\n"),
        [
            "{f}:23: remediations.fallback_version: fallback_version is used only with "
            "on_drift: fallback (on_drift is 'alert')"
        ],
        id="fallback_version_without_fallback",
    ),
    pytest.param(
        _edit("  on_drift: alert\n", "  on_drift: fallback\n"),
        ["{f}:22: remediations.on_drift: on_drift: fallback needs remediations.fallback_version"],
        id="fallback_without_fallback_version",
    ),
    pytest.param(
        _edit("  user_group: eu\n", "  user_group: eu\n  min_regions: 3\n"),
        ["{f}:16: intent.min_regions: min_regions is 3 but only 2 regions are allowed"],
        id="min_regions_above_allowed_regions",
    ),
    pytest.param(
        _edit("  max_replicas: 4\n", "  max_replicas: 4\n  max_replicas: 5\n"),
        ["{f}:19: scaling.max_replicas: duplicate key 'max_replicas' (first given at line 18)"],
        id="duplicate_key",
    ),
    pytest.param("", ["{f}:1: file is empty (expected a mapping of fields)"], id="empty_file"),
    pytest.param(
        "apiVersion: autoops/v1\nkind: [Policy\n",
        ["{f}:3: not valid YAML: "],
        id="not_yaml",
    ),
    pytest.param(
        "- apiVersion: autoops/v1\n- kind: Policy\n",
        ["{f}:1: top level must be a mapping of fields, not a list"],
        id="top_level_is_a_list",
    ),
    pytest.param(
        "metadata: &m {name: [a, a, a, a, a, a, a, a, a, a]}\n"
        + "".join(
            f"x{i}: &x{i} [" + ", ".join([f"*{'m' if i == 0 else f'x{i - 1}'}"] * 10) + "]\n"
            for i in range(8)
        ),
        ["{f}:5: aliases expand this value by more than 100,000 nodes; refusing a possible YAML"],
        id="yaml_bomb",
    ),
    pytest.param(
        _edit("  min_replicas: 1\n", "  min_replicas: -1\n  tolerance: 2\n").replace(
            "    - eu-central\n", "    - mars-1\n"
        ),
        [
            "{f}:14: intent.allowed_regions.1: unknown region 'mars-1'",
            "{f}:17: scaling.min_replicas: input should be greater than or equal to 0 (got -1)",
            "{f}:18: scaling.tolerance: input should be less than 1 (got 2)",
        ],
        id="every_issue_reported_in_line_order",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_broken_policy_exits_1_with_file_line_and_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = _write(tmp_path, text)
    code, lines = validate_files([path])
    assert code == 1
    issues, summary = lines[:-1], lines[-1]
    assert summary == "1 of 1 policy file invalid"
    assert len(issues) == len(expected), issues
    for line, want in zip(issues, expected, strict=True):
        assert line.startswith(want.format(f=path)), line


def test_a_50_mb_policy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(BASE.encode() + b"# padding\n" * (5 * 1024 * 1024))
    code, lines = validate_files([path])
    assert code == 1
    assert (
        lines[0]
        == f"{path}: file is larger than the 1 MiB limit for config files; refusing to read it"
    )


def test_every_file_is_checked_and_missing_paths_are_issues(tmp_path: Path) -> None:
    good = _write(tmp_path, BASE, "good.yaml")
    bad = _write(tmp_path, _edit("kind: Policy\n", "kind: Polcy\n"), "bad.yaml")
    missing = tmp_path / "missing.yaml"
    code, lines = validate_files([bad, good, missing, tmp_path])
    assert code == 1
    assert lines == [
        f"{bad}:2: kind: input should be 'Policy' (got 'Polcy')",
        f"OK {good}",
        f"{missing}: no such file",
        f"{tmp_path}: is a directory, not a file",
        "3 of 4 policy files invalid",
    ]


def test_load_policy_raises_config_error_with_issues(tmp_path: Path) -> None:
    path = _write(tmp_path, _edit("  min_replicas: 1\n", "  min_replicas: 9\n"))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert [(i.line, i.path) for i in info.value.issues] == [(17, "scaling.min_replicas")]


def test_schema_json_is_up_to_date() -> None:
    committed = (POLICIES / "schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "policies/schema.json is stale: run `autoops policy schema --output policies/schema.json`"
    )


def test_json_schema_names_fields_as_written_in_yaml() -> None:
    schema = policy_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["$id"]
    assert "apiVersion" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_write_schema_writes_valid_json(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    write_schema(out)
    assert json.loads(out.read_text(encoding="utf-8")) == policy_json_schema()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_also_pass_the_exported_json_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from autoops.yamlio import load_yaml

    data, _ = load_yaml(path)
    jsonschema.validate(data, policy_json_schema())


@pytest.mark.parametrize(
    ("name", "phrases"),
    [
        pytest.param(
            "canary-latency",
            [
                "2% -> 5% -> 10% -> 25% -> 50%",
                "about 43 minutes of full outage per 30 days",
                "14.4x",
                "between 2 and 12 replicas",
                "Predictive",
            ],
            id="canary",
        ),
        pytest.param(
            "carbon-aware",
            [
                "lowest grid carbon intensity",
                "250 gCO2e/kWh",
                "$12/h",
                "eu-west",
                "eu-central",
                "ca-central",
                "Never anywhere else",
                "retraining",
            ],
            id="carbon",
        ),
        pytest.param(
            "cost-budget",
            ["lowest cost", "once a human approves", "never below 95% accuracy", "v1-robust"],
            id="cost",
        ),
        pytest.param(
            "conservative",
            ["DRY RUN", "raises an alert", "holds: changes nothing"],
            id="conservative",
        ),
    ],
)
def test_explain_says_what_the_controller_will_do(name: str, phrases: list[str]) -> None:
    policy = load_policy(POLICIES / f"{name}.yaml")
    text = explain(policy, default_catalogue())
    for phrase in phrases:
        assert phrase in text, phrase


def test_explain_follows_the_policy_fields() -> None:
    policy = load_policy(POLICIES / "canary-latency.yaml")
    changed = Policy.model_validate(
        {**policy.model_dump(by_alias=True), "slo": {"latency_p99_ms": 100, "availability": 0.99}}
    )
    text = explain(changed, default_catalogue())
    assert "7.2 hours of full outage per 30 days" in text
    assert "at most 100 ms" in text


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        pytest.param(["validate", str(POLICIES / "conservative.yaml")], 0, "OK ", id="validate_ok"),
        pytest.param(["validate", "/nonexistent.yaml"], 1, "no such file", id="validate_missing"),
        pytest.param(["explain", str(POLICIES / "carbon-aware.yaml")], 0, "Rollout", id="explain"),
        pytest.param(["explain", "/nonexistent.yaml"], 1, "no such file", id="explain_missing"),
        pytest.param(["schema"], 0, '"$schema"', id="schema"),
        pytest.param(["validate", "--help"], 0, "Policy files to check", id="validate_help"),
        pytest.param(["schema", "--help"], 0, "JSON Schema", id="schema_help"),
        pytest.param(["explain", "--help"], 0, "plain words", id="explain_help"),
    ],
)
def test_policy_commands(args: list[str], code: int, needle: str) -> None:
    result = runner.invoke(policy_app, args)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_schema_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = runner.invoke(policy_app, ["schema", "--output", str(out)])
    assert result.exit_code == 0
    assert out.read_text(encoding="utf-8") == schema_text()

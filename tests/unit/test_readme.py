"""The README's examples match the code: its policy validates, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from autoops.cli import app
from autoops.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_policy_example_is_a_valid_policy(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no yaml example"
    path = tmp_path / "example.yaml"
    path.write_text(blocks[0], encoding="utf-8")
    policy = load_policy(path)
    assert policy.rollout.burn_rate_gates


def test_readme_quick_start_targets_exist_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^make (\w+)", README, flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target


def test_every_autoops_command_in_the_readme_has_help() -> None:
    commands = set(re.findall(r"^autoops ([a-z]+(?: [a-z]+)?)", README, flags=re.M))
    assert commands
    for command in commands:
        result = CliRunner().invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in README
    assert re.search(r"^\s*make test\b", ci, flags=re.M)

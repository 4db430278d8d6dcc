"""``autoops policy ...``: validate policy files, export the JSON Schema, explain a policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autoops.policy.explain import explain as explain_policy
from autoops.policy.loader import load_policy, schema_text, validate_files, write_schema
from autoops.regions.loader import load_catalogue
from autoops.regions.model import RegionCatalogue
from autoops.yamlio import ConfigError

policy_app = typer.Typer(
    name="policy",
    help="Check, document and explain AutoOps policy files.",
    no_args_is_help=True,
)

RegionsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--regions",
        help="Extra region catalogue file that adds or overrides regions (repeatable; "
        "AUTOOPS_REGIONS is read too).",
        show_default=False,
    ),
]


def _catalogue(regions: list[Path] | None) -> RegionCatalogue:
    """The region catalogue with the user's files, or exit 1 with its issues."""
    try:
        return load_catalogue(regions or ())
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(issue.format(), err=True)
        raise typer.Exit(1) from None


@policy_app.command("validate")
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Policy files to check.", show_default=False),
    ],
    regions: RegionsOption = None,
) -> None:
    """Check policy files: print FILE:LINE: field: problem for each issue, OK FILE if valid."""
    code, lines = validate_files(files, _catalogue(regions))
    for line in lines:
        typer.echo(line, err=code != 0 and not line.startswith("OK "))
    raise typer.Exit(code)


@policy_app.command("schema")
def schema(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the schema to this file instead of printing it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the policy language's JSON Schema (for editors and CI)."""
    if output is None:
        typer.echo(schema_text(), nl=False)
        return
    try:
        write_schema(output)
    except OSError as exc:
        typer.echo(f"{output}: cannot write: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {output}", err=True)


@policy_app.command("explain")
def explain(
    file: Annotated[Path, typer.Argument(help="Policy file to explain.", show_default=False)],
    regions: RegionsOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the validated policy as JSON instead.")
    ] = False,
) -> None:
    """Say in plain words what the controller will do under a policy."""
    catalogue = _catalogue(regions)
    try:
        policy = load_policy(file, catalogue)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(issue.format(), err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(policy.model_dump(mode="json", by_alias=True), indent=2))
    else:
        typer.echo(explain_policy(policy, catalogue), nl=False)

"""The ``autoops`` command: the only place that wires adapters into the runtime."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="autoops",
    help="AutoOps: a self-healing controller for AI model serving on Ray Serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """AutoOps: a self-healing controller for AI model serving on Ray Serve."""


@app.command()
def version() -> None:
    """Print the AutoOps version."""
    from autoops import __version__

    typer.echo(__version__)


def main() -> None:
    """Run the ``autoops`` command line."""
    app()


if __name__ == "__main__":
    main()

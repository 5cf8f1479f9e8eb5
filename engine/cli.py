"""The ``engine`` command: validate module definitions, print the language schema, serve a
module. Storage and HTTP machinery are imported only by the commands that need them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.errors import EngineError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Declarative SaaS backup modules: one YAML file per module, the whole module API."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check module definitions (folders or module.yaml files); report every problem."""
    from engine.language.loader import validate as check

    problems = check(paths)
    for problem in problems:
        click.echo(str(problem))
    errors = sum(not problem.warning for problem in problems)
    warnings = len(problems) - errors
    summary = f"{len(paths)} module(s): {errors} error(s), {warnings} warning(s)"
    click.echo(summary, err=True)
    sys.exit(1 if errors else 0)


@main.command()
def schema() -> None:
    """Print the module definition language's JSON Schema."""
    from engine.language.schema import schema_path

    click.echo(schema_path().read_text(encoding="utf-8"), nl=False)


@main.command()
@click.argument("module", required=False, type=click.Path(path_type=Path))
@click.option("--host", help="Address to listen on (default: ENGINE_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: PORT or 8080).")
def serve(module: Path | None, host: str | None, port: int | None) -> None:
    """Serve the module API for MODULE (a folder; default: ENGINE_MODULE)."""
    from engine.serving import serve as run

    try:
        run(module, host=host, port=port)
    except EngineError as exc:
        for problem in getattr(exc, "problems", []):
            click.echo(str(problem), err=True)
        raise click.ClickException(exc.message) from None

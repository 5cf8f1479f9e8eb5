"""``engine init DIR``: a new module that validates at once, from the template or drafted from
an OpenAPI/Swagger description (``--from-openapi FILE|URL``). It never overwrites a file, and
asks for the id and name only on a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.authoring import scaffold, signin
from engine.authoring.draft import Identity
from engine.authoring.openapi import Api, read
from engine.errors import EngineError, ModuleExists
from engine.language.loader import validate

EXIT_CODES = """\b
Exit codes:
  0  written, and `engine validate` finds no error in it
  1  written, but it does not validate (a bug: please report it); or the URL failed
  2  usage, or the API description cannot be read or is not OpenAPI 3.x / Swagger 2.0
  3  refused: the folder already holds a module's file (nothing is overwritten)"""


@click.command(epilog=EXIT_CODES)
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--from-openapi", "source", metavar="FILE|URL", help="Draft from an API description.")
@click.option("--id", "module_id", help="The module id (default: from the folder's name).")
@click.option("--name", help="The module's display name (default: the description's title).")
@click.option(
    "--auth",
    type=click.Choice(sorted(signin.KINDS)),
    default="bearer",
    show_default=True,
    help="The template's sign-in (without --from-openapi).",
)
@click.option("--hooks", is_flag=True, help="Also write hooks.py, bound by a transform step.")
def init(
    folder: Path,
    *,
    source: str | None,
    module_id: str | None,
    name: str | None,
    auth: str,
    hooks: bool,
) -> None:
    """Write a new module into FOLDER: module.yaml, README.md (and hooks.py with --hooks).

    With --from-openapi, the module is drafted from the SaaS's OpenAPI 3.0/3.1 or Swagger 2.0
    document (JSON or YAML; a URL is fetched once): `# guess:` comments mark what was guessed,
    `# TODO:` lines what is left to write.
    """
    try:
        _refuse_overwrite(folder, ["module.yaml", "README.md", *(["hooks.py"] if hooks else [])])
        api = read(source) if source else scaffold.example_api(auth)
        identity = _identity(folder, api, module_id, name, hooks)
        origin = _origin(api, identity, source) if source else scaffold.EXAMPLE_ORIGIN
        written = scaffold.files(api, identity, origin)
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in written.items():
            (folder / file).write_text(text, encoding="utf-8")
        sys.exit(_report(folder, written))
    except EngineError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(exc.exit_code)


def _refuse_overwrite(folder: Path, names: list[str]) -> None:
    existing = [name for name in names if (folder / name).exists()]
    if existing:
        found = ", ".join(str(folder / name) for name in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise ModuleExists(f"{found} {verb}: engine init never overwrites a module's files")


def _identity(
    folder: Path, api: Api, module_id: str | None, name: str | None, hooks: bool
) -> Identity:
    """The id and name given, else asked on a terminal, else derived."""
    ask = sys.stdin.isatty()
    default_id = scaffold.module_id(folder)
    if module_id is None:
        module_id = click.prompt("Module id", default=default_id) if ask else default_id
    default_name = api.title if api.title and api.title != "Example API" else module_id.title()
    if name is None:
        name = click.prompt("Module name", default=default_name) if ask else default_name
    return Identity(module_id, name, scaffold.schema_line(folder), hooks)


def _origin(api: Api, identity: Identity, source: str) -> tuple[str, ...]:
    return (
        f"{identity.name}: drafted by `engine init --from-openapi` from {source}",
        f"({api.title}, {'Swagger' if api.version < '3' else 'OpenAPI'} {api.version}). "
        "Every key is described in docs/language.md;",
        "`guess:` comments mark what was guessed, `TODO:` lines what is left to you.",
    )


def _report(folder: Path, written: dict[str, str]) -> int:
    """What was written, what `engine validate` says of it, how many TODO lines are left."""
    problems = validate([folder])
    for problem in problems:
        click.echo(str(problem), err=True)
    errors = sum(not problem.warning for problem in problems)
    todos = written["module.yaml"].count("# TODO:")
    click.echo(f"Wrote {', '.join(str(folder / name) for name in written)}")
    click.echo(
        f"engine validate: {errors} error(s), {len(problems) - errors} warning(s); "
        f"{todos} TODO line(s) left in module.yaml"
    )
    click.echo(f"Next: engine validate {folder}, then engine serve {folder}")
    return 1 if errors else 0

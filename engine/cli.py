"""The ``engine`` command: validate module definitions, print the language schema, serve a
module, look into stored backups. Storage and HTTP machinery are imported only by the commands
that need them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.authoring.commands import init
from engine.errors import EngineError
from engine.runner.commandline import run
from engine.workbench.commands import dev


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Declarative SaaS backup modules: one YAML file per module, the whole module API."""


main.add_command(init)
main.add_command(run)
main.add_command(dev)


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


# --------------------------------------------------------------------------- engine backups

EXIT_CODES = """\b
Exit codes:
  0  done (verify: the backup is intact; orphans are reported, not damage)
  1  damaged: each damaged object named, with what is wrong
  2  usage: a bad argument, option or ENGINE_* setting
  3  incomplete or not a backup: no manifest.json, or one that cannot be read
  4  storage not reachable, or the URL not allowed (ENGINE_STORAGE_ALLOW)"""


@main.group(epilog=EXIT_CODES)
def backups() -> None:
    """Look into stored backups: list, show, verify, size, read and export them.

    URL is a storage URL the server would accept (inside ENGINE_STORAGE_ALLOW; default: the
    local backup folder), opened with ENGINE_STORAGE_OPTIONS and any --option key=value.
    """


_option = click.option(
    "--option",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A storage option (repeatable; a dotted key nests: client_kwargs.endpoint_url=...).",
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


@backups.command("ls", epilog=EXIT_CODES)
@click.argument("url")
@_option
@_as_json
def backups_ls(url: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """List the backups under URL.

    URL is a prefix, an allowed area itself (ENGINE_STORAGE_ALLOW), or one backup.
    """
    from engine.backups import commands

    sys.exit(commands.ls(url, pairs, as_json))


@backups.command("show", epilog=EXIT_CODES)
@click.argument("url")
@_option
@_as_json
def backups_show(url: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Show a backup's resources as a tree.

    Each resource of the backup at URL with its objects, records and sizes.
    """
    from engine.backups import commands

    sys.exit(commands.show(url, pairs, as_json))


@backups.command("verify", epilog=EXIT_CODES)
@click.argument("url")
@click.option(
    "--read-data",
    is_flag=True,
    help="Also read every byte: checksums, decompression, records parsed and counted.",
)
@_option
@_as_json
def backups_verify(url: str, read_data: bool, pairs: tuple[str, ...], as_json: bool) -> None:
    """Check a backup: structure, or every byte.

    The backup at URL: its manifest, every object's presence and size, orphans (reported, not
    damage); with --read-data every byte too. A progress bar shows on a terminal only.
    """
    from engine.backups import commands

    sys.exit(commands.verify(url, pairs, as_json, read_data))


@backups.command("du", epilog=EXIT_CODES)
@click.argument("url")
@_option
@_as_json
def backups_du(url: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Sizes per resource type and per root.

    Objects, records, stored and raw bytes and the compression ratio of the backup at URL.
    """
    from engine.backups import commands

    sys.exit(commands.du(url, pairs, as_json))


@backups.command("cat", epilog=EXIT_CODES)
@click.argument("url")
@click.argument("path")
@_option
def backups_cat(url: str, path: str, pairs: tuple[str, ...]) -> None:
    """Write one object, decompressed, to stdout.

    PATH as the manifest of the backup at URL lists it; its checksum is checked at its end.
    """
    from engine.backups import commands

    sys.exit(commands.cat(url, path, pairs, sys.stdout.buffer))


@backups.command("export", epilog=EXIT_CODES)
@click.argument("url")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@_option
@_as_json
def backups_export(url: str, folder: Path, pairs: tuple[str, ...], as_json: bool) -> None:
    """Copy a backup into FOLDER as plain files.

    The backup at URL, decompressed, into FOLDER (new or empty), its manifest.json beside the
    files: readable with no engine.
    """
    from engine.backups import commands

    sys.exit(commands.export(url, folder, pairs, as_json))

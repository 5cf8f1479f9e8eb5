"""The ``engine run`` click group: the module API in process, one subcommand per part of it.
Light to import (click only): each command imports the engine when it runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine.runner.exits import EXIT_CODES

ITEMS_HELP = (
    "ITEM is bucket=b000 (the type's ctx keys; key=v,key2=w for a nested type; TYPE:key=v "
    "where types share keys), a name path (b000/c001) or a ctx as JSON."
)


@click.group(epilog=EXIT_CODES)
@click.argument("module", type=click.Path(path_type=Path, exists=True))
@click.pass_context
def run(context: click.Context, module: Path) -> None:
    """Run MODULE's API in process: no server, no port, the same code as engine serve.

    Auth settings come from --settings FILE (JSON or YAML, by the form's payload keys), from
    ENGINE_SETTINGS_<KEY> variables, or, with neither, are asked on a terminal from the
    module's auth form. Storage URLs must be inside ENGINE_STORAGE_ALLOW (default: ./backups
    and memory://), as for engine serve.
    """
    context.obj = module


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    settings = click.option(
        "--settings",
        "settings_file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="Auth settings: a JSON or YAML object of the form's payload keys.",
    )
    as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
    return click.pass_obj(settings(as_json(command)))


_option = click.option(
    "--option",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A backup or restore option of the module's form (repeatable; JSON values count).",
)


def _go(
    module: Path, settings_file: Path | None, as_json: bool, make: Callable[[Any, Any], Any]
) -> None:
    """Run the command make(engine.runner.commands, its Run) builds; exit with its code."""
    from engine.runner import commands

    given = commands.Run(module, settings_file, as_json)
    sys.exit(commands.execute(given, make(commands, given)))


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    from engine.backups.access import parse_options
    from engine.errors import EngineError

    try:
        return parse_options(pairs)
    except EngineError as exc:  # names the key, never the value
        raise click.UsageError(exc.message) from None


@run.command(epilog=EXIT_CODES)
@_common
def check(module: Path, settings_file: Path | None, as_json: bool) -> None:
    """Validate the auth settings: the form's rules, then the module's connection check."""
    _go(module, settings_file, as_json, lambda c, r: c.check(r))


@run.command(epilog=EXIT_CODES)
@_common
def roots(module: Path, settings_file: Path | None, as_json: bool) -> None:
    """List the root resources (every page)."""
    _go(module, settings_file, as_json, lambda c, r: c.roots(r))


@run.command(epilog=EXIT_CODES)
@click.argument("item", metavar="CTX_OR_PATH")
@_common
def resources(module: Path, item: str, settings_file: Path | None, as_json: bool) -> None:
    """List the resources below one (every page).

    CTX_OR_PATH is an ITEM: bucket=b000, a name path (b000) or a ctx as JSON.
    """
    _go(module, settings_file, as_json, lambda c, r: c.resources(r, item))


@run.command(epilog=EXIT_CODES)
@click.option("--depth", type=click.IntRange(min=1), help="Levels to list (default: all).")
@_common
def tree(module: Path, depth: int | None, settings_file: Path | None, as_json: bool) -> None:
    """Draw the resource tree, listing every level (or --depth levels)."""
    _go(module, settings_file, as_json, lambda c, r: c.tree(r, depth))


@run.command(epilog=EXIT_CODES)
@click.argument("items", metavar="ITEM...", nargs=-1, required=True)
@click.option("--to", "url", required=True, help="Storage URL of the new backup (its own place).")
@_option
@_common
def backup(
    module: Path,
    *,
    items: tuple[str, ...],
    url: str,
    pairs: tuple[str, ...],
    settings_file: Path | None,
    as_json: bool,
) -> None:
    """Back ITEM... up to --to URL and follow the task to its end.

    Several items make one bulk task (the module must declare BULK_OPERATIONS).
    """
    options = _options(pairs)
    _go(module, settings_file, as_json, lambda c, r: c.backup(r, items, url, options))


@run.command(epilog=EXIT_CODES)
@click.argument("items", metavar="[ITEM...]", nargs=-1)
@click.option("--from", "url", required=True, help="Storage URL of the backup to restore.")
@click.option("--scenario", help="A restore scenario id (IN_PLACE, AS_NEW, ...).")
@click.option("--dry-run", is_flag=True, help="Write nothing: list the writes it would make.")
@_option
@_common
def restore(
    module: Path,
    *,
    items: tuple[str, ...],
    url: str,
    scenario: str | None,
    dry_run: bool,
    pairs: tuple[str, ...],
    settings_file: Path | None,
    as_json: bool,
) -> None:
    """Restore items from --from URL (default: every item the backup was made of)."""

    def make(c: Any, r: Any) -> Any:
        return c.restore(r, c.Restore(url, items, scenario, _options(pairs), dry_run))

    _go(module, settings_file, as_json, make)


@run.command(epilog=EXIT_CODES)
@click.argument("items", metavar="[ITEM...]", nargs=-1)
@click.option("--from", "url", required=True, help="Storage URL of the backup to export.")
@click.option("--to", "destination", required=True, help="Storage URL to export into.")
@_common
def export(
    module: Path,
    *,
    items: tuple[str, ...],
    url: str,
    destination: str,
    settings_file: Path | None,
    as_json: bool,
) -> None:
    """Export a backup's items (default: all) from --from into --to (needs EXPORT)."""
    _go(module, settings_file, as_json, lambda c, r: c.export(r, url, items, destination))


@run.command(epilog=EXIT_CODES)
@click.argument("url")
@click.argument("task_uuid")
@click.option(
    "--kind",
    "role",
    type=click.Choice(["backup", "restore", "export"]),
    default="backup",
    show_default=True,
    help="The kind of the task.",
)
@click.option("--once", is_flag=True, help="One status call; do not follow the task.")
@_common
def status(
    module: Path,
    *,
    url: str,
    task_uuid: str,
    role: str,
    once: bool,
    settings_file: Path | None,
    as_json: bool,
) -> None:
    """Follow task TASK_UUID at storage URL to its end (resuming it if it was interrupted)."""
    _go(module, settings_file, as_json, lambda c, r: c.status(r, url, task_uuid, role, once))


@run.command(epilog=EXIT_CODES)
@click.argument("url")
@click.option("--read-data", is_flag=True, help="Also read every byte (checksums, records).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def verify(url: str, read_data: bool, as_json: bool) -> None:
    """Check the backup at URL: engine backups verify (its exit codes: 0, 1, 3, 4)."""
    from engine.backups import commands

    sys.exit(commands.verify(url, (), as_json, read_data))

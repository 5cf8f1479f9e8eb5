"""The work of each ``engine backups`` command: open the storage as the server would, do the
command, print its answer for people (or as JSON), and answer the exit code: 0, or the code
of the error that stopped it (each error knows its own: 1 damaged, 2 usage, 3 incomplete or
not a backup, 4 storage not reachable or not allowed). No message shows a storage option's
value."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import click

from engine.backups import access, catalog, extraction, layout, progress, text, verification
from engine.errors import EngineError
from engine.redaction import guarding, scrub
from engine.settings import Settings
from engine.storage import Storage
from engine.tasks import manifest

Work = Callable[[Storage], Awaitable[int]]


def run(url: str, pairs: Sequence[str], as_json: bool, work: Work, *, area: bool = False) -> int:
    """work(the storage at url) to its exit code; an engine error printed (on standard error,
    and as JSON on standard output with as_json), its exit code answered."""
    try:
        settings = Settings.from_env()
        options = access.parse_options(pairs)
    except EngineError as exc:  # neither message shows a value
        return _failed(exc, as_json)
    with guarding(options, settings.storage_options or {}):
        try:
            return asyncio.run(_opened(url, options, settings, work, area))
        except EngineError as exc:
            return _failed(exc, as_json)


async def _opened(
    url: str, options: dict[str, Any], settings: Settings, work: Work, area: bool
) -> int:
    async with access.open_url(url, options, settings, area_root=area) as storage:
        return await work(storage)


def _failed(exc: EngineError, as_json: bool) -> int:
    message = scrub(exc.message)
    click.echo(f"Error: {message}", err=True)
    if as_json:
        _print({"error": {"code": str(exc.code), "message": message, "exitCode": exc.exit_code}})
    return exc.exit_code


def _print(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _lines(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(line)


# --------------------------------------------------------------------------- the commands


def ls(url: str, pairs: Sequence[str], as_json: bool) -> int:
    async def work(storage: Storage) -> int:
        found = await catalog.catalog(storage)
        if as_json:
            _print({"url": storage.url, "backups": [one.to_json() for one in found]})
        else:
            _lines(text.listing(found, storage.url))
        return 0

    return run(url, pairs, as_json, work, area=True)


def show(url: str, pairs: Sequence[str], as_json: bool) -> int:
    async def work(storage: Storage) -> int:
        found = await manifest.read(storage, None)
        roots = layout.resource_tree(found.entries, found.resources)
        if as_json:
            document = {key: value for key, value in found.raw.items() if key != "objects"}
            totals = layout.totals_of(found.entries).to_json()
            _print(document | {"url": storage.url, "totals": totals} | _tree(roots))
        else:
            _lines(text.tree(found, roots, storage.url))
        return 0

    return run(url, pairs, as_json, work)


def _tree(roots: Sequence[layout.Resource]) -> dict[str, Any]:
    return {"resources": [root.to_json() for root in roots]}


def du(url: str, pairs: Sequence[str], as_json: bool) -> int:
    async def work(storage: Storage) -> int:
        found = await manifest.read(storage, None)
        used = layout.usage(found.entries, found.resources)
        if as_json:
            _print({"url": storage.url, "taskUuid": found.task_uuid} | used.to_json())
        else:
            _lines(text.sizes(found, used, storage.url))
        return 0

    return run(url, pairs, as_json, work)


def verify(url: str, pairs: Sequence[str], as_json: bool, read_data: bool) -> int:
    async def work(storage: Storage) -> int:
        meter = progress.meter(sys.stderr, "verifying")
        report = await verification.verify(storage, read_data=read_data, meter=meter)
        if as_json:
            _print(report.to_json())
        else:
            _lines(text.verdict(report))
        return report.exit_code

    return run(url, pairs, as_json, work)


def cat(url: str, path: str, pairs: Sequence[str], out: BinaryIO) -> int:
    async def work(storage: Storage) -> int:
        await extraction.cat(storage, path, out)
        return 0

    return run(url, pairs, False, work)


def export(url: str, folder: Path, pairs: Sequence[str], as_json: bool) -> int:
    async def work(storage: Storage) -> int:
        async with extraction.open_folder(folder) as destination:
            done = await extraction.export(storage, destination)
        if as_json:
            _print(done.to_json())
        else:
            counts = f"{text.plural(done.objects, 'object')}, {text.plural(done.records, 'record')}"
            click.echo(f"exported {counts} ({text.size(done.bytes)}) to {done.url}")
        return 0

    return run(url, pairs, as_json, work)

"""The kinds of task, one table: what each checks in its request, whether it calls the SaaS or
writes a destination, and its work: in the background under a record (backup, restore, export,
after a preflight on the storage), or at once within the call, with no record (cleanup).
Adding a kind is adding a row here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import BackupExists, ObjectNotFound
from engine.language.definition import Definition
from engine.storage import MANIFEST, Storage
from engine.tasks import backup, export, manifest, restore
from engine.tasks.job import Job
from engine.tasks.requests import Requests

Check = Callable[[Requests, Mapping[str, Any], bool], dict[str, Any]]


@dataclass(frozen=True)
class Recorded:
    """Work done in the background under the task's record, once the preflight holds."""

    preflight: Callable[[Storage, Definition], Awaitable[None]]
    work: Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class AtOnce:
    """Work done within the start (or status) call itself; the task keeps no record."""

    action: Callable[[Storage], Awaitable[None]]


@dataclass(frozen=True)
class Kind:
    """One kind of task."""

    name: str
    check: Check  # the request, checked: what the record keeps
    run: Recorded | AtOnce
    saas: bool = False  # calls the SaaS: its connection is checked before any storage I/O
    destination: bool = False  # writes to the request's destination storage as well


async def no_backup_there(storage: Storage, definition: Definition) -> None:
    """A new backup never lands on a complete one."""
    if await storage.exists(MANIFEST):
        raise BackupExists(f"{storage.url} already holds a complete backup (its {MANIFEST})")


async def complete_backup(storage: Storage, definition: Definition) -> None:
    """A restore or export reads a complete backup of this module."""
    await manifest.read(storage, definition.id, definition.types)


async def run_restore(job: Job) -> None:
    """A restore, in the scenario its request names (none: the module's own restore)."""
    name = job.request.get("scenario")
    scenario = next((s for s in job.definition.scenarios if s.id == name), None)
    await restore.run(job, scenario)


async def remove(storage: Storage) -> None:
    """Remove the whole backup (nothing there is no error: a cleanup may run twice)."""
    try:
        await storage.remove_tree()
    except ObjectNotFound:
        return


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("backup", Requests.backup, Recorded(no_backup_there, backup.run), saas=True),
        Kind("restore", Requests.restore, Recorded(complete_backup, run_restore), saas=True),
        Kind("export", Requests.export, Recorded(complete_backup, export.run), destination=True),
        Kind("cleanup", Requests.cleanup, AtOnce(remove)),
    )
}

"""The backups under a prefix (``engine backups ls``): every folder holding a manifest (a
complete backup) or a backup task's record (one under way, failed, or whose manifest is
gone), each summed up from its manifest, else from its record. A backup's own folders are
not searched for more backups."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.backups.layout import Totals, totals_of
from engine.concurrently import gather
from engine.errors import BackupDamaged, IncompleteBackup, ObjectNotFound, StorageError
from engine.storage import ENGINE_DIR, MANIFEST, Storage
from engine.tasks import manifest
from engine.tasks.journal import check_record
from engine.tasks.manifest import Entry

_RECORD = re.compile(rf"(?:(.+)/)?{re.escape(ENGINE_DIR)}/tasks/([^/]+)\.json")
_MANIFEST = re.compile(rf"(?:(.+)/)?{re.escape(MANIFEST)}")


@dataclass(frozen=True)
class Listed:
    """One backup found under the prefix, as its manifest (or, lacking one, its task's
    record) sums it up. state: complete, incomplete (no manifest) or unreadable."""

    path: str  # its folder below the listed URL ("" for the URL itself)
    url: str
    state: str
    task_uuid: str | None = None
    module: Mapping[str, Any] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    items: int = 0
    totals: Totals = field(default_factory=Totals)
    task_status: str | None = None  # its record's: PENDING, RUNNING, DONE, FAILED
    problem: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    @property
    def state_text(self) -> str:
        """``complete``, ``incomplete (RUNNING)``, ``unreadable``."""
        status = f" ({self.task_status})" if self.task_status and not self.complete else ""
        return f"{self.state}{status}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "url": self.url,
            "complete": self.complete,
            "state": self.state,
            "taskStatus": self.task_status,
            "taskUuid": self.task_uuid,
            "module": dict(self.module),
            "startedAt": self.started,
            "finishedAt": self.finished,
            "items": self.items,
            **self.totals.to_json(),
            "problem": self.problem,
        }


async def catalog(storage: Storage) -> list[Listed]:
    """Every backup under storage's root (the root itself included), by path."""
    paths = await storage.sizes()
    found = await gather(
        _summary(storage, root, uuids, has_manifest)
        for root, (uuids, has_manifest) in _roots(paths).items()
    )
    return sorted((one for one in found if one is not None), key=lambda one: one.path)


def _roots(paths: Sequence[str] | Mapping[str, int]) -> dict[str, tuple[list[str], bool]]:
    """Each backup's folder: the task uuids of the records there, and whether it holds a
    manifest; folders inside another backup's are left out."""
    roots: dict[str, tuple[list[str], bool]] = {}
    for path in paths:
        record = _RECORD.fullmatch(path)
        if record is not None:
            roots.setdefault(record.group(1) or "", ([], False))[0].append(record.group(2))
        elif (found := _MANIFEST.fullmatch(path)) is not None and ENGINE_DIR not in path:
            root = found.group(1) or ""
            roots[root] = (roots.get(root, ([], False))[0], True)
    outer: dict[str, tuple[list[str], bool]] = {}
    for root in sorted(roots, key=lambda name: (name.count("/"), name)):
        parts = root.split("/")
        ancestors = {""} | {"/".join(parts[:size]) for size in range(1, len(parts))}
        if root == "" or not ancestors & outer.keys():
            outer[root] = roots[root]
    return outer


async def _summary(
    storage: Storage, root: str, uuids: list[str], has_manifest: bool
) -> Listed | None:
    backup = storage.below(root) if root else storage
    if has_manifest:
        try:
            found = await manifest.read(backup, None)
        except (IncompleteBackup, BackupDamaged) as exc:
            return Listed(root, backup.url, "unreadable", problem=exc.message)
        raw = found.raw
        return Listed(
            root,
            backup.url,
            "complete",
            found.task_uuid,
            found.module,
            raw.get("startedAt"),
            raw.get("finishedAt"),
            len(found.items),
            totals_of(found.entries),
            task_status="DONE",
        )
    return await _from_record(backup, root, uuids)


async def _from_record(backup: Storage, root: str, uuids: list[str]) -> Listed | None:
    """A folder without a manifest, from its latest backup task's record; None when it holds
    no backup task's record (another task's only)."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for uuid in uuids:
        try:
            records.append(check_record(await backup.read_json(_record_path(uuid)), uuid))
        except ObjectNotFound:  # removed since the listing
            continue
        except StorageError as exc:
            if "JSON" not in exc.message and "malformed" not in exc.message:
                raise  # storage failing, not a bad record
            problems.append(exc.message)
    backups = [record for record in records if record["kind"] == "backup"]
    if not backups:
        return Listed(root, backup.url, "unreadable", problem=problems[0]) if problems else None
    record = max(backups, key=lambda one: str(one.get("createdAt")))
    return Listed(
        root,
        backup.url,
        "incomplete",
        record["taskUuid"],
        record.get("module") or {},
        record.get("createdAt"),
        record.get("finishedAt"),
        len(record["request"].get("items") or []),
        _unit_totals(record["units"]),
        task_status=record["status"],
    )


def _record_path(uuid: str) -> str:
    return f"{ENGINE_DIR}/tasks/{uuid}.json"


def _unit_totals(units: Mapping[str, Any]) -> Totals:
    """The objects a record lists as done (each a manifest entry)."""
    entries = []
    for unit in units.values():
        try:
            entries.append(Entry.from_json(unit))
        except (KeyError, TypeError):  # a record of an older engine, say: not counted
            continue
    return totals_of(entries)

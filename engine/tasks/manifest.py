"""The backup manifest (``manifest.json`` at a backup's root, written last): what it holds, how
it is built and how it is read back. Its presence is what makes a backup complete."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.concurrently import for_each
from engine.errors import (
    BackupDamaged,
    EngineError,
    IncompleteBackup,
    LeaseLost,
    ObjectNotFound,
    PathError,
    StorageError,
    entry_of,
)
from engine.language.definition import Definition
from engine.language.model import Identity, ResourceType
from engine.language.schema import Issue, issues
from engine.storage import CODECS, MANIFEST, ObjectInfo, Storage
from engine.storage.locations import check_path

FORMAT = 2  # bump on an incompatible change; restore reads every format up to this one
# 2: a ``resources`` table (each walked resource's type, name, values, parent and actual depth)
# and each object's ``resource``; a format-1 manifest has neither (restore derives the tree)

_STRING = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_OBJECT = {
    "type": "object",
    "required": ["path", "type", "step", "values", "format", "size", "sha256", "rawSize"],
    "properties": {
        "path": _STRING,
        "type": _STRING,
        "step": _STRING,
        "values": {"type": "object"},
        "format": {"enum": ["json", "jsonl", "raw"]},
        "compression": {"enum": list(CODECS)},
        "size": _COUNT,
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "rawSize": _COUNT,
        "records": _COUNT,
        "meta": {"type": "object"},
        "resource": {"type": "integer", "minimum": 1},
    },
}
_ROW = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "type", "name", "values", "parent", "depth"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": _STRING,
        "name": _STRING,
        "values": {"type": "object"},
        "parent": {"type": ["integer", "null"], "minimum": 1},
        "depth": _COUNT,
        "incomplete": {"type": "array", "items": {"type": "object"}},
    },
}
SHAPE = {
    "type": "object",
    "required": ["format", "module", "taskUuid", "objects"],
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "module": {"type": "object", "required": ["id"], "properties": {"id": _STRING}},
        "taskUuid": _STRING,
        "objects": {"type": "array", "items": _OBJECT},
        "resources": {"type": "array", "items": _ROW},
        "errors": {"type": "array"},
    },
}


@dataclass(frozen=True)
class Entry:
    """One stored object of a backup: where it is, which resource and step wrote it, and its
    size and checksum."""

    info: ObjectInfo
    type: str
    step: str
    values: Mapping[str, Any]
    format: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    resource: int | None = None  # its row in the manifest's resources table (format 2)

    @property
    def path(self) -> str:
        """The object's path below the backup's root."""
        return self.info.path

    def to_json(self) -> dict[str, Any]:
        """The entry as the manifest (and a task record) stores it."""
        info = self.info
        entry = {
            "path": info.path,
            "type": self.type,
            "step": self.step,
            "values": dict(self.values),
            "format": self.format,
            "compression": info.compression,
            "size": info.size,
            "sha256": info.sha256,
            "rawSize": info.raw_size,
            "records": info.records,
        }
        entry |= {"meta": dict(self.meta)} if self.meta else {}
        return entry | ({"resource": self.resource} if self.resource is not None else {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        """An entry from its stored form (already checked against the manifest's shape)."""
        info = ObjectInfo(
            path=data["path"],
            size=data["size"],
            sha256=data["sha256"],
            raw_size=data["rawSize"],
            compression=data.get("compression"),
            records=data.get("records", 0),
        )
        return cls(
            info,
            data["type"],
            data["step"],
            data["values"],
            data["format"],
            data.get("meta", {}),
            data.get("resource"),
        )


@dataclass(frozen=True)
class Manifest:
    """A complete backup as its manifest describes it."""

    task_uuid: str
    module: Mapping[str, Any]
    items: Sequence[Mapping[str, Any]]
    entries: Sequence[Entry]
    raw: Mapping[str, Any]

    @property
    def resources(self) -> Sequence[Mapping[str, Any]]:
        """The resources table (format 2; empty for format 1)."""
        rows: Sequence[Mapping[str, Any]] = self.raw.get("resources", [])
        return rows


def build(
    *,
    task_uuid: str,
    module: Identity,
    engine_version: str,
    request: Mapping[str, Any],
    entries: Sequence[Entry],
    errors: Sequence[Mapping[str, Any]],
    started: str,
    finished: str,
    resources: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The manifest of a finished backup (request: the task's request, secrets removed)."""
    return {
        "format": FORMAT,
        "engineVersion": engine_version,
        "module": {"id": module.id, "version": module.version},
        "taskUuid": task_uuid,
        "items": list(request.get("items", [])),
        "options": dict(request.get("options") or {}),
        "excludes": list(request.get("excludes") or []),
        "startedAt": started,
        "finishedAt": finished,
        "objects": [entry.to_json() for entry in entries],
        "resources": list(resources),
        "errors": list(errors),
    }


def _malformed(data: Any, issue: Issue) -> IncompleteBackup | BackupDamaged:
    """A problem of the manifest as a whole makes the backup incomplete; one of an object's
    entry makes it damaged, naming that object."""
    where = f"at '{issue.pointer or '/'}': {issue.message}"
    parts = issue.pointer.split("/")
    if len(parts) < 3 or parts[1] != "objects":
        return IncompleteBackup(f"{MANIFEST} is malformed {where}")
    entry = data["objects"][int(parts[2])]
    path = entry.get("path") if isinstance(entry, Mapping) else None
    named = f"object {parts[2]} ({path})" if isinstance(path, str) else f"object {parts[2]}"
    return BackupDamaged(f"{named} of {MANIFEST} is malformed {where}", url="", path=path)


def _check_entry(
    index: int, data: Mapping[str, Any], types: Collection[str] | None, rows: Collection[int]
) -> None:
    """BackupDamaged when an entry names a type the module lacks, a resource the manifest's
    table lacks, or a path it could not write."""
    path = data["path"]
    if types is not None and data["type"] not in types:
        message = f"object {index} ({path}) of {MANIFEST} has type '{data['type']}'"
        raise BackupDamaged(f"{message}, which this module does not have", url="", path=path)
    number = data.get("resource")
    if number is not None and number not in rows:
        message = f"object {index} ({path}) of {MANIFEST} names resource {number}"
        raise BackupDamaged(f"{message}, which its resources table lacks", url="", path=path)
    try:
        check_path(path)
    except PathError as exc:
        message = f"object {index} of {MANIFEST} has an unsafe path: {exc.message}"
        raise BackupDamaged(message, url="", path=None) from exc


def parse(data: Any, module_id: str | None, types: Collection[str] | None = None) -> Manifest:
    """A manifest read from storage: IncompleteBackup naming what is wrong with it as a whole
    (or that it is another module's than module_id, when given), BackupDamaged naming a
    malformed object entry (or one of a type not in ``types``)."""
    # problems of the whole manifest first: they make the backup incomplete, not damaged
    found = sorted(
        issues(SHAPE, data),
        key=lambda issue: (issue.pointer.startswith("/objects/"), issue.pointer),
    )
    if found:
        raise _malformed(data, found[0])
    if data["format"] > FORMAT:
        raise IncompleteBackup(
            f"{MANIFEST} has format {data['format']}, newer than this engine reads ({FORMAT})"
        )
    if module_id is not None and data["module"]["id"] != module_id:
        raise IncompleteBackup(
            f"{MANIFEST} belongs to module '{data['module']['id']}', not '{module_id}'"
        )
    rows = {row["id"] for row in data.get("resources", [])}
    for index, entry in enumerate(data["objects"]):
        _check_entry(index, entry, types, rows)
    entries = [Entry.from_json(entry) for entry in data["objects"]]
    return Manifest(data["taskUuid"], data["module"], data.get("items", []), entries, data)


async def read(
    storage: Storage, module_id: str | None, types: Collection[str] | None = None
) -> Manifest:
    """The manifest of the backup at ``storage`` (of module_id's, or of any module with None);
    IncompleteBackup when there is none or it cannot be read as one, BackupDamaged for a bad
    entry, StorageError when storage fails."""
    try:
        data = await storage.read_json(MANIFEST)
    except ObjectNotFound as exc:
        raise IncompleteBackup(
            f"no {MANIFEST} at {storage.url}: the backup is incomplete (or there is none)"
        ) from exc
    except StorageError as exc:
        if "JSON" not in exc.message:
            raise
        raise IncompleteBackup(f"{MANIFEST} at {storage.url} is not valid JSON") from exc
    return parse(data, module_id, types)


@contextmanager
def listed(storage: Storage, path: str) -> Iterator[None]:
    """Reading an object the manifest lists: its absence is a damaged backup, naming it."""
    try:
        yield
    except ObjectNotFound as exc:
        message = f"{path} is listed in {MANIFEST} but missing under {storage.url}"
        raise BackupDamaged(
            f"the backup is damaged: {message}", url=storage.url, path=path
        ) from exc


async def verify(storage: Storage, entries: Sequence[Entry], concurrency: int) -> None:
    """Checks every object's size and SHA-256 against its entry; ChecksumMismatch (naming the
    object) at the first that differs, BackupDamaged at one missing, before anything is
    written anywhere."""

    async def one(info: ObjectInfo) -> None:
        with listed(storage, info.path):
            await storage.verify(info)

    await for_each(one, [entry.info for entry in entries], limit=concurrency)


Key = tuple[str, str]  # a resource's type and its identifying ctx values, as JSON


@dataclass(frozen=True)
class Named:
    """A resource as error entries name it: ``resource`` its name (the mapped one where known,
    else its ctx values joined with '/'), ``resourceType`` its type."""

    type: str
    name: str

    @classmethod
    def of(cls, kind: ResourceType, values: Mapping[str, Any], name: Any = None) -> Named:
        """The resource of ``kind`` at ``values``, under ``name`` when it is known."""
        if not isinstance(name, str) or not name:
            name = "/".join(str(value) for value in values.values())
        return cls(kind.name, name)

    def entry(self, error: EngineError) -> dict[str, Any]:
        """The non-fatal Error entry of ``error`` about this resource."""
        return entry_of(error) | {"resource": self.name, "resourceType": self.type}

    def __str__(self) -> str:
        return f"{self.type} {self.name}"


def resource_key(kind: ResourceType, values: Mapping[str, Any]) -> Key:
    """Which resource of type kind the ctx values name (its own ctx keys and its ancestors')."""
    own = {key: values.get(key) for key in kind.ctx_keys}
    return kind.name, json.dumps(own, sort_keys=True)


def by_resource(definition: Definition, entries: Sequence[Entry]) -> dict[Key, list[Entry]]:
    """The objects grouped by the resource they belong to, in their order."""
    resources: dict[Key, list[Entry]] = {}
    for entry in entries:
        key = resource_key(definition.types[entry.type], entry.values)
        resources.setdefault(key, []).append(entry)
    return resources


async def write(
    storage: Storage, document: Mapping[str, Any], fence: Callable[[], Awaitable[None]]
) -> None:
    """Writes a backup's manifest once: after fence() confirms that the task is still this
    runner's, and only where there is none, so a runner taken over meanwhile never writes a
    second one (LeaseLost). One of this task's, written by the runner before (which stopped
    right after), is kept: it lists the same units."""
    await fence()
    try:
        await storage.write_if(MANIFEST, document, None, indent=2)
    except LeaseLost:
        there = await storage.read_json(MANIFEST)
        if not isinstance(there, dict) or there.get("taskUuid") != document["taskUuid"]:
            raise

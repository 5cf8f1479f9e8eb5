"""Helpers for the unit tests of the task modules (journal, manifest, restore, listing): a small
module definition, manifest entries, storage roots on memory:// and local folders, and objects
written the way a backup writes them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from fsspec.implementations.memory import MemoryFileSystem

from engine.language.definition import Definition
from engine.language.loader import build
from engine.language.schema import issues, module_schema
from engine.storage import ObjectInfo, Storage, open_storage
from engine.tasks.backup import COMPRESSION
from engine.tasks.manifest import Entry

MEMORY_AREA = "memory://unit-tests"
CLOCK_START = 1_700_000_000.0


def _listed(ctx_key: str, **spec: Any) -> dict[str, Any]:
    """A resource type listed from the paged server's /all, its ctx keyed by ``ctx_key``."""
    listing = {"request": {"path": "/all"}, "records": "items"}
    return {
        "list": listing,
        "resource": {"name": "{{ item.id }}"},
        "ctx": {ctx_key: "{{ item.id }}"},
    } | spec


# buckets hold collections and groups, as Kinto's do
SHELF: dict[str, Any] = {
    "module": {"id": "shelf", "name": "Shelf", "version": "1.2.3"},
    "capabilities": {"auth": [], "features": [], "storage": ["STORAGE_SERVICE"]},
    "connection": {"baseUrl": "{{ settings.url }}", "timeouts": {"connect": 2, "read": 2}},
    "resources": {
        "bucket": _listed("bucket"),
        "collection": _listed("collection", parent="bucket"),
        "group": _listed("group", parent="bucket"),
    },
}


def shelf() -> Definition:
    """The model of SHELF, which must itself be valid against the language schema."""
    assert issues(module_schema(), SHELF) == []
    return build(SHELF, Path())


def entry(
    kind: str,
    step: str,
    values: Mapping[str, Any],
    *,
    path: str | None = None,
    data_format: str = "jsonl",
    info: ObjectInfo | None = None,
) -> Entry:
    """A manifest entry of a resource's object: described by info, or made up (path and a
    checksum derived from the resource)."""
    if info is None:
        path = path or "/".join([*map(str, values.values()), f"{step}.jsonl.zst"])
        digest = hashlib.sha256(path.encode()).hexdigest()
        info = ObjectInfo(path, len(path), digest, 2 * len(path), COMPRESSION, records=3)
    return Entry(info, kind, step, dict(values), data_format)


@contextmanager
def memory_storage() -> Iterator[Storage]:
    """A fresh backup root on memory://, removed afterwards (the memory store is per process)."""
    storage = open_storage(f"{MEMORY_AREA}/{uuid.uuid4().hex}", None, allow=[MEMORY_AREA])
    try:
        yield storage
    finally:
        with suppress(FileNotFoundError):
            MemoryFileSystem().rm(storage.root, recursive=True)


def local_storage(folder: Path) -> Storage:
    """A backup root in a local folder (``folder/backup``), allowed by ``folder``."""
    return open_storage(f"file://{folder}/backup", None, allow=[f"file://{folder}"])


async def write_object(
    storage: Storage, relative: str, data: bytes, *, compress: str | None = COMPRESSION
) -> ObjectInfo:
    """Store data at relative, compressed as backups compress their objects."""
    async with storage.writer(relative, compress=compress) as writer:
        await writer.write(data)
    return writer.info


class FakeClock:
    """A Clock that moves only when advanced or slept on; each sleep first awaits on_sleep."""

    def __init__(self, start: float = CLOCK_START) -> None:
        self.time = start
        self.slept: list[float] = []
        self.on_sleep: Callable[[], Awaitable[None]] | None = None

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += seconds
        if self.on_sleep is not None:
            await self.on_sleep()

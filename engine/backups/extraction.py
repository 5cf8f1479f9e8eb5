"""A backup read out for use with no engine: one object decompressed to a stream (``engine
backups cat``), or the whole backup as plain files with its manifest beside them (``engine
backups export``: the export task's copy, to a local folder). Every byte is checked against
the manifest on the way: a damaged object fails the command (ChecksumMismatch)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from engine.concurrently import for_each
from engine.errors import RequestError
from engine.storage import MANIFEST, Storage, open_storage
from engine.tasks import manifest
from engine.tasks.export import copy_manifest, copy_object
from engine.tasks.manifest import Entry

WRITERS = 4  # objects copied at once


def entry_at(entries: Sequence[Entry], path: str) -> Entry:
    """The object the manifest lists at path; RequestError (a usage error) naming the
    closest paths it does list."""
    for entry in entries:
        if entry.path == path:
            return entry
    close = difflib.get_close_matches(path, [entry.path for entry in entries], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listed = "`engine backups show` lists them"
    raise RequestError(f"{path} is not an object of this backup ({listed}){hint}")


async def cat(storage: Storage, path: str, out: BinaryIO) -> None:
    """Writes the object at path, decompressed, to out, a chunk at a time; ChecksumMismatch
    at the end when its stored bytes differ from the manifest (out then holds them)."""
    found = await manifest.read(storage, None)
    entry = entry_at(found.entries, path)
    info = entry.info
    with manifest.listed(storage, path):
        async with storage.reader(path, compression=info.compression, expect=info) as reader:
            async for chunk in reader:
                out.write(chunk)
    out.flush()


@dataclass(frozen=True)
class Exported:
    """A finished export: where, and what its copies hold."""

    url: str
    objects: int
    records: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "objects": self.objects,
            "records": self.records,
            "bytes": self.bytes,
        }


def open_folder(folder: Path) -> Storage:
    """A local folder to export into: absent or empty (RequestError otherwise), and any
    folder of the caller's (the allow-list is for the server's requests)."""
    folder = folder.expanduser().resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RequestError(f"{folder} is not an empty folder: export writes into a new one")
    return open_storage(f"file://{folder}", None, allow=[f"file://{folder.parent}"])


async def export(storage: Storage, destination: Storage) -> Exported:
    """Copies every object of the backup at storage to destination decompressed, then its
    manifest (listing the copies), as the export task does."""
    found = await manifest.read(storage, None)
    copies: dict[str, Entry] = {}

    async def one(entry: Entry) -> None:
        copies[entry.path] = await copy_object(storage, destination, entry)

    await for_each(one, found.entries, limit=WRITERS)
    made = [copies[entry.path] for entry in found.entries]
    document = copy_manifest(found, [entry.to_json() for entry in made], storage.url)
    await destination.write_json(MANIFEST, document, engine=True, indent=2)
    records = sum(entry.info.records for entry in made)
    stored = sum(entry.info.size for entry in made)
    return Exported(destination.url, len(made), records, stored)

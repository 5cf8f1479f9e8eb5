"""What a backup's stored object holds, read back: its records (JSON Lines one by one, a JSON
array item by item, any other JSON value or a raw text object as one record), as restore writes
them back and `engine backups verify` counts them. (A raw object's bytes, as restore uploads
them, are streamed by engine.tasks.uploads instead.)"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

from engine.errors import BackupDamaged, NotText
from engine.storage import Storage
from engine.tasks import manifest
from engine.tasks.manifest import Entry


async def records_of(storage: Storage, entry: Entry) -> AsyncGenerator[Any, None]:
    """The records of entry's object (BackupDamaged when it is missing)."""
    with manifest.listed(storage, entry.path):
        async with storage.reader(entry.path, compression=entry.info.compression) as reader:
            async for record in parsed(entry, reader, storage.url):
                yield record


async def parsed(entry: Entry, chunks: AsyncIterable[bytes], url: str) -> AsyncGenerator[Any, None]:
    """The records in entry's decompressed bytes, arriving in chunks (url: where the backup
    is, for errors); BackupDamaged naming the object when one is not JSON, NotText when a raw
    one is not UTF-8 text (the object is intact: it needs an upload)."""
    if entry.format == "jsonl":
        rest = b""
        async for chunk in chunks:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line.strip():
                    yield _parsed(line, entry, url)
        if rest.strip():
            yield _parsed(rest, entry, url)
        return
    whole = b"".join([chunk async for chunk in chunks])
    if entry.format == "raw":
        try:
            yield whole.decode()
        except UnicodeDecodeError as exc:
            raise NotText(
                f"{entry.path} is not UTF-8 text: a restore step writes such an object with"
                " `upload`, not as a text record"
            ) from exc
        return
    data = _parsed(whole, entry, url)
    for record in data if isinstance(data, list) else [data]:
        yield record


def _parsed(line: bytes, entry: Entry, url: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise _damaged(entry, url, "holds a record that is not JSON") from exc


def _damaged(entry: Entry, url: str, why: str) -> BackupDamaged:
    return BackupDamaged(f"the backup is damaged: {entry.path} {why}", url=url, path=entry.path)

"""Checking a stored backup (``engine backups verify``): its structure (the manifest reads as
one, every object it lists is stored with its recorded size, and what is stored but not listed
is an orphan) and, with read_data, every byte: each object streamed, its stored bytes checked
against their SHA-256, decompressed, and its records parsed and counted against the manifest.
Each damaged object is named with what is wrong with it; orphans are reported, but they are
not damage (restore never reads them)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.concurrently import for_each
from engine.errors import BackupDamaged, ChecksumMismatch
from engine.storage import ENGINE_DIR, MANIFEST, Reader, Storage
from engine.tasks import contents, manifest
from engine.tasks.manifest import Entry, Manifest

READERS = 4  # objects read at once


class Meter(Protocol):
    """Where the progress of the data check goes (a progress bar on a terminal, or nowhere)."""

    def begin(self, objects: int, stored: int) -> None:
        """Before the first object: how many objects and stored bytes will be read."""

    def advance(self, stored: int, objects: int = 0) -> None:
        """More stored bytes (and objects) read."""

    def end(self) -> None:
        """After the last object (or a failure)."""


class Silent:
    """A meter that shows nothing."""

    def begin(self, objects: int, stored: int) -> None:
        pass

    def advance(self, stored: int, objects: int = 0) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class Problem:
    """What is wrong with one stored object."""

    path: str
    what: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.what}


@dataclass
class Report:
    """The verdict on one backup: its damaged objects and its orphans."""

    url: str
    manifest: Manifest
    read_data: bool
    damaged: list[Problem] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    read: int = 0  # stored bytes read (with read_data)

    @property
    def objects(self) -> int:
        return len(self.manifest.entries)

    @property
    def intact(self) -> bool:
        return not self.damaged

    @property
    def exit_code(self) -> int:
        return 0 if self.intact else BackupDamaged.exit_code

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "taskUuid": self.manifest.task_uuid,
            "module": dict(self.manifest.module),
            "readData": self.read_data,
            "intact": self.intact,
            "objects": self.objects,
            "stored": sum(entry.info.size for entry in self.manifest.entries),
            "read": self.read,
            "damaged": [problem.to_json() for problem in self.damaged],
            "orphans": self.orphans,
        }


async def verify(storage: Storage, *, read_data: bool, meter: Meter | None = None) -> Report:
    """The report on the backup at storage; IncompleteBackup when it has no manifest (or one
    that cannot be read as one), BackupDamaged for a malformed entry, StorageError when
    storage fails."""
    found = await manifest.read(storage, None)
    report = Report(storage.url, found, read_data)
    stored = await storage.sizes()
    listed = {entry.path for entry in found.entries}
    report.orphans = [path for path in stored if path not in listed and not _engine_own(path)]
    whole: list[Entry] = []
    for entry in found.entries:
        problem = _structure(entry, stored.get(entry.path))
        if problem is None:
            whole.append(entry)
        else:
            report.damaged.append(problem)
    if read_data:
        await _read_all(storage, whole, report, meter or Silent())
    report.damaged.sort(key=lambda problem: problem.path)
    return report


def _engine_own(path: str) -> bool:
    return path == MANIFEST or path.split("/", maxsplit=1)[0] == ENGINE_DIR


def _structure(entry: Entry, size: int | None) -> Problem | None:
    """What is wrong with an object's presence or size, if anything."""
    expected = entry.info.size
    if size is None:
        return Problem(entry.path, f"missing: listed in {MANIFEST} ({expected} bytes), not stored")
    if size != expected:
        cut = " (truncated)" if size < expected else ""
        return Problem(entry.path, f"stored {size} bytes, where {MANIFEST} says {expected}{cut}")
    return None


async def _read_all(
    storage: Storage, entries: Sequence[Entry], report: Report, meter: Meter
) -> None:
    meter.begin(len(entries), sum(entry.info.size for entry in entries))

    async def one(entry: Entry) -> None:
        problem, read = await _read(storage, entry, meter)
        report.read += read
        meter.advance(0, objects=1)
        if problem is not None:
            report.damaged.append(problem)

    try:
        await for_each(one, entries, limit=READERS)
    finally:
        meter.end()


@dataclass
class _Tally:
    """What streaming one object found: decompressed bytes and records."""

    raw: int = 0
    records: int = 0


async def _read(storage: Storage, entry: Entry, meter: Meter) -> tuple[Problem | None, int]:
    """What is wrong with an object's bytes, if anything, and how many stored bytes were read."""
    info, tally = entry.info, _Tally()
    reader = storage.reader(entry.path, compression=info.compression, expect=info)
    try:
        with manifest.listed(storage, entry.path):
            async with reader:
                await _stream(storage, entry, reader, tally, meter)
    except BackupDamaged as exc:
        return Problem(entry.path, _reason(exc, storage, entry)), reader.stored
    return _counts(entry, tally), reader.stored


async def _stream(
    storage: Storage, entry: Entry, reader: Reader, tally: _Tally, meter: Meter
) -> None:
    """Reads the object to its end through its records; a damaged record is first checked
    against the stored bytes' checksum (damaged bytes explain it)."""
    try:
        async with aclosing(_measured(reader, tally, meter)) as chunks:
            if entry.format == "raw":  # any bytes: downloads hold files, not only text
                async for _ in chunks:
                    pass
                return
            async with aclosing(contents.parsed(entry, chunks, storage.url)) as records:
                async for _ in records:
                    tally.records += 1
    except BackupDamaged as exc:
        if not isinstance(exc, ChecksumMismatch):
            await reader.check()
        raise


async def _measured(reader: Reader, tally: _Tally, meter: Meter) -> AsyncGenerator[bytes, None]:
    """The reader's chunks, counted, with the stored bytes they took shown on the meter."""
    seen = 0
    async for chunk in reader:
        tally.raw += len(chunk)
        meter.advance(reader.stored - seen)
        seen = reader.stored
        yield chunk
    meter.advance(reader.stored - seen)


def _reason(exc: BackupDamaged, storage: Storage, entry: Entry) -> str:
    """What an error says about the object, without repeating where it is."""
    kind = "checksum mismatch: " if isinstance(exc, ChecksumMismatch) else ""
    for place in (f"{entry.path} under {storage.url}: ", f"{entry.path} "):
        _, found, after = exc.message.partition(place)
        if found:
            return f"{kind}{after}"
    return f"{kind}{exc.message}"


def _counts(entry: Entry, tally: _Tally) -> Problem | None:
    """What differs between the object's decompressed bytes and records and its entry."""
    info = entry.info
    if tally.raw != info.raw_size:
        said = f"{MANIFEST} says {info.raw_size}"
        return Problem(entry.path, f"decompresses to {tally.raw} bytes, where {said}")
    if entry.format == "jsonl" and tally.records != info.records:
        said = f"{MANIFEST} says {info.records}"
        return Problem(entry.path, f"holds {tally.records} records, where {said}")
    return None

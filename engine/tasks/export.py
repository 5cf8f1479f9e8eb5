"""The export task (EXPORT): a portable copy of a complete backup at a destination URL: every
object decompressed to plain JSON, JSON Lines or raw files (``.zst`` dropped from the path), and
a manifest describing the copies. The engine's own ``.engine/`` is not copied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from engine.concurrently import for_each
from engine.storage import MANIFEST, Storage
from engine.tasks import manifest
from engine.tasks.job import Job
from engine.tasks.manifest import Entry, Manifest, by_resource

SUFFIX = ".zst"


async def copy_object(source: Storage, destination: Storage, entry: Entry) -> Entry:
    """entry's object copied to destination decompressed (``.zst`` dropped from its path), its
    stored bytes checked against the entry on the way (a damaged one leaves no copy); the
    copy's entry."""
    path = entry.path.removesuffix(SUFFIX) if entry.info.compression else entry.path
    compression = entry.info.compression
    with manifest.listed(source, entry.path):
        async with (
            source.reader(entry.path, compression=compression, expect=entry.info) as reader,
            destination.writer(path, compress=None) as writer,
        ):
            async for chunk in reader:
                await writer.write(chunk)
            writer.records = entry.info.records
    return replace(entry, info=writer.info)


def copy_manifest(found: Manifest, copies: Sequence[Mapping[str, Any]], url: str) -> dict[str, Any]:
    """The manifest of a backup's copy: the backup's own, listing the copies (url: the
    backup's, as ``exportOf``)."""
    return dict(found.raw) | {"objects": list(copies), "exportOf": url}


async def run(job: Job) -> None:
    """The export task: verify everything, copy each object, write the copy's manifest last."""
    destination = job.destination
    assert destination is not None, "an export names its destination"
    found = await manifest.read(job.storage, job.definition.id, job.definition.types)
    entries = list(found.entries)
    await manifest.verify(job.storage, entries, job.concurrency)
    await destination.sweep()  # a resumed export: what the killed run left half-written
    journal = job.journal
    resources = by_resource(job.definition, entries)
    journal.progress.update(done=0, total=len(resources))

    async def one(objects: list[Entry]) -> None:
        for entry in objects:
            if entry.path not in journal.units:
                made = await copy_object(job.storage, destination, entry)
                journal.progress["bytes"] += made.info.size
                await journal.unit(entry.path, made.to_json())
        journal.progress["done"] += 1

    await for_each(one, resources.values(), limit=job.concurrency)
    copies = [journal.units[entry.path] for entry in entries]
    document = copy_manifest(found, copies, job.storage.url)
    await journal.save()  # the lease still holds: a runner taken over stops here
    await destination.write_json(MANIFEST, document, engine=True, indent=2)

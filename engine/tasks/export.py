"""The export task (EXPORT): a portable copy of a complete backup at a destination URL: every
object decompressed to plain JSON, JSON Lines or raw files (``.zst`` dropped from the path), and
a manifest describing the copies. The engine's own ``.engine/`` is not copied."""

from __future__ import annotations

from engine.concurrently import for_each
from engine.storage import MANIFEST, Storage
from engine.tasks import manifest
from engine.tasks.job import Job
from engine.tasks.manifest import Entry, by_resource

SUFFIX = ".zst"


async def _copy(source: Storage, destination: Storage, entry: Entry) -> Entry:
    path = entry.path.removesuffix(SUFFIX) if entry.info.compression else entry.path
    async with (
        source.reader(entry.path, compression=entry.info.compression) as reader,
        destination.writer(path, compress=None) as writer,
    ):
        async for chunk in reader:
            await writer.write(chunk)
        writer.records = entry.info.records
    return Entry(writer.info, entry.type, entry.step, entry.values, entry.format, entry.meta)


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
                copy = await _copy(job.storage, destination, entry)
                journal.progress["bytes"] += copy.info.size
                await journal.unit(entry.path, copy.to_json())
        journal.progress["done"] += 1

    await for_each(one, resources.values(), limit=job.concurrency)
    copies = [journal.units[entry.path] for entry in entries]
    document = dict(found.raw) | {"objects": copies, "exportOf": job.storage.url}
    await journal.save()  # the lease still holds: a runner taken over stops here
    await destination.write_json(MANIFEST, document, engine=True, indent=2)

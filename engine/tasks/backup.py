"""The backup task: walks the resource tree below the requested resources, runs each type's
backup steps (one object, a paginated collection with optional per-item requests, downloads)
into storage, and writes the manifest last, only when every required object was written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from contextlib import aclosing
from functools import partial
from typing import Any, Protocol

from engine.clock import iso
from engine.concurrently import Spawn, for_each, for_each_arriving, gather, in_group
from engine.errors import (
    EngineError,
    Ignored,
    PathError,
    SaasAuthError,
    SaasError,
    StorageError,
)
from engine.language.model import (
    BackupStep,
    CollectionStep,
    DownloadStep,
    Each,
    Listing,
    ObjectStep,
    Request,
    ResourceType,
)
from engine.language.templating import render, render_tree
from engine.saas import listing, recorder
from engine.saas.client import Saas
from engine.saas.mapping import map_item
from engine.saas.messages import Answer
from engine.storage import ObjectInfo, Writer, check_path
from engine.tasks import decoding, manifest
from engine.tasks.job import Job
from engine.tasks.lineage import Node, Walk
from engine.tasks.manifest import Entry, Named, resource_key

COMPRESSION = "zstd"
SUFFIX = ".zst"


def _json_line(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


class Backup:
    """One backup run (or resumed run) of a task."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.definition = job.definition
        self.saas = job.source
        self.journal = job.journal
        self.options: Mapping[str, Any] = job.request.get("options") or {}
        self.excluded = frozenset(job.request.get("excludes") or ())
        # twice the SaaS's concurrency: a unit storing what it fetched has let go of the SaaS
        # gate (engine.outbound), so another can fetch meanwhile
        self.units_limit = 2 * job.concurrency
        self.units = asyncio.Semaphore(self.units_limit)
        self.claimed: set[str] = set()
        self.failures = 0
        self.seen = 0
        self.listings = 0
        self.walk = Walk()

    async def run(self) -> None:
        """Backs everything up; raises when a required object could not be written."""
        await self.job.storage.sweep()  # a resumed backup: what the killed run left half-written
        # bytes too: each unit a previous run finished counts again once found whole
        self.journal.progress.update(done=0, total=None, bytes=0)
        items = self.job.request["items"]
        self.seen = self.listings = len(items)  # an item not yet walked counts as a listing
        await for_each(self._item, items, limit=self.job.concurrency)
        self.journal.progress["total"] = self.seen
        if self.failures:
            raise SaasError(
                f"the backup is incomplete: {self.failures} required part(s) failed (see errors);"
                " no manifest was written"
            )
        await self._manifest()

    async def _manifest(self) -> None:
        found = [Entry.from_json(unit) for unit in self.journal.units.values()]
        resources, entries = self.walk.table(found, self._key)
        depths = {row["id"]: row["depth"] for row in resources}
        kinds = self.definition.types
        entries.sort(
            key=lambda entry: (depths.get(entry.resource, kinds[entry.type].depth), entry.path)
        )
        record = self.journal.record
        document = manifest.build(
            task_uuid=record["taskUuid"],
            module=self.definition.identity,
            engine_version=self.job.engine_version,
            request=record["request"],
            entries=entries,
            errors=record["errors"],
            started=record["createdAt"],
            finished=iso(self.journal.clock.now()),
            resources=resources,
        )
        await manifest.write(self.job.storage, document, self.journal.save)

    # the walk ------------------------------------------------------------------------------
    def _key(self, entry: Entry) -> tuple[str, str]:
        return resource_key(self.definition.types[entry.type], entry.values)

    async def _item(self, item: Mapping[str, Any]) -> None:
        """Walks one requested resource and everything below it, to the end (its own children
        are listed whatever hasSubresources says; named as the platform named it, when it did)."""
        kind = self.definition.types[item["type"]]
        values = item["values"]
        depth = item.get("depth", kind.depth)
        name = Named.of(kind, values, item.get("name")).name
        node = Node(resource_key(kind, values), name, values, depth)
        self.walk.add(node)
        await in_group(lambda spawn: [spawn(self._resource(kind, node, spawn, requested=True))])

    async def _resource(
        self,
        kind: ResourceType,
        node: Node,
        spawn: Spawn,
        *,
        requested: bool = False,
        subresources: bool = True,
    ) -> None:
        values = node.values
        units = []
        only = recorder.sampled_step()  # a workbench sample of one step: nothing else, no children
        for index, step in enumerate(kind.backup):
            place = f"/resources/{kind.name}/backup/{index}"
            if only is not None and step.id != only:
                continue
            try:
                wanted = step.when is None or render(
                    step.when, {"ctx": values, "options": self.options}, place=f"{place}/when"
                )
            except EngineError as exc:
                self._failed(exc, required=True, node=node)
                continue
            if wanted:
                units.append(spawn(self._step(kind, node, step, place)))
        for child in kind.children if subresources and only is None else ():
            if child not in self.excluded:
                self.listings += 1
                spawn(self._children(self.definition.types[child], node, spawn))
        if requested:
            self._listed()
        if units:
            await asyncio.wait(units)
        self.journal.progress["done"] += 1

    async def _children(self, kind: ResourceType, parent: Node, spawn: Spawn) -> None:
        """Lists the resources of ``kind`` below ``parent`` and walks each."""
        names = {"settings": self.saas.settings, "ctx": parent.values}
        place = f"/resources/{kind.name}/list"
        depth = parent.depth + 1
        try:
            async for page in listing.pages(self.saas, kind.list, names, place=place):
                for item in page:
                    fields = map_item(self.definition.id, kind, item, parent.values, depth)
                    if fields.can_backup:
                        values = fields.ctx["values"]
                        node = Node(resource_key(kind, values), fields.name, values, depth, parent)
                        self._child(kind, node, fields.has_subresources, spawn)
        except (SaasAuthError, StorageError):
            raise
        except EngineError as exc:
            self._failed(exc, required=True, node=parent)
        finally:
            self._listed()

    def _child(self, kind: ResourceType, node: Node, subresources: bool, spawn: Spawn) -> None:
        """Walks a listed resource, unless it is deeper than its type's maxDepth or repeats
        one of its ancestors (a loop in the SaaS's tree): both fail the backup, naming it."""
        assert node.parent is not None, "a listed resource has a parent"
        named = f"{kind.name} '{node.name}'"
        problem = None
        if node.depth > kind.max_depth:
            problem = f"{named} is at depth {node.depth}, past maxDepth {kind.max_depth}"
        elif (again := node.parent.repeated(node.key)) is not None:
            problem = f"{named} repeats its ancestor at depth {again.depth} (a loop)"
        if problem is not None:
            error = SaasError(f"{problem}: not walked, the backup is incomplete")
            self._failed(error, required=True, node=node.parent)
            return
        self.seen += 1
        self.walk.add(node)
        spawn(self._resource(kind, node, spawn, subresources=subresources))

    def _listed(self) -> None:
        """One listing (or requested item) less to wait for; with none left, the total is known."""
        self.listings -= 1
        if self.listings == 0:
            self.journal.progress["total"] = self.seen

    async def _step(self, kind: ResourceType, node: Node, step: BackupStep, place: str) -> None:
        if not isinstance(step, DownloadStep) or step.list is None:
            await self._unit(kind, node, step, place, None)
            return
        names = {"settings": self.saas.settings, "ctx": node.values}
        one = partial(self._unit, kind, node, step, place)
        try:  # a unit records its own failures: what arrives here is the listing's
            async with aclosing(_listed_items(self.saas, step.list, names, place)) as found:
                await for_each_arriving(one, found, limit=self.units_limit)
        except (SaasAuthError, StorageError):
            raise
        except EngineError as exc:
            self._failed(exc, required=step.required, node=node)

    # one object ----------------------------------------------------------------------------
    async def _unit(
        self,
        kind: ResourceType,
        node: Node,
        step: BackupStep,
        place: str,
        item: Any,
    ) -> None:
        values = node.values
        try:
            key = self._claim(step, values, item, place)
            if await self._already_done(key):
                return
            async with self.units:
                info, meta = await _FETCHERS[type(step)](self, step, values, item, key, place)
        except (SaasAuthError, StorageError):
            raise
        except Ignored:  # a response rule: nothing to store for this unit
            return
        except EngineError as exc:
            self._failed(exc, required=step.required, node=node)
            return
        entry = Entry(info, kind.name, step.id, dict(values), step.format, meta)
        self.journal.progress["bytes"] += info.size
        await self.journal.unit(key, entry.to_json())

    def _claim(self, step: BackupStep, values: Mapping[str, Any], item: Any, place: str) -> str:
        names = {"ctx": values, "options": self.options} | ({} if item is None else {"item": item})
        rendered = render(step.to, names, place=f"{place}/to")
        if not isinstance(rendered, str) or not rendered:
            raise PathError(f"{place}/to: the path rendered to {rendered!r}", template=step.to)
        key = check_path(rendered + SUFFIX, template=f"{place}/to")
        if key in self.claimed:
            raise PathError(f"{place}/to: two objects of this backup render the path '{key}'")
        self.claimed.add(key)
        return key

    async def _already_done(self, key: str) -> bool:
        """A unit a previous run finished, whose object is still there whole."""
        done = self.journal.units.get(key)
        if done is None:
            return False
        if await self.job.storage.size(key) == done.get("size"):
            self.journal.progress["bytes"] += done["size"]
            return True
        del self.journal.units[key]
        return False

    def _meta(
        self, step: DownloadStep, values: Mapping[str, Any], item: Any, place: str
    ) -> dict[str, Any]:
        if not step.meta:
            return {}
        meta = render_tree(dict(step.meta), {"ctx": values, "item": item}, place=f"{place}/meta")
        return dict(meta)

    def _failed(self, exc: EngineError, *, required: bool, node: Node) -> None:
        """An error entry naming the resource; a required part fails the backup, any other
        leaves its resource marked incomplete in the manifest."""
        entry = Named(node.type, node.name).entry(exc)
        self.journal.error(entry)
        self.failures += 1 if required else 0
        node.incomplete.append(entry)

    # fetch kinds ---------------------------------------------------------------------------
    async def _object(
        self,
        step: ObjectStep,
        values: Mapping[str, Any],
        item: Any,
        key: str,
        place: str,
    ) -> Stored:
        names = {"settings": self.saas.settings, "ctx": values, "options": self.options}
        if step.format == "raw":
            picked = _picker(step, place)
            return await self._stream(step.request, names, key, place, decode=picked)
        answer = await self.saas.send(step.request, names, place=f"{place}/request")
        data = await self._picked(step.parse, step.select, answer, values)
        [data] = await self._transformed(step, [data], values) or [None]
        if data is None:
            raise Ignored(f"{answer.label}: the transform hook dropped the object")
        async with self.job.storage.writer(key, compress=COMPRESSION) as writer:
            await writer.write(json.dumps(data, ensure_ascii=False).encode())
            writer.records = 1
        return writer.info, {}

    async def _collection(
        self,
        step: CollectionStep,
        values: Mapping[str, Any],
        item: Any,
        key: str,
        place: str,
    ) -> Stored:
        names = {"settings": self.saas.settings, "ctx": values}
        as_array = step.format == "json"
        async with self.job.storage.writer(key, compress=COMPRESSION) as writer:
            if as_array:
                await writer.write(b"[")
            async for page in listing.pages(self.saas, step.list, names, place=f"{place}/list"):
                records = page
                if step.each is not None:
                    records = await self._each(step.each, values, page, f"{place}/each")
                records = await self._transformed(step, records, values)
                await _write_records(writer, records, as_array=as_array)
            if as_array:
                await writer.write(b"]")
        return writer.info, {}

    async def _each(
        self, each: Each, values: Mapping[str, Any], page: list[Any], place: str
    ) -> list[Any]:
        names = {"settings": self.saas.settings, "ctx": values, "options": self.options}

        async def one(item: Any) -> list[Any]:
            try:
                answer = await self.saas.send(
                    each.request, names | {"item": item}, place=f"{place}/request"
                )
            except Ignored:  # a response rule (an item deleted meanwhile, say): leave it out
                return []
            return [await self._picked(each.parse, each.select, answer, values)]

        found = await gather(one(item) for item in page)
        return [record for records in found for record in records]

    async def _picked(
        self, parse: str | None, selector: str, answer: Answer, values: Mapping[str, Any]
    ) -> Any:
        """What a step keeps of an answer: its parse hook's value, or what its selector picks."""
        if parse is None:
            return answer.select(selector)
        hooks = self.definition.hooks
        return await hooks.call("parse", parse, answer, dict(values), resource=answer.label)

    async def _transformed(
        self, step: ObjectStep | CollectionStep, records: list[Any], values: Mapping[str, Any]
    ) -> list[Any]:
        """The records as the step's transform hook changes them (None drops one)."""
        if step.transform is None:
            return records
        hooks, name = self.definition.hooks, step.transform
        label = f"{step.id} of " + "/".join(str(value) for value in values.values())
        changed = [
            await hooks.call("transform", name, record, dict(values), resource=label)
            for record in records
        ]
        return [record for record in changed if record is not None]

    async def _download(
        self,
        step: DownloadStep,
        values: Mapping[str, Any],
        item: Any,
        key: str,
        place: str,
    ) -> Stored:
        names = {"settings": self.saas.settings, "ctx": values, "options": self.options}
        meta = self._meta(step, values, item, place)
        decode = _base64 if step.decode else None
        names = names | {"item": item}
        return await self._stream(step.request, names, key, place, decode=decode, meta=meta)

    async def _stream(
        self,
        request: Request,
        names: Mapping[str, Any],
        key: str,
        place: str,
        *,
        decode: Decoder | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Stored:
        """Streams an answer into one object: decoded on the way when asked, its bytes checked
        against the checksums meta names; meta gains contentType and size (meta's own win)."""
        meta = dict(meta or {})
        label = f"{request.method} {request.path} into {key.removesuffix(SUFFIX)}"
        digests = decoding.Digests(meta, label)
        async with self.job.storage.writer(key, compress=COMPRESSION) as writer:
            sink = digests.wrap(writer.write)
            decoder = decode(sink, label) if decode else None
            got = await self.saas.download(
                request, names, decoder or sink, place=f"{place}/request"
            )
            if decoder is not None:
                decoder.close()
            digests.check()
            writer.records = 1
        recorded = {"contentType": got.content_type, "size": writer.info.raw_size}
        return writer.info, {k: v for k, v in recorded.items() if v is not None} | meta


async def _listed_items(
    saas: Saas, spec: Listing, names: Mapping[str, Any], place: str
) -> AsyncGenerator[Any, None]:
    """The items of a listing one by one, as its pages arrive."""
    async for page in listing.pages(saas, spec, names, place=place):
        for item in page:
            yield item


async def _write_records(writer: Writer, records: list[Any], *, as_array: bool) -> None:
    if not records:
        return
    if as_array:
        lead = b"," if writer.records else b""
        body = ",".join(json.dumps(record, ensure_ascii=False) for record in records)
        await writer.write(lead + body.encode())
    else:
        await writer.write("".join(_json_line(record) for record in records).encode())
    writer.records += len(records)


def _base64(sink: decoding.Sink, label: str) -> decoding.Base64:
    return decoding.Base64(sink, label)


def _picker(step: ObjectStep, place: str) -> Decoder | None:
    """How a raw object step decodes its answer: with decode, the base64 string its select
    picks, stream-parsed (select must then be a plain path)."""
    if step.decode is None:
        return None
    path = decoding.field_path(step.select)
    if path is None:
        raise SaasError(
            f"{place}/select: with decode, select must be a plain path of keys and [n] indexes"
            f" (or @), not '{step.select}'"
        )

    def picked(sink: decoding.Sink, label: str) -> decoding.StringField:
        text = decoding.Base64(sink, label)
        return decoding.StringField(path, text, label, text.close)

    return picked


class _Decoding(Protocol):
    """A sink decoding what it is fed; close() raises when the answer ended too soon."""

    async def __call__(self, data: bytes) -> None: ...

    def close(self) -> None: ...


Decoder = Callable[[decoding.Sink, str], _Decoding]
Stored = tuple[ObjectInfo, dict[str, Any]]  # the object, and the meta the manifest keeps
Fetcher = Callable[[Backup, Any, Mapping[str, Any], Any, str, str], Coroutine[Any, Any, Stored]]
# each backup step kind of the model and how it fetches its object
_FETCHERS: dict[type[Any], Fetcher] = {
    ObjectStep: Backup._object,
    CollectionStep: Backup._collection,
    DownloadStep: Backup._download,
}


async def run(job: Job) -> None:
    """The backup task."""
    await Backup(job).run()

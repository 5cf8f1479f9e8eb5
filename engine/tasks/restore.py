"""The restore task: reads a complete backup (manifest first, every checksum verified before any
write), and writes each stored record back with the module's restore steps, parents before
children, under the scenario's target and the conflict policy; or, as a dry run, only lists the
writes it would make."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from engine.concurrently import for_each, for_each_arriving
from engine.errors import (
    EngineError,
    Ignored,
    NotText,
    RequestError,
    SaasAuthError,
    SaasError,
    StorageError,
)
from engine.language.model import Request, ResourceType, RestoreStep, Scenario
from engine.language.templating import render, render_tree
from engine.saas.messages import Streamed
from engine.tasks import manifest, uploads
from engine.tasks.contents import records_of
from engine.tasks.job import Job
from engine.tasks.lineage import Table
from engine.tasks.manifest import Entry, Key, Named, by_resource, resource_key

POLICIES = ("skip", "overwrite", "fail")
WINDOW = 64  # records of one object in flight at once (each write still waits for the SaaS gate)
# what became of one record's write: written, found existing (a conflict), not needed (a `when`,
# a transform returning None, a response rule's ignore), or failed
OUTCOMES = ("written", "conflicts", "skipped", "failed")
PLAN_LIMIT = 1000  # writes a dry run lists (it counts them all)


def scenario_names(scenario: Scenario | None) -> dict[str, Any]:
    """What restore templates see as ``scenario``: its id and kind; without one (the module's
    own restore, writing where the backed-up values say), id None and kind inPlace."""
    if scenario is None:
        return {"id": None, "kind": "inPlace"}
    return {"id": scenario.id, "kind": scenario.kind}


def conflict_policy(
    template: str, options: Mapping[str, Any], scenario: Scenario | None = None
) -> str:
    """The rendered conflict policy; RequestError when the options make it something else."""
    names = {"options": options, "scenario": scenario_names(scenario)}
    policy = render(template, names, place="/restore/conflict")
    if policy not in POLICIES:
        raise RequestError(
            f"the conflict policy is '{policy}'; expected one of skip, overwrite, fail"
        )
    return str(policy)


def totals(units: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The outcomes of the records of finished units, added up (a resumed restore starts from
    these: what an unfinished unit wrote is counted again when it is redone)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for unit in units:
        for outcome in OUTCOMES:
            found = unit.get(outcome, 0)
            counts[outcome] += found if isinstance(found, int) else 0
    return counts


def selected(
    entries: Sequence[Entry], items: Sequence[Mapping[str, Any]], table: Table | None = None
) -> list[Entry]:
    """The objects that belong to the requested resources or their descendants: by the
    manifest's resources table where an object names its row (any depth, whatever keys a
    nested type overrides), else by ctx values (the item's values among the object's)."""
    rows = table.below(items) if table else set()
    return [
        entry
        for entry in entries
        if entry.resource in rows
        or any(
            all(entry.values.get(key) == value for key, value in item["values"].items())
            for item in items
        )
    ]


@dataclass
class _Unit:
    """One stored object being written back."""

    kind: ResourceType
    entry: Entry
    steps: list[tuple[int, RestoreStep]]
    target: Mapping[str, Any]
    label: Named
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    remembered: dict[str, Any] = field(default_factory=dict)


class Restore:
    """One restore run (or resumed run) of a task."""

    def __init__(self, job: Job, scenario: Scenario | None) -> None:
        self.job = job
        self.definition = job.definition
        self.saas = job.source
        self.journal = job.journal
        request = job.request
        self.options: Mapping[str, Any] = request.get("options") or {}
        self.scenario = scenario
        self.scenario_names = scenario_names(scenario)
        self.target: Mapping[str, Any] = (request.get("target") or {}).get("values", {})
        self.dry_run = bool(request.get("dryRun"))
        self.policy = conflict_policy(self.definition.restore.conflict, self.options, scenario)
        self.units = asyncio.Semaphore(job.concurrency)
        self.remembered: dict[Key, dict[str, Any]] = {}
        self.table = Table([])
        self.plan: dict[str, Any] = {"writes": 0, "requests": []}
        self.totals = dict.fromkeys(OUTCOMES, 0)
        self.names: dict[Key, str] = {}

    async def run(self) -> None:
        """Verifies, then writes back every selected object, depth by depth."""
        found = await manifest.read(self.job.storage, self.definition.id, self.definition.types)
        self.table = Table(found.resources)
        entries = selected(found.entries, self.job.request["items"], self.table)
        await manifest.verify(self.job.storage, entries, self.job.concurrency)
        levels = self._levels(entries)
        self.journal.progress.update(done=0, total=sum(map(len, levels)))
        self.totals = self.journal.record["restore"] = totals(self.journal.units.values())
        self._name([*found.items, *self.job.request["items"]])
        for unit in self.journal.units.values():
            self._remember(unit.get("type", ""), unit.get("values", {}), unit.get("remember", {}))
        for level in levels:
            await for_each(self._resource, level, limit=self.job.concurrency)
        if self.dry_run:
            self.journal.record["dryRun"] = self.plan

    def _name(self, items: Iterable[Any]) -> None:
        """Keeps the names the platform gave the backup's or this restore's items (the other
        resources are named as the resources table names them, else by their ctx values)."""
        for item in items:
            if not isinstance(item, dict):
                continue  # a malformed manifest item names nothing
            kind = self.definition.types.get(str(item.get("type")))
            name, values = item.get("name"), item.get("values")
            if kind is not None and isinstance(name, str) and isinstance(values, dict):
                self.names[resource_key(kind, values)] = name

    def _label(self, kind: ResourceType, entry: Entry) -> Named:
        """How error entries name an object's resource."""
        name = self.names.get(resource_key(kind, entry.values)) or self.table.name(entry)
        return Named.of(kind, entry.values, name)

    def _levels(self, entries: Sequence[Entry]) -> list[list[list[Entry]]]:
        """The objects grouped by resource, the resources by depth (the actual one the
        resources table records, else the type's): parents come first, and a resource's objects
        go in the order of its backup steps (a collection before its records)."""
        levels: dict[int, list[list[Entry]]] = {}
        for objects in by_resource(self.definition, entries).values():
            kind = self.definition.types[objects[0].type]
            steps = [step.id for step in kind.backup]
            objects.sort(key=lambda entry: steps.index(entry.step) if entry.step in steps else 0)
            depth = self.table.depth(objects[0])
            levels.setdefault(kind.depth if depth is None else depth, []).append(objects)
        return [levels[depth] for depth in sorted(levels)]

    async def _resource(self, objects: list[Entry]) -> None:
        for entry in objects:
            await self._object(entry)
        self.journal.progress["done"] += 1

    async def _object(self, entry: Entry) -> None:
        if entry.path in self.journal.units and not self.dry_run:
            return
        kind = self.definition.types[entry.type]
        steps = [(i, step) for i, step in enumerate(kind.restore) if entry.step in step.from_]
        texts = [(index, step) for index, step in steps if step.upload is None]
        async with self.units:
            label = self._label(kind, entry)
            unit = _Unit(kind, entry, texts, self._target(kind, entry), label)
            for index, step in steps:
                if step.upload is not None:  # one write of the object's bytes, streamed
                    await self._step(unit, index, step, None)
            if texts:
                await self._records(unit)
        self._remember(kind.name, entry.values, unit.remembered)
        self.journal.progress["bytes"] += entry.info.size
        if not self.dry_run:
            done = unit.counts | {"type": kind.name, "values": dict(entry.values)}
            await self.journal.unit(entry.path, done | {"remember": unit.remembered})

    async def _records(self, unit: _Unit) -> None:
        """Writes the object's records back, a window at a time; an object that cannot be
        read as records (binary bytes without an upload) is one failure, nothing written."""
        try:
            async with aclosing(records_of(self.job.storage, unit.entry)) as records:
                await for_each_arriving(partial(self._record, unit), records, limit=WINDOW)
        except NotText as exc:  # an error only where a step would have written it
            if any(self._may_write(unit, step) for _, step in unit.steps):
                self._failed(unit, exc)
            else:
                self._count(unit, "skipped")

    def _may_write(self, unit: _Unit, step: RestoreStep) -> bool:
        """Whether a step's `when` lets an object through that has no text record (rendered
        with record null; a `when` that cannot render so may)."""
        if step.when is None:
            return True
        try:
            return bool(render(step.when, self._names(unit, None), place="/when"))
        except EngineError:
            return True

    def _names(self, unit: _Unit, record: Any) -> dict[str, Any]:
        """What a restore step's templates see for one record (None: an upload's bytes)."""
        return {
            "settings": self.saas.settings,
            "ctx": unit.entry.values,
            "target": unit.target,
            "options": self.options,
            "record": record,
            "meta": unit.entry.meta,
            "scenario": self.scenario_names,
        }

    async def _record(self, unit: _Unit, record: Any) -> None:
        """Writes one stored record with every restore step that takes its object."""
        for index, step in unit.steps:
            await self._step(unit, index, step, record)

    async def _step(self, unit: _Unit, index: int, step: RestoreStep, record: Any) -> None:
        """One write of a step: a record (transformed), or with an upload the object's bytes
        (record None)."""
        place = f"/resources/{unit.kind.name}/restore/{index}"
        try:
            written = record if step.upload else await self._transformed(step, record, unit)
            names = self._names(unit, written)
            body = self._upload(unit, step, names, place)
            outcome = (
                "skipped"
                if written is None and body is None
                else await self._write(unit, step, names, place, body=body)
            )
        except (SaasAuthError, StorageError):
            raise
        except EngineError as exc:
            self._failed(unit, exc)
            return
        self._count(unit, outcome)

    def _upload(
        self, unit: _Unit, step: RestoreStep, names: Mapping[str, Any], place: str
    ) -> Streamed | None:
        if step.upload is None:
            return None
        return uploads.body(self.job.storage, unit.entry, step, names, place)

    def _failed(self, unit: _Unit, exc: EngineError) -> None:
        self.journal.error(unit.label.entry(exc))
        self._count(unit, "failed")

    def _count(self, unit: _Unit, outcome: str) -> None:
        unit.counts[outcome] += 1
        self.totals[outcome] += 1

    async def _transformed(self, step: RestoreStep, record: Any, unit: _Unit) -> Any:
        """The record as the step's transform hook changes it (None: not written)."""
        if step.transform is None:
            return record
        return await self.definition.hooks.call(
            "transform",
            step.transform,
            record,
            dict(unit.entry.values),
            resource=unit.entry.path,
        )

    async def _write(
        self,
        unit: _Unit,
        step: RestoreStep,
        names: Mapping[str, Any],
        place: str,
        *,
        body: Streamed | None = None,
    ) -> str:
        if step.when is not None and not render(step.when, names, place=f"{place}/when"):
            return "skipped"
        request = step.request
        conflict = step.conflict
        if conflict is not None and self.policy != "overwrite":
            request = replace(request, headers=dict(request.headers) | dict(conflict.headers))
        if self.dry_run:
            self._planned(request, names, place, unit.label)
            self.saas.plan(request, names, place=f"{place}/request", body=body)
            return "written"
        # a conflict is taken as the SaaS's last word: no response rule, no retry
        accept = conflict.matches if conflict is not None else None
        try:
            answer = await self.saas.send(
                request, names, place=f"{place}/request", accept=accept, body=body
            )
        except Ignored:  # a response rule: the write is not needed
            return "skipped"
        if conflict is not None and conflict.matches(answer.status, answer.body):
            if self.policy == "fail":
                raise SaasError(f"{answer.label}: the object exists (conflict policy: fail)")
            return "conflicts"
        if step.remember:
            found = {"answer": answer.json(), "record": names["record"]} | {
                "ctx": names["ctx"],
                "target": names["target"],
                "scenario": names["scenario"],
            }
            unit.remembered |= render_tree(dict(step.remember), found, place=f"{place}/remember")
        return "written"

    def _planned(
        self, request: Request, names: Mapping[str, Any], place: str, label: Named
    ) -> None:
        """A dry run's write: counted, and among the first PLAN_LIMIT listed with its resource
        named as error entries name it."""
        self.plan["writes"] += 1
        if len(self.plan["requests"]) < PLAN_LIMIT:
            path = render(request.path, names, place=f"{place}/request/path")
            where = {"resource": label.name, "resourceType": label.type}
            self.plan["requests"].append({"method": request.method, "path": path} | where)

    def _target(self, kind: ResourceType, entry: Entry) -> dict[str, Any]:
        """Where an object is written: its own ctx values, replaced by the scenario's target,
        the request's target and the values its ancestors' writes remembered."""
        target = dict(entry.values)
        if self.scenario is not None and self.scenario.target:
            names = {"ctx": entry.values, "options": self.options, "scenario": self.scenario_names}
            pointer = f"/restore/scenarios/{self.scenario.id}/target"
            target |= render_tree(dict(self.scenario.target), names, place=pointer)
        target |= {key: value for key, value in self.target.items() if key in target}
        for key in self._ancestors(kind, entry):
            target |= self.remembered.get(key, {})
        return target

    def _ancestors(self, kind: ResourceType, entry: Entry) -> list[Key]:
        """The resources above an object's and its own, root first: its row's parent chain in
        the resources table, else (format 1) its type's ancestors with its ctx values."""
        types = self.definition.types
        rows = self.table.lineage(entry.resource)
        if rows:
            return [resource_key(types[row.type], row.values) for row in rows if row.type in types]
        return [resource_key(types[name], entry.values) for name in _lineage(types, kind)]

    def _remember(
        self, type_name: str, values: Mapping[str, Any], found: Mapping[str, Any]
    ) -> None:
        kind = self.definition.types.get(type_name)
        if kind is not None and found:
            self.remembered.setdefault(resource_key(kind, values), {}).update(found)


def _lineage(types: Mapping[str, ResourceType], kind: ResourceType) -> list[str]:
    """A type and its first parents up to a root, root first; stops where a type repeats."""
    chain = [kind.name]
    while (parents := types[chain[-1]].parents) and parents[0] not in chain:
        chain.append(parents[0])
    return list(reversed(chain))


async def run(job: Job, scenario: Scenario | None) -> None:
    """The restore task."""
    await Restore(job, scenario).run()

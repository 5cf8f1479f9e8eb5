"""A backup as its manifest describes it, for people: its resources as a tree (each with its
objects and sizes), and its sizes per resource type and per root. No module definition is
needed: a format-2 manifest's resources table says each resource's parent; in a format-1 one, a
resource's ctx values hold its ancestors' (the backup adds each child's own to its parent's), so
its parent is the closest one whose values its own include."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from engine.storage import ObjectInfo
from engine.tasks.manifest import Entry

LEVELS_UP = 4  # how many levels up a parent is looked for (a resource of a type not backed up)


@dataclass
class Totals:
    """Objects, records and bytes (stored, and raw: before compression) of some objects."""

    objects: int = 0
    records: int = 0
    stored: int = 0
    raw: int = 0

    def add(self, info: ObjectInfo) -> None:
        self.objects += 1
        self.records += info.records
        self.stored += info.size
        self.raw += info.raw_size

    def merge(self, other: Totals) -> None:
        self.objects += other.objects
        self.records += other.records
        self.stored += other.stored
        self.raw += other.raw

    @property
    def ratio(self) -> float | None:
        """How many times smaller compression made them (None when nothing is stored)."""
        return self.raw / self.stored if self.stored else None

    def to_json(self) -> dict[str, Any]:
        ratio = None if self.ratio is None else round(self.ratio, 2)
        return {
            "objects": self.objects,
            "records": self.records,
            "stored": self.stored,
            "raw": self.raw,
            "ratio": ratio,
        }


def totals_of(entries: Iterable[Entry]) -> Totals:
    """The totals of these objects."""
    totals = Totals()
    for entry in entries:
        totals.add(entry.info)
    return totals


@dataclass
class Resource:
    """One backed-up resource: its type, ctx values (own: those its parent lacks), objects
    and the resources below it."""

    type: str
    values: Mapping[str, Any]
    objects: list[Entry] = field(default_factory=list)
    children: list[Resource] = field(default_factory=list)
    own: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # the name the backup mapped it to (format 2)

    @property
    def name(self) -> str:
        """The type and its name, else its own values: ``entry a.txt``, ``collection c01``,
        ``event cal=a, uid=b``."""
        if self.label is not None:
            return f"{self.type} {self.label}"
        values = [str(value) for value in self.own.values()]
        if len(values) != 1:
            values = [", ".join(f"{key}={value}" for key, value in self.own.items())]
        return " ".join([self.type, *filter(None, values)])

    def totals(self) -> Totals:
        """The totals of its objects and of everything below it."""
        totals = totals_of(self.objects)
        for child in self.children:
            totals.merge(child.totals())
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "values": dict(self.values),
            "totals": self.totals().to_json(),
            "objects": [entry.to_json() for entry in self.objects],
            "children": [child.to_json() for child in self.children],
        }


def _key(values: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset((key, json.dumps(value, sort_keys=True)) for key, value in values.items())


def resource_tree(
    entries: Sequence[Entry], rows: Sequence[Mapping[str, Any]] = ()
) -> list[Resource]:
    """The backup's resources as a tree: the roots, in the manifest's order (of its resources
    table, when it has one)."""
    if not rows:
        return _derived_tree(entries)
    nodes = {
        row["id"]: Resource(row["type"], dict(row["values"]), label=row["name"]) for row in rows
    }
    for entry in entries:
        if entry.resource in nodes:
            nodes[entry.resource].objects.append(entry)
    roots: list[Resource] = []
    for row in rows:
        node, parent = nodes[row["id"]], nodes.get(row["parent"])
        inherited = parent.values if parent is not None else {}
        node.own = {k: v for k, v in node.values.items() if k not in inherited or inherited[k] != v}
        (roots if parent is None else parent.children).append(node)
    return roots + _derived_tree([entry for entry in entries if entry.resource not in nodes])


def _derived_tree(entries: Sequence[Entry]) -> list[Resource]:
    """The tree of a manifest without a resources table, from the objects' ctx values."""
    nodes: dict[tuple[str, frozenset[tuple[str, str]]], Resource] = {}
    by_values: dict[frozenset[tuple[str, str]], Resource] = {}
    for entry in entries:
        key = (entry.type, _key(entry.values))
        if key not in nodes:
            nodes[key] = Resource(entry.type, dict(entry.values))
            by_values.setdefault(key[1], nodes[key])
        nodes[key].objects.append(entry)
    roots: list[Resource] = []
    for node in nodes.values():
        parent = _parent(node, by_values)
        inherited = parent.values if parent is not None else {}
        node.own = {key: value for key, value in node.values.items() if key not in inherited}
        (roots if parent is None else parent.children).append(node)
    return roots


def _parent(
    node: Resource, by_values: Mapping[frozenset[tuple[str, str]], Resource]
) -> Resource | None:
    """The closest resource whose values node's include (fewest left out), if any."""
    pairs = sorted(_key(node.values))
    for dropped in range(1, min(len(pairs), LEVELS_UP) + 1):
        for kept in combinations(pairs, len(pairs) - dropped):
            found = by_values.get(frozenset(kept))
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class Usage:
    """A backup's sizes: per resource type, per root resource (with what is below it), all."""

    types: dict[str, Totals]
    roots: list[tuple[Resource, Totals]]
    total: Totals

    def to_json(self) -> dict[str, Any]:
        return {
            "types": {name: totals.to_json() for name, totals in self.types.items()},
            "roots": [
                {"type": root.type, "values": dict(root.values), **totals.to_json()}
                for root, totals in self.roots
            ],
            "total": self.total.to_json(),
        }


def usage(entries: Sequence[Entry], rows: Sequence[Mapping[str, Any]] = ()) -> Usage:
    """The sizes of a backup's objects, per type and per root."""
    types: dict[str, Totals] = {}
    for entry in entries:
        types.setdefault(entry.type, Totals()).add(entry.info)
    roots = [(root, root.totals()) for root in resource_tree(entries, rows)]
    return Usage(types, roots, totals_of(entries))

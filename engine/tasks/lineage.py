"""Where each backed-up resource stood in the tree: the backup walk's resources (type, name,
values, parent, actual depth) and the manifest's ``resources`` table they become, read back
by restore and export (descendants by ancestry, parents before children by actual depth)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.tasks.manifest import Entry, Key


@dataclass
class Node:
    """One resource met in a backup walk."""

    key: Key  # manifest.resource_key: its type and the ctx values that name it
    name: str
    values: Mapping[str, Any]
    depth: int
    parent: Node | None = None
    incomplete: list[dict[str, Any]] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.key[0]

    def lineage(self) -> Iterator[Node]:
        """Itself, then its parent, up to the walk's start."""
        node: Node | None = self
        while node is not None:
            yield node
            node = node.parent

    def repeated(self, key: Key) -> Node | None:
        """The resource of this lineage that ``key`` names again (a loop in the SaaS's tree)."""
        return next((node for node in self.lineage() if node.key == key), None)


class Walk:
    """The resources a backup walked, by key (the first one met, when a key repeats)."""

    def __init__(self) -> None:
        self.nodes: dict[Key, Node] = {}

    def add(self, node: Node) -> Node:
        return self.nodes.setdefault(node.key, node)

    def find(self, key: Key) -> Node | None:
        return self.nodes.get(key)

    def table(
        self, entries: Sequence[Entry], key_of: Callable[[Entry], Key]
    ) -> tuple[list[dict[str, Any]], list[Entry]]:
        """The manifest's ``resources`` rows (every resource with objects, or incomplete, and
        its ancestors; parents first) and the entries, each naming its row."""
        kept: set[Key] = set()
        owners = [self.nodes.get(key_of(entry)) for entry in entries]
        marked = [node for node in self.nodes.values() if node.incomplete]
        for node in [*filter(None, owners), *marked]:
            kept.update(each.key for each in node.lineage())
        order = {key: index for index, key in enumerate(self.nodes)}
        rows = sorted(kept, key=lambda key: (self.nodes[key].depth, order[key]))
        ids = {key: number for number, key in enumerate(rows, start=1)}
        table = [_row(self.nodes[key], ids) for key in rows]
        named = [
            entry if owner is None else replace(entry, resource=ids[owner.key])
            for entry, owner in zip(entries, owners, strict=True)
        ]
        return table, named


def _row(node: Node, ids: Mapping[Key, int]) -> dict[str, Any]:
    row = {
        "id": ids[node.key],
        "type": node.type,
        "name": node.name,
        "values": dict(node.values),
        "parent": None if node.parent is None else ids[node.parent.key],
        "depth": node.depth,
    }
    return row | ({"incomplete": list(node.incomplete)} if node.incomplete else {})


# reading the table back ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of a manifest's ``resources`` table."""

    id: int
    type: str
    name: str
    values: Mapping[str, Any]
    parent: int | None
    depth: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        return cls(
            data["id"], data["type"], data["name"], data["values"], data["parent"], data["depth"]
        )


class Table:
    """A manifest's resources table (empty for a format-1 manifest, which has none)."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = {row["id"]: Row.from_json(row) for row in rows}

    def __bool__(self) -> bool:
        return bool(self.rows)

    def lineage(self, number: int | None) -> list[Row]:
        """The row ``number`` and its ancestors, root first; never loops (a damaged table's
        cycle ends the chain)."""
        chain: list[Row] = []
        while number in self.rows and all(row.id != number for row in chain):
            chain.append(self.rows[number])
            number = self.rows[number].parent
        return list(reversed(chain))

    def depth(self, entry: Entry) -> int | None:
        row = self.rows.get(entry.resource) if entry.resource is not None else None
        return None if row is None else row.depth

    def name(self, entry: Entry) -> str | None:
        """The name of an object's resource, as the backup mapped it."""
        row = self.rows.get(entry.resource) if entry.resource is not None else None
        return None if row is None else row.name

    def below(self, items: Sequence[Mapping[str, Any]]) -> set[int]:
        """The rows the requested items name (their values among a row's), and every row
        below those by ancestry."""
        named = {
            number
            for number, row in self.rows.items()
            if any(_within(item["values"], row.values) for item in items)
        }
        return {number for number in self.rows if named & {r.id for r in self.lineage(number)}}


def _within(wanted: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    return all(values.get(key) == value for key, value in wanted.items())

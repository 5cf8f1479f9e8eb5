"""What ``engine run`` prints for people: resources as a table, the resource tree drawn as a
tree, a task's outcome and its non-fatal errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.backups.text import plural, size, table


@dataclass
class Node:
    """A resource of the tree with the children listed below it."""

    resource: Mapping[str, Any]
    children: list[Node] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.resource) | {"children": [child.to_json() for child in self.children]}


def resources(found: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per resource: its name, type and id."""
    if not found:
        return ["(none)"]
    rows = [[r["name"], r["type"], str(r.get("id", "-"))] for r in found]
    return table(["NAME", "TYPE", "ID"], rows)


def tree(roots: Sequence[Node]) -> list[str]:
    """The resources drawn as a tree, one per line: ``name (type)``."""
    lines: list[str] = []
    for root in roots:
        lines.append(_label(root))
        lines += _branches(root.children, "")
    return lines or ["(none)"]


def _branches(nodes: Sequence[Node], indent: str) -> Iterator[str]:
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        yield f"{indent}{'└── ' if last else '├── '}{_label(node)}"
        yield from _branches(node.children, indent + ("    " if last else "│   "))


def _label(node: Node) -> str:
    more = " …" if node.resource.get("hasSubresources") and not node.children else ""
    return f"{node.resource['name']} ({node.resource['type']}){more}"


def errors(found: Sequence[Mapping[str, Any]]) -> list[str]:
    """Non-fatal errors: code, the resource they concern, what went wrong."""
    if not found:
        return []
    lines = [f"{plural(len(found), 'error')}:"]
    for error in found:
        where = f"{error['resource']}: " if error.get("resource") else ""
        on = f" (field {error['field']})" if error.get("field") else ""
        lines.append(f"  {error.get('code', 'ERROR')} {where}{error.get('description', '')}{on}")
    return lines


def task(verb: str, answer: Mapping[str, Any], url: str) -> list[str]:
    """A finished task in one line: what it did, how much, where; its counts; its errors."""
    progress = answer.get("progress") or {}
    done = plural(progress.get("done", 0), "resource")
    lines = [f"{verb} {done} ({size(progress.get('bytes', 0))}) {url}"]
    counts = answer.get("restore")
    if counts:
        lines.append(", ".join(f"{value} {key}" for key, value in counts.items()))
    dry = answer.get("dryRun")
    if dry:
        lines.append(f"dry run: {plural(dry['writes'], 'write')} would be made")
        lines += [
            f"  {w['method']} {w['path']}  ({w.get('resource', '')})" for w in dry["requests"]
        ]
    return lines + errors(answer.get("errors") or [])

"""The tree of resource types a definition describes: each type's parents (one, several, or
none for a root), its children, the smallest depth it can have, whether it lies on a cycle (a
type nesting in itself: folders in folders), and the ctx keys its resources carry. Works on the
YAML as loaded, so the checks and the loader share it."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any


def parents_of(spec: Any) -> list[str]:
    """The parent type names a type's YAML gives (``parent``: one name or a list)."""
    parent = spec.get("parent") if isinstance(spec, Mapping) else None
    if parent is None:
        return []
    return [str(name) for name in (parent if isinstance(parent, list) else [parent])]


class TypeTree:
    """The resource types of one definition as a graph of parents and children."""

    def __init__(self, types: Mapping[str, Any]) -> None:
        self.types = types
        self.parents = {name: parents_of(spec) for name, spec in types.items()}

    def roots(self) -> list[str]:
        """The types without a parent, in definition order."""
        return [name for name, parents in self.parents.items() if not parents]

    def children(self, name: str) -> list[str]:
        """The types naming ``name`` among their parents, in definition order."""
        return [child for child, parents in self.parents.items() if name in parents]

    @cached_property
    def depths(self) -> dict[str, int]:
        """The smallest depth of each type reachable from a root (a root is at 0)."""
        found = dict.fromkeys(self.roots(), 0)
        level = list(found)
        while level:
            following = []
            for name in level:
                for child in self.children(name):
                    if child not in found:
                        found[child] = found[name] + 1
                        following.append(child)
            level = following
        return found

    def reachable(self, name: str) -> bool:
        """Whether a resource of this type can ever be listed (a root is above it)."""
        return name in self.depths

    def ancestors(self, name: str) -> list[str]:
        """Every type a resource of ``name`` can have above it (itself when it nests in
        itself), by depth then definition order."""
        seen: set[str] = set()
        todo = [parent for parent in self.parents.get(name, []) if parent in self.types]
        while todo:
            each = todo.pop()
            if each not in seen:
                seen.add(each)
                todo += [parent for parent in self.parents[each] if parent in self.types]
        order = list(self.types)
        return sorted(seen, key=lambda each: (self.depths.get(each, 0), order.index(each)))

    def recursive(self, name: str) -> bool:
        """Whether the type lies on a cycle of parents."""
        return name in self.ancestors(name)

    def ctx_keys(self, name: str) -> list[str]:
        """Every ctx key a resource of ``name`` may carry: its possible ancestors' and its own."""
        keys: list[str] = []
        for each in [*self.ancestors(name), name]:
            keys += [key for key in self._own(each) if key not in keys]
        return keys

    @cached_property
    def _required(self) -> dict[str, frozenset[str]]:
        """The keys every resource of a type carries, whatever its ancestors: its own and those
        all its parents carry (a fixed point, since parents may form cycles)."""
        every = frozenset(key for name in self.types for key in self._own(name))
        required = {
            name: frozenset(self._own(name)) | (every if self.parents[name] else frozenset())
            for name in self.types
        }
        changed = True
        while changed:
            changed = False
            for name, parents in self.parents.items():
                known = [required[parent] for parent in parents if parent in required]
                if not known:
                    continue
                kept = frozenset(self._own(name)) | frozenset.intersection(*known)
                if kept != required[name]:
                    required[name], changed = kept, True
        return required

    def required_keys(self, name: str) -> list[str]:
        """The ctx keys every resource of ``name`` carries, in ``ctx_keys`` order."""
        return [key for key in self.ctx_keys(name) if key in self._required[name]]

    def _own(self, name: str) -> list[str]:
        own = self.types[name].get("ctx", {}) if isinstance(self.types[name], Mapping) else {}
        return list(own) if isinstance(own, Mapping) else []

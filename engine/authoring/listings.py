"""The resource tree of an API description: each GET that answers a list is a resource type,
and its path parameters are the chain of parents whose listings give them
(``/buckets/{bucket_id}/collections`` is a child of ``/buckets``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.authoring.openapi import Api, Operation
from engine.authoring.paging import properties, selector

PARAM = re.compile(r"\{([^}/]+)\}")
PREFERRED = ("data", "items", "results", "records", "values", "entries", "elements", "content")
ID_FIELDS = ("id", "uuid", "key", "slug", "name")
NAME_FIELDS = ("name", "title", "display_name", "displayName", "login", "full_name", "label")


@dataclass
class Kind:
    """One drafted resource type: its list operation, the records selector, its parent, the
    ctx keys its path parameters take (in order), and the operations on one item."""

    name: str
    listing: Operation
    records: str
    item: dict[str, Any]  # the item's schema
    parent: Kind | None = None
    chain: tuple[str, ...] = ()  # ctx key of each path parameter of the list path
    on_item: dict[str, Operation] = field(default_factory=dict)  # get/put/patch on path/{x}
    create: Operation | None = None  # POST on the list path
    children: list[Kind] = field(default_factory=list)

    @property
    def keys(self) -> tuple[str, ...]:
        """The ctx keys of one of its resources: its ancestors' and its own."""
        return (*self.chain, self.name)


@dataclass
class Tree:
    """The drafted types, parents before children, and the operations left out with why."""

    kinds: list[Kind]
    todos: list[str]


def shape(path: str) -> str:
    """path with every parameter as ``{}``, to match paths whose parameters are named apart."""
    return PARAM.sub("{}", path)


def records_of(api: Api, schema: Any) -> tuple[str, dict[str, Any]] | None:
    """The records selector of a list answer and its item schema, or None: not a list."""
    node = api.resolve(schema)
    if not isinstance(node, dict):
        return None
    if node.get("type") == "array" or "items" in node:
        return "@", _object(api, node.get("items"))
    arrays = [(n, api.resolve(v)) for n, v in properties(api, node)]
    arrays = [(n, v) for n, v in arrays if isinstance(v, dict) and v.get("type") == "array"]
    chosen = next((a for p in PREFERRED for a in arrays if a[0] == p), None)
    if chosen is None and len(arrays) == 1:
        chosen = arrays[0]
    return (selector(chosen[0]), _object(api, chosen[1].get("items"))) if chosen else None


def _object(api: Api, schema: Any) -> dict[str, Any]:
    node = api.resolve(schema)
    return node if isinstance(node, dict) else {}


def build(api: Api) -> Tree:
    """The resource types of api, parents first."""
    tree = Tree([], [])
    by_shape: dict[str, Kind] = {}
    lists = [op for op in api.operations if op.method == "get" and _lists(op)]
    for op in sorted(lists, key=lambda op: (op.path.count("/"), op.path)):
        found = records_of(api, op.answer)
        if found is None:
            tree.todos += [f"{op.label}: {op.unresolved}"] if op.unresolved else []
            continue
        kind = _place(op, found, by_shape, tree)
        if kind is not None:
            by_shape[shape(op.path)] = kind
            tree.kinds.append(kind)
    _attach(api, by_shape)
    return tree


def _lists(op: Operation) -> bool:
    last = op.path.rstrip("/").rsplit("/", 1)[-1]
    return bool(last) and not PARAM.fullmatch(last)


def _place(
    op: Operation, found: tuple[str, dict[str, Any]], by_shape: dict[str, Kind], tree: Tree
) -> Kind | None:
    """op's type, under the type whose listing gives its last path parameter; None (and a
    TODO) when no listing gives it."""
    params = PARAM.findall(op.path)
    parent = None
    if params:
        head = op.path[: op.path.rfind("{" + params[-1] + "}")].rstrip("/")
        parent = by_shape.get(shape(head))
        if parent is None or len(parent.keys) != len(params):
            names = ", ".join(params)
            tree.todos.append(f"{op.label}: no listing gives its path parameters ({names})")
            return None
    taken = {kind.name for kind in tree.kinds}
    kind = Kind(_name(op.path, taken), op, found[0], found[1], parent)
    kind.chain = parent.keys if parent else ()
    if parent is not None:
        parent.children.append(kind)
    return kind


def _name(path: str, taken: set[str]) -> str:
    """A type name from the path's last segment, singular; from more segments when taken."""
    words = [w for w in path.strip("/").split("/") if not PARAM.fullmatch(w)]
    name = _identifier(_singular(words[-1]))
    for more in range(2, len(words) + 1):
        if name not in taken:
            break
        name = _identifier("_".join([*words[-more:-1], _singular(words[-1])]))
    while name in taken:
        name += "_"
    return name


def _singular(word: str) -> str:
    for plural, single in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch")):
        if word.endswith(plural):
            return word[: -len(plural)] + single
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _identifier(text: str) -> str:
    camel = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text).lower()
    name = re.sub(r"[^a-z0-9_]+", "_", camel).strip("_")
    return name if name[:1].isalpha() else f"t_{name}"


def _attach(api: Api, by_shape: dict[str, Kind]) -> None:
    """The item operations (GET/PUT/PATCH on path/{x}) and creates (POST on path) of each
    type."""
    for op in api.operations:
        kind = by_shape.get(shape(op.path))
        if kind is not None and op.method == "post":
            kind.create = op
        head, _, last = op.path.rstrip("/").rpartition("/")
        kind = by_shape.get(shape(head)) if PARAM.fullmatch(last) else None
        if kind is not None and op.method in ("get", "put", "patch"):
            kind.on_item[op.method] = op


def field_of(kind: Kind, candidates: tuple[str, ...]) -> str:
    """The first of candidates the item schema declares, or ''."""
    props = kind.item.get("properties") or {}
    return next((name for name in candidates if name in props), "")


def id_field(kind: Kind) -> tuple[str, str]:
    """The item field that identifies it, and a note when that is a guess."""
    found = field_of(kind, ID_FIELDS)
    if found:
        return found, ""
    item = next(iter(kind.on_item.values()), None)
    param = PARAM.findall(item.path)[-1] if item else ""
    if param:
        return param, f"guess: the item path's parameter {{{param}}} is the item's {param}"
    return "id", "guess: the item schema names no id field"

"""Items as a person names them, turned into the ctx the API takes: ``bucket=b000`` (the ctx
values of a type; ``bucket=b000,collection=c001`` for a nested one; ``TYPE:key=value`` where
two types take the same keys), a ctx as JSON (``{"kind": ...}``), or a name path
(``b000/c001``: names as /api/roots and /api/resources list them, resolved by the session)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.ctx import build_ctx
from engine.errors import RequestError
from engine.language.definition import Definition
from engine.language.model import ResourceType


@dataclass(frozen=True)
class NamePath:
    """Resource names from a root down, to look up by listing."""

    names: tuple[str, ...]


def parse(definition: Definition, text: str) -> dict[str, Any] | NamePath:
    """The ctx an item names, or the name path to look up; RequestError when it cannot be."""
    if text.lstrip().startswith("{"):
        return _json_ctx(definition, text)
    head = text.split("/", maxsplit=1)[0]
    if "=" in head:
        return _pairs_ctx(definition, text)
    names = tuple(part for part in text.split("/") if part)
    if not names:
        raise RequestError(f"item '{text}' names nothing (give key=value, a name path or a ctx)")
    return NamePath(names)


def _json_ctx(definition: Definition, text: str) -> dict[str, Any]:
    try:
        ctx = json.loads(text)
    except ValueError as exc:
        raise RequestError(f"item is not a JSON ctx: {exc}") from None
    definition.resolve_ctx(ctx, ("root", "resource"))
    return dict(ctx)


def _pairs_ctx(definition: Definition, text: str) -> dict[str, Any]:
    named, sign, rest = text.partition(":")
    type_name, body = (named, rest) if sign and "=" not in named else (None, text)
    values: dict[str, Any] = {}
    for pair in body.split(","):
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise RequestError(f"item '{text}': '{pair}' is not key=value")
        values[key.strip()] = value
    kind = _type_of(definition, type_name, set(values), text)
    role = "resource" if kind.parents else "root"
    return build_ctx(definition.id, role, kind.name, values)


def _type_of(
    definition: Definition, type_name: str | None, keys: set[str], text: str
) -> ResourceType:
    if type_name is not None:
        if type_name not in definition.types:
            raise RequestError(
                f"item '{text}': no resource type '{type_name}' ({_known(definition)})"
            )
        return definition.types[type_name]
    fits = [kind for kind in definition.types.values() if set(kind.required_keys) == keys]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise RequestError(
            f"item '{text}': no resource type takes exactly these keys ({_known(definition)})"
        )
    names = ", ".join(kind.name for kind in fits)
    raise RequestError(f"item '{text}': several types take these keys ({names}); write TYPE:{text}")


def _known(definition: Definition) -> str:
    return "; ".join(
        f"{kind.name}: {','.join(f'{key}=...' for key in kind.required_keys)}"
        for kind in definition.types.values()
    )

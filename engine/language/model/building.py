"""Building the model from validated YAML: ``build`` fills every key the YAML leaves out from
the schema node's ``default``, turns lists into tuples, and chooses a kind by its tag."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from engine.language.schema import module_schema

T = TypeVar("T")
Template = Any  # a template string, or a literal the schema allows in its place
Tree = Mapping[str, Any]  # a mapping of templates (query, headers, ctx values, labels)


def build(cls: type[T], raw: Mapping[str, Any]) -> T:
    """``cls`` from its validated YAML mapping, every left-out key filled from the schema."""
    defaults = schema_defaults(cls)
    hints = get_type_hints(cls)
    many: frozenset[str] = getattr(cls, "ONE_OR_MANY", frozenset())
    keep: str | None = getattr(cls, "KEEP", None)
    values: dict[str, Any] = {keep: raw} if keep else {}
    for spec in fields(cls):  # type: ignore[arg-type]
        key = yaml_key(spec.name, cls)
        if spec.name == keep:
            continue
        if key in raw:
            value = raw[key]
            if key in many and not isinstance(value, list):
                value = [value]
        elif key in defaults:
            value = defaults[key]
        elif spec.default is not MISSING:
            continue
        else:
            value = None
        values[spec.name] = convert(hints[spec.name], value)
    return cls(**values)


def convert(hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` says: dataclasses built, lists made tuples, kinds chosen."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return None if value is None else _one_of(get_args(hint), value)
    if origin is tuple:
        item = get_args(hint)[0]
        return tuple(convert(item, one) for one in value or ())
    if is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, str):  # a word standing for a mapping (`upload: raw`)
            value = getattr(hint, "SHORTHAND", {})[value]
        return build(hint, value or {})
    if value is None and _is_mapping(hint):
        return {}
    return value


def _one_of(hints: tuple[Any, ...], value: Any) -> Any:
    """A value of a union: a kind chosen by its tag, the one type besides None, or as it is."""
    options = [hint for hint in hints if hint is not type(None)]
    kinds: list[Any] = [hint for hint in options if is_dataclass(hint)]
    if len(kinds) > 1:
        key = kinds[0].TAG[0]
        return build(next(kind for kind in kinds if kind.TAG[1] == value[key]), value)
    return convert(options[0], value) if len(options) == 1 else value


def _is_mapping(hint: Any) -> bool:
    return hint is Tree or get_origin(hint) is Mapping


def yaml_key(name: str, cls: type[Any] | None = None) -> str:
    """A field's YAML key: the one its class names in ``KEYS``, else its name in camelCase, a
    trailing underscore dropped."""
    named: Mapping[str, str] = getattr(cls, "KEYS", {})
    if name in named:
        return named[name]
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(word.title() for word in rest)


def schema_defaults(cls: type[Any]) -> Mapping[str, Any]:
    """The ``default`` of each property of the schema node ``cls`` models ($refs followed)."""
    return _defaults(cls.SCHEMA)


@cache
def _defaults(pointer: str) -> Mapping[str, Any]:
    schema = module_schema()
    node = _resolve(schema, pointer)
    found = {}
    for key, prop in node.get("properties", {}).items():
        target = _resolve(schema, prop["$ref"]) if "$ref" in prop else prop
        if "default" in prop or "default" in target:
            found[key] = prop.get("default", target.get("default"))
    return found


def schema_properties(cls: type[Any]) -> frozenset[str]:
    """The property names of the schema node ``cls`` models."""
    return frozenset(_resolve(module_schema(), cls.SCHEMA).get("properties", {}))


def _resolve(schema: Mapping[str, Any], pointer: str) -> Mapping[str, Any]:
    node: Any = schema
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    result: Mapping[str, Any] = node
    return result

"""JSON Schema checks: module definitions against the language schema, request bodies against
the wire shapes. The only module that imports jsonschema."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from engine.language.document import Document, Problem, escape, pointer_of

_ENGINE = Path(__file__).resolve().parent.parent
_SCHEMA_PLACES = (_ENGINE / "schemas", _ENGINE.parent / "schemas")  # in the wheel, in the repo
TEMPLATE_NAMES = "x-template-names"
EXPECTED = "x-expected"  # what a valid key looks like, in words, for propertyNames messages


def schema_path(name: str = "module.schema.json") -> Path:
    """Where a shipped schema file is: inside the wheel, or at the repository's top."""
    for folder in _SCHEMA_PLACES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"schema {name} is not shipped with this engine")


@cache
def module_schema() -> dict[str, Any]:
    """The module definition language's JSON Schema (the single source of truth)."""
    loaded: dict[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return loaded


@cache
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=None)


def validator_for(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    """A cached validator for ``schema``."""
    return _validator(json.dumps(schema, sort_keys=True))


def suggest(word: str, candidates: Any) -> str:
    """A "did you mean" suffix for ``word`` among ``candidates``, or an empty string."""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _quote(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else f"'{value}'"


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _type_name(value: Any) -> str:
    table = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
    }
    table |= {float: "a number", type(None): "null"}
    return table.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Issue:
    """One schema problem: where (JSON pointer), whether at the key, and what."""

    pointer: str
    message: str
    at_key: bool = False


@dataclass(frozen=True)
class _Failure:
    """The parts of a jsonschema error that the translations read."""

    pointer: str
    instance: Any
    rule: Any
    schema: Any
    message: str

    @classmethod
    def of(cls, error: ValidationError) -> _Failure:
        pointer = pointer_of(error.absolute_path)
        return cls(pointer, error.instance, error.validator_value, error.schema, error.message)


def _additional(error: _Failure) -> Iterator[Issue]:
    known = list(error.schema.get("properties", {}))
    for key in error.instance:
        if key not in known:
            hint = suggest(key, known)
            yield Issue(f"{error.pointer}/{escape(key)}", f"unknown key '{key}'{hint}", True)


def _required(error: _Failure) -> Iterator[Issue]:
    for key in [key for key in error.rule if key not in error.instance]:
        yield Issue(error.pointer, f"missing required key '{key}'", True)


def _enum(error: _Failure) -> Iterator[Issue]:
    hint = suggest(error.instance, error.rule) if isinstance(error.instance, str) else ""
    listed = ", ".join(str(option) for option in error.rule)
    yield Issue(error.pointer, f"{_quote(error.instance)} is not one of: {listed}{hint}")


def _type(error: _Failure) -> Iterator[Issue]:
    wanted = error.rule if isinstance(error.rule, list) else [error.rule]
    names = " or ".join(_TYPE_NAMES.get(str(name), str(name)) for name in wanted)
    yield Issue(error.pointer, f"expected {names}, got {_type_name(error.instance)}")


def _property_names(error: _Failure) -> Iterator[Issue]:
    key = error.instance
    expected = error.schema.get(EXPECTED) or f"a match for {error.schema.get('pattern')}"
    message = f"'{key}' is not a valid name (expected {expected})"
    yield Issue(f"{error.pointer}/{escape(key)}", message, True)


def _reserved(error: _Failure) -> Iterator[Issue]:
    if error.rule == 0:
        message = "reserved for a later version of the language; leave it out for now"
    else:
        message = f"at most {error.rule} keys allowed"
    yield Issue(error.pointer, message, True)


def _simple(template: str) -> Callable[[_Failure], Iterator[Issue]]:
    def issue(error: _Failure) -> Iterator[Issue]:
        yield Issue(error.pointer, template.format(value=_quote(error.instance), rule=error.rule))

    return issue


def _pattern(error: _Failure) -> Iterator[Issue]:
    expected = error.schema.get(EXPECTED)
    why = f"is invalid: expected {expected}" if expected else f"does not match {error.rule}"
    yield Issue(error.pointer, f"{_quote(error.instance)} {why}")


def _verbatim(error: _Failure) -> Iterator[Issue]:
    yield Issue(error.pointer, error.message)


def _dependent(error: _Failure) -> Iterator[Issue]:
    for key, needs in error.rule.items():
        missing = [need for need in needs if key in error.instance and need not in error.instance]
        for need in missing:
            yield Issue(error.pointer, f"'{key}' needs '{need}' beside it", True)


_TRANSLATIONS: dict[str, Callable[[_Failure], Iterator[Issue]]] = {
    "additionalProperties": _additional,
    "required": _required,
    "enum": _enum,
    "type": _type,
    "propertyNames": _property_names,
    "maxProperties": _reserved,
    "dependentRequired": _dependent,
    "const": _simple("must be {rule!r} here"),
    "pattern": _pattern,
    "minLength": _simple("{value} is too short (at least {rule} characters)"),
    "maxLength": _simple("{value} is too long (at most {rule} characters)"),
    "minimum": _simple("{value} is less than the minimum {rule}"),
    "maximum": _simple("{value} is more than the maximum {rule}"),
    "exclusiveMinimum": _simple("{value} must be more than {rule}"),
    "minItems": _simple("needs at least {rule} item(s)"),
    "minProperties": _simple("needs at least {rule} entry(ies)"),
    "uniqueItems": _simple("has duplicate items"),
}


def issues(schema: Mapping[str, Any], data: Any) -> list[Issue]:
    """Every schema problem of ``data``, translated into short messages with pointers."""
    found: list[Issue] = []
    for error in validator_for(schema).iter_errors(data):
        rule = "propertyNames" if "propertyNames" in error.relative_schema_path else error.validator
        translate = _TRANSLATIONS.get(str(rule), _verbatim)
        found.extend(translate(_Failure.of(error)))
    # jsonschema reports each missing key of a required list as its own error; so do we, once
    return list(dict.fromkeys(found))


def check_definition(document: Document) -> list[Problem]:
    """Every problem of a module definition against the language schema, located."""
    return [
        document.problem(issue.pointer, issue.message, at_key=issue.at_key)
        for issue in issues(module_schema(), document.data)
    ]


@dataclass(frozen=True)
class TemplatePlace:
    """A template string in a definition, with the names its place provides."""

    pointer: str
    source: str
    names: tuple[str, ...]


class _PlaceWalker:
    """Follows a definition and the language schema together, collecting template places."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.places: list[TemplatePlace] = []

    def walk(self, schema: Any, data: Any, pointer: str, names: tuple[str, ...], on: bool) -> None:
        if not isinstance(schema, dict):
            return
        names = tuple(schema.get(TEMPLATE_NAMES, names))
        on = on or bool(schema.get("x-template"))
        if "$ref" in schema:
            self.walk(self._resolve(schema["$ref"]), data, pointer, names, on)
            return
        for sub in schema.get("allOf", []):
            self._branch(sub, data, pointer, names, on)
        if "if" in schema:
            self._branch(schema, data, pointer, names, on)
            return
        self._children(schema, data, pointer, names, on)

    def _branch(self, sub: Any, data: Any, pointer: str, names: tuple[str, ...], on: bool) -> None:
        if "if" not in sub:
            self.walk(sub, data, pointer, names, on)
        else:
            chosen = "then" if validator_for(sub["if"]).is_valid(data) else "else"
            self.walk(sub.get(chosen), data, pointer, names, on)

    def _children(
        self, schema: Any, data: Any, pointer: str, names: tuple[str, ...], on: bool
    ) -> None:
        if isinstance(data, dict):
            props = schema.get("properties", {})
            for key, value in data.items():
                sub = props.get(key, schema.get("additionalProperties", {}))
                self.walk(sub, value, f"{pointer}/{escape(key)}", names, on)
        elif isinstance(data, list):
            for index, value in enumerate(data):
                self.walk(schema.get("items", {}), value, f"{pointer}/{index}", names, on)
        elif isinstance(data, str) and on:
            self.places.append(TemplatePlace(pointer, data, names))

    def _resolve(self, ref: str) -> Any:
        node: Any = self.root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node


def template_places(data: Any, schema: Mapping[str, Any] | None = None) -> list[TemplatePlace]:
    """Every template string in ``data`` with the names its place provides (per the schema)."""
    root = schema if schema is not None else module_schema()
    walker = _PlaceWalker(root)
    walker.walk(root, data, "", (), False)
    return walker.places

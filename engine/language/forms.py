"""The hycu-layout forms (auth, backup options, restore options): their payload, and the rules a
submitted payload must meet. Messages never repeat a submitted value: values may be secrets."""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.language.model import Field, Form

SECRET_SUFFIX = "_secret"

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_TOP_LEVEL = re.compile(r"[A-Za-z]{2,63}")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
_BAD_PATTERN = "cannot be checked: the form's pattern is not a valid regular expression"

Rule = Callable[[Field, Any], str | None]


@dataclass(frozen=True)
class FieldProblem:
    """One submitted value that breaks its field's rules; ``message`` ("is required") never holds
    the value, and leaves naming the field (by its label) to the caller."""

    field: str | None
    key: str | None
    message: str


def payload_fields(form: Form) -> dict[str, str]:
    """Payload key -> field id, for the payload keys whose value is a field id."""
    ids = {field.id for field in form.fields}
    return {
        key: value for key, value in form.payload.items() if isinstance(value, str) and value in ids
    }


def secret_keys(form: Form) -> set[str]:
    """Payload keys that hold secrets: those ending in ``_secret`` and those of password fields."""
    passwords = {field.id for field in form.fields if field.type == "password"}
    mapped = {key for key, field_id in payload_fields(form).items() if field_id in passwords}
    return mapped | {key for key in form.payload if key.endswith(SECRET_SUFFIX)}


def defaults(form: Form) -> dict[str, Any]:
    """The payload an empty submission gives: field defaults where given, literals as they are."""
    by_id = {field.id: field for field in form.fields}
    mapped = payload_fields(form)
    result: dict[str, Any] = {}
    for key, value in form.payload.items():
        if key not in mapped:
            result[key] = value
        elif by_id[mapped[key]].default is not None:
            result[key] = by_id[mapped[key]].default
    return result


def validate_values(form: Form, values: Mapping[str, Any] | None) -> list[FieldProblem]:
    """Every rule that the submitted payload ``values`` breaks, in field order."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        return [FieldProblem(None, None, "the submitted values must be an object")]
    keys = _keys_by_field(form)
    return [
        FieldProblem(field.id, key, predicate)
        for field in form.fields
        for key in keys.get(field.id, [])
        for predicate in _check(field, values.get(key))
    ]


def form_problems(form: Form) -> list[tuple[str, str]]:
    """Author mistakes in ``form``: (JSON pointer relative to the form, message), in form order."""
    used = set(payload_fields(form).values())
    found: list[tuple[str, str]] = []
    for i, column in enumerate(form.columns):
        for j, field in enumerate(column.fields):
            base = f"/columns/{i}/fields/{j}"
            if field.id not in used:
                found.append((f"{base}/id", f"field '{field.id}' is not used by the payload"))
            for check in _AUTHOR_CHECKS:
                found.extend((f"{base}/{where}", message) for where, message in check(field))
    return found + _payload_problems(form)


def _keys_by_field(form: Form) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for key, field_id in payload_fields(form).items():
        keys.setdefault(field_id, []).append(key)
    return keys


def _check(field: Field, value: Any) -> list[str]:
    """What ``value`` breaks, as predicates ("is required"); None and "" count as no value."""
    if value is None or value == "":
        return ["is required"] if field.required else []
    return _value_problems(field, value)


def _value_problems(field: Field, value: Any) -> list[str]:
    wrong_kind = _KINDS[field.type](field, value)
    if wrong_kind:
        return [wrong_kind]
    return [predicate for rule in _RULES if (predicate := rule(field, value))]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps true apart from 1 and false apart from 0."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _text(field: Field, value: Any) -> str | None:
    return None if isinstance(value, str) else "must be text"


def _switch(field: Field, value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _number(field: Field, value: Any) -> str | None:
    return None if _is_number(value) else "must be a number"


def _choice(field: Field, value: Any) -> str | None:
    options = [item.value for item in field.items]
    if any(_same(value, option) for option in options):
        return None
    if not options:
        return "cannot be chosen: the form offers no choices"
    return "must be one of: " + ", ".join(_show(option) for option in options)


_KINDS: dict[str, Rule] = {
    "text": _text,
    "password": _text,
    "switch": _switch,
    "number": _number,
    "dropdown": _choice,
}


def _characters(count: int) -> str:
    return f"{count} character" if count == 1 else f"{count} characters"


def _min_length(field: Field, value: Any) -> str | None:
    least = field.min_length
    if least is None or not isinstance(value, str) or len(value) >= least:
        return None
    return f"must be at least {_characters(least)}"


def _max_length(field: Field, value: Any) -> str | None:
    most = field.max_length
    if most is None or not isinstance(value, str) or len(value) <= most:
        return None
    return f"must be at most {_characters(most)}"


def _pattern(field: Field, value: Any) -> str | None:
    pattern = field.pattern
    if pattern is None or not isinstance(value, str):
        return None
    try:
        matched = re.fullmatch(pattern, value)
    except re.error:
        return _BAD_PATTERN
    return None if matched else f"does not match the pattern {pattern}"


def _is_hostname(text: str) -> bool:
    """An RFC 1123 host name (not ending in a numeric label) or an IP address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        last = text.rsplit(".", 1)[-1]
        return len(text) <= 253 and bool(_HOST_NAME.fullmatch(text)) and not last.isdigit()
    return True


def _is_url(text: str) -> bool:
    """An http or https URL with a host."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # a bad port only shows when read
    except ValueError:
        return False
    host = parts.hostname or ""
    web = parts.scheme in {"http", "https"}
    return web and bool(host) and _is_hostname(host) and not _SPACE.search(text)


def _is_email(text: str) -> bool:
    """A simple local@domain.tld address."""
    local, _, domain = text.rpartition("@")
    top = domain.rsplit(".", 1)[-1]
    return (
        bool(_EMAIL_LOCAL.fullmatch(local))
        and "." in domain
        and _is_hostname(domain)
        and bool(_TOP_LEVEL.fullmatch(top))
    )


_FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "url": (_is_url, "must be a URL (http or https, with a host)"),
    "email": (_is_email, "must be an email address"),
    "hostname": (_is_hostname, "must be a hostname or an IP address"),
}


def _format(field: Field, value: Any) -> str | None:
    name = field.format
    if name is None or not isinstance(value, str):
        return None
    accepts, predicate = _FORMATS[name]
    return None if accepts(value) else predicate


def _minimum(field: Field, value: Any) -> str | None:
    least = field.minimum
    if least is None or not _is_number(value) or value >= least:
        return None
    return f"must be a number at least {_show(least)}"


def _maximum(field: Field, value: Any) -> str | None:
    most = field.maximum
    if most is None or not _is_number(value) or value <= most:
        return None
    return f"must be a number at most {_show(most)}"


_RULES: tuple[Rule, ...] = (_min_length, _max_length, _pattern, _format, _minimum, _maximum)


def _escape(token: str) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _bad_pattern(field: Field) -> Iterator[tuple[str, str]]:
    if field.pattern is None:
        return
    try:
        re.compile(field.pattern)
    except re.error as exc:
        yield "pattern", f"field '{field.id}' has a pattern that does not compile: {exc}"


# the bounds that must not cross: (YAML key, value) of the lower and of the upper bound
_BOUNDS: tuple[Callable[[Field], tuple[tuple[str, Any], tuple[str, Any]]], ...] = (
    lambda field: (("minLength", field.min_length), ("maxLength", field.max_length)),
    lambda field: (("minimum", field.minimum), ("maximum", field.maximum)),
)


def _crossed_bounds(field: Field) -> Iterator[tuple[str, str]]:
    for bounds in _BOUNDS:
        (low, least), (high, most) = bounds(field)
        if least is not None and most is not None and least > most:
            yield low, f"field '{field.id}' has {low} {least} above {high} {most}"


def _no_items(field: Field) -> Iterator[tuple[str, str]]:
    if field.type == "dropdown" and not field.items:
        where = "items" if "items" in field.layout else "type"
        yield where, f"dropdown '{field.id}' has no items"


def _bad_default(field: Field) -> Iterator[tuple[str, str]]:
    if field.default in (None, ""):
        return
    for predicate in _value_problems(field, field.default):
        if predicate != _BAD_PATTERN:  # _bad_pattern reports that once, at the pattern
            yield "default", f"the default of field '{field.id}' {predicate}"


_AUTHOR_CHECKS: tuple[Callable[[Field], Iterator[tuple[str, str]]], ...] = (
    _bad_pattern,
    _crossed_bounds,
    _no_items,
    _bad_default,
)


def _payload_problems(form: Form) -> list[tuple[str, str]]:
    passwords = {field.id for field in form.fields if field.type == "password"}
    return [
        (
            f"/payload/{_escape(key)}",
            f"payload key '{key}' holds password field '{field_id}': "
            f"its name must end in {SECRET_SUFFIX}",
        )
        for key, field_id in payload_fields(form).items()
        if field_id in passwords and not key.endswith(SECRET_SUFFIX)
    ]

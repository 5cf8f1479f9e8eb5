"""The auth settings of a run (the values of the module's auth form, by payload key): from a
JSON or YAML file (--settings), from ENGINE_SETTINGS_<KEY> variables (a variable overrides
the file's key), or, when neither gives any and standard input is a
terminal, asked field by field from the module's own auth form. They are never printed,
logged or written; an error names a key, never a value."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from engine.errors import RequestError
from engine.language.definition import Definition
from engine.language.document import load
from engine.language.forms import defaults, payload_fields, validate_values
from engine.language.model import Field, Form

PREFIX = "ENGINE_SETTINGS_"


def gather(
    definition: Definition, file: Path | None, env: Mapping[str, str], interactive: bool
) -> dict[str, Any]:
    """The settings from file and env; asked from the form when there are none and we may ask."""
    form = definition.auth.form
    given = (_from_file(file) if file else {}) | _from_env(form, env)
    if file is None and not given and interactive and form is not None:
        return ask(form)
    return given


def _from_file(path: Path) -> dict[str, Any]:
    document, problems = load(path)
    if problems:
        raise RequestError(f"--settings: {problems[0]}")
    if not isinstance(document.data, dict):
        raise RequestError(f"--settings: {path} must hold an object of settings (key: value)")
    inner = document.data.get("settings", document.data)  # an AuthInfo's "settings" is taken too
    if not isinstance(inner, dict):
        raise RequestError(f"--settings: 'settings' in {path} must be an object")
    return {str(key): value for key, value in inner.items()}


def _from_env(form: Form | None, env: Mapping[str, str]) -> dict[str, Any]:
    """ENGINE_SETTINGS_<KEY> variables by payload key (matched without case); a switch or
    number field's text read as JSON (true, 8080)."""
    keys = {key.upper(): key for key in (form.payload if form else {})}
    types = _field_types(form)
    found: dict[str, Any] = {}
    for name, text in env.items():
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            key = keys.get(name[len(PREFIX) :], name[len(PREFIX) :].lower())
            found[key] = _typed(types.get(key, "text"), text, name)
    return found


def _field_types(form: Form | None) -> dict[str, str]:
    if form is None:
        return {}
    by_id = {field.id: field.type for field in form.fields}
    return {key: by_id[field_id] for key, field_id in payload_fields(form).items()}


def _typed(kind: str, text: str, name: str) -> Any:
    if kind not in {"switch", "number"}:
        return text
    try:
        return json.loads(text)
    except ValueError:
        raise RequestError(f"{name} must be {_EXPECTED[kind]}") from None


_EXPECTED = {"switch": "true or false", "number": "a number"}


# --------------------------------------------------------------------------- asking


def ask(form: Form) -> dict[str, Any]:
    """Each field of the form asked on the terminal (passwords hidden, defaults shown), until
    its value meets the form's rules; the payload they make."""
    values = defaults(form)
    by_field = {field_id: key for key, field_id in payload_fields(form).items()}
    for field in form.fields:
        key = by_field.get(field.id)
        if key is not None:
            _ask_until_valid(form, field, key, values)
    return {key: value for key, value in values.items() if value not in (None, "")}


def _ask_until_valid(form: Form, field: Field, key: str, values: dict[str, Any]) -> None:
    while True:
        values[key] = _ASKERS[field.type](field, values.get(key))
        problems = [p for p in validate_values(form, {key: values[key]}) if p.key == key]
        if not problems:
            return
        click.echo(f"{field.label} {problems[0].message}", err=True)


def _label(field: Field) -> str:
    return field.label + ("" if field.required else " (optional)")


def _text(field: Field, default: Any) -> Any:
    secret = field.type == "password"
    shown = None if secret or default is None else str(default)
    return click.prompt(
        _label(field), default=shown or "", hide_input=secret, show_default=bool(shown), err=True
    )


def _switch(field: Field, default: Any) -> Any:
    return click.confirm(_label(field), default=bool(default), err=True)


def _number(field: Field, default: Any) -> Any:
    answer = click.prompt(_label(field), default="" if default is None else str(default), err=True)
    try:
        return json.loads(answer) if answer else None
    except ValueError:
        return answer  # the form's rule then says "must be a number"


def _choice(field: Field, default: Any) -> Any:
    values = {str(item.value): item.value for item in field.items}
    for item in field.items:
        click.echo(f"  {item.value}: {item.label}", err=True)
    answer = click.prompt(
        _label(field),
        type=click.Choice(list(values)),
        default=None if default is None else str(default),
        err=True,
    )
    return values[answer]


_ASKERS: dict[str, Callable[[Field, Any], Any]] = {
    "text": _text,
    "password": _text,
    "switch": _switch,
    "number": _number,
    "dropdown": _choice,
}

"""Credential kinds: how the connection's ``auth`` turns settings into request headers.
One function per kind, one table; the JSON Schema lists the same names."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import TemplateError
from engine.templating import render

Apply = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, str]]


def _none(spec: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, str]:
    return {}


def _value(spec: Mapping[str, Any], key: str, names: Mapping[str, Any]) -> str:
    """One credential rendered to text; a TemplateError when it renders to nothing."""
    place = f"/connection/auth/{key}"
    value = render(spec[key], names, place=place)
    if value is None:
        raise TemplateError("rendered to null", place=place)
    return str(value)


def _basic(spec: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, str]:
    user, password = _value(spec, "username", names), _value(spec, "password", names)
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _bearer(spec: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {_value(spec, 'token', names)}"}


KINDS: dict[str, Apply] = {"none": _none, "basic": _basic, "bearer": _bearer}


def headers_for(spec: Mapping[str, Any] | None, names: Mapping[str, Any]) -> dict[str, str]:
    """The headers that carry the credentials described by ``spec``."""
    if spec is None:
        return {}
    return KINDS[spec["kind"]](spec, names)

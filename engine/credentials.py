"""Credential kinds: how the connection's ``auth`` turns settings into request headers.
One function per kind, one table; the JSON Schema lists the same names."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from engine.templating import render

Apply = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, str]]


def _none(spec: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, str]:
    return {}


def _basic(spec: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, str]:
    user = str(render(spec["username"], names, place="/connection/auth/username"))
    password = str(render(spec["password"], names, place="/connection/auth/password"))
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _bearer(spec: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, str]:
    token = str(render(spec["token"], names, place="/connection/auth/token"))
    return {"Authorization": f"Bearer {token}"}


KINDS: dict[str, Apply] = {"none": _none, "basic": _basic, "bearer": _bearer}


def headers_for(spec: Mapping[str, Any] | None, names: Mapping[str, Any]) -> dict[str, str]:
    """The headers that carry the credentials described by ``spec``."""
    if spec is None:
        return {}
    return KINDS[spec["kind"]](spec, names)

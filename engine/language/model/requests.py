"""Requests: what one SaaS request is (method, path, query, headers, body) and the response
rules that judge its answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from engine.language.model.building import Template, Tree


@dataclass(frozen=True)
class ResponseRule:
    """A response rule: match a status and/or a body fragment, then retry, ignore or fail."""

    SCHEMA: ClassVar[str] = "#/$defs/responses/items"
    status: tuple[int, ...]
    body: str | None
    action: str
    message: str | None


@dataclass(frozen=True)
class Request:
    """One SaaS request: method, path, query, headers, body and its response rules."""

    SCHEMA: ClassVar[str] = "#/$defs/request"
    method: str
    path: Template
    query: Tree
    headers: Tree
    body: Any
    responses: tuple[ResponseRule, ...]

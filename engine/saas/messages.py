"""What the SaaS client sends and gets back, apart from HTTP itself: a rendered request
(Outgoing) and its headers and body, an Answer with its JSON and selectors, and what a status
means. The client (engine.saas.client) turns these into httpx calls and back."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from engine.errors import SaasAuthError, SaasError, SelectorError, TemplateError
from engine.language.model import Request
from engine.language.selectors import select
from engine.language.templating import render_tree

AUTH_STATUSES = frozenset({401, 403})
# What httpx cannot send in a header value (it encodes values as ASCII; CR/LF would split them)
_BAD_HEADER_VALUE = re.compile(r"[^\t\x20-\x7e]")
_TEXT = "text/plain; charset=utf-8"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class Answer:
    """A SaaS answer: status, headers, body, the URL it came from, and the request's label."""

    label: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    links: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    @cached_property
    def _parsed(self) -> Any:
        return json.loads(self.body, parse_constant=_reject_constant)

    def json(self) -> Any:
        """The body as JSON; a SaasError naming the request when it is not JSON."""
        try:
            return self._parsed
        except (ValueError, RecursionError) as exc:
            raise SaasError(f"{self.label}: the answer is not JSON") from exc

    def select(self, selector: str) -> Any:
        """What the JMESPath selector picks from the JSON body; SaasError naming both on failure."""
        try:
            return select(selector, self.json())
        except SelectorError as exc:
            raise SaasError(f"{self.label}: the selector '{selector}' failed: {exc}") from exc


@dataclass(frozen=True)
class Downloaded:
    """What a download streamed: its byte count and the answer's Content-Type (None without)."""

    size: int
    content_type: str | None


@dataclass(frozen=True)
class Streamed:
    """A request body streamed from elsewhere (a stored object), never held whole: ``open()``
    starts it anew for each attempt, so a retried request re-reads it from its source.
    ``headers`` are defaults the request's own headers override; ``fixed`` are what the body
    needs whatever they say (a multipart boundary); Content-Length is ``length``."""

    open: Callable[[], AsyncIterator[bytes]]
    length: int
    headers: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    """A rendered request, ready to send."""

    method: str
    url: str
    label: str
    query: Mapping[str, Any]
    headers: Mapping[str, str]
    content: bytes | Streamed | None


def merge_headers(*layers: Mapping[str, Any]) -> dict[str, str]:
    """Header layers merged case-insensitively, later layers winning."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        merged |= {name.lower(): (name, str(value)) for name, value in layer.items()}
    return dict(merged.values())


def check_headers(label: str, headers: Mapping[str, str]) -> None:
    """SaasError naming the header whose value HTTP cannot carry."""
    for name, value in headers.items():
        if _BAD_HEADER_VALUE.search(value):
            raise SaasError(
                f"{label}: the value of header '{name}' holds a character HTTP cannot carry"
                " (non-ASCII or a line break)"
            )


def check_status(label: str, status: int) -> None:
    """SaasAuthError or SaasError for an answer that is no success (redirects included)."""
    if status in AUTH_STATUSES:
        raise SaasAuthError(f"{label}: the SaaS refused the credentials (HTTP {status})")
    if 300 <= status < 400:
        raise SaasError(f"{label}: the SaaS answered HTTP {status} (redirects are not followed)")
    if status >= 400:
        raise SaasError(f"{label}: the SaaS answered HTTP {status}")


def query_value(value: Any) -> str:
    """A query parameter as text (booleans as JSON writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rendered_body(
    spec: Request, names: Mapping[str, Any], place: str
) -> tuple[bytes | None, dict[str, str]]:
    """A request spec's body rendered (text as is, anything else as JSON), with its Content-Type
    header; (None, {}) when it has none."""
    if spec.body is None:
        return None, {}
    body = render_tree(spec.body, names, place=f"{place}/body")
    if isinstance(body, str):
        return body.encode(), {"Content-Type": _TEXT}
    try:
        text = json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TemplateError("the body did not render to plain JSON", place=f"{place}/body") from exc
    return text.encode(), {"Content-Type": "application/json"}

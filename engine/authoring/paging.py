"""Pagination guessed from a list operation's query parameters, answer headers and answer
body: a table of rules tried in order, each giving the ``pagination`` of the list and the
``# guess:`` comment that says what it was guessed from."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.authoring.openapi import Api, Operation

Guess = tuple[dict[str, Any], str]
PAGE_SIZE = 100

NEXT_URLS = (
    "next",
    "next_url",
    "nextUrl",
    "next_page_url",
    "nextPageUrl",
    "nextLink",
    "@odata.nextLink",
)
CURSORS = (
    "next_cursor", "nextCursor", "cursor", "next_page_token", "nextPageToken", "next_token",
    "nextToken", "next_marker", "nextMarker", "continuation", "continuationToken",
)  # fmt: skip
CURSOR_PARAMS = (
    "cursor", "after", "starting_after", "page_token", "pageToken", "next_token", "nextToken",
    "marker", "continuation", "continuationToken",
)  # fmt: skip
PAGE_PARAMS = ("page", "page_number", "pageNumber")
SIZE_PARAMS = ("per_page", "page_size", "pageSize", "perPage", "size", "limit", "count")
OFFSET_PARAMS = ("offset", "skip", "start", "from")
LIMIT_PARAMS = ("limit", "count", "size", "top", "max", "per_page", "pageSize")


def _first(names: Iterable[str], candidates: tuple[str, ...]) -> str:
    present = {name.lower(): name for name in names}
    return next((present[c.lower()] for c in candidates if c.lower() in present), "")


def _link(op: Operation, body: dict[str, str]) -> Guess | None:
    if _first(op.headers, ("Link",)):
        return {"kind": "link"}, "the answer declares a Link header (RFC 8288, rel=next)"
    return None


def _next_header(op: Operation, body: dict[str, str]) -> Guess | None:
    header = next((h for h in op.headers if "next" in h.lower()), "")
    if header:
        return {"kind": "header", "header": header}, f"the answer declares a {header} header"
    return None


def _kinto(op: Operation, body: dict[str, str]) -> Guess | None:
    query = op.names("query")
    if "_token" in query and "_limit" in query:
        note = "_limit and _token parameters, as Kinto's: the next page's URL in Next-Page"
        return {"kind": "header", "header": "Next-Page"}, note
    return None


def _next_url(op: Operation, body: dict[str, str]) -> Guess | None:
    path = _first(body, NEXT_URLS)
    if path:
        return {"kind": "nextUrl", "url": body[path]}, f"the answer's {path} looks like a URL"
    return None


def _cursor(op: Operation, body: dict[str, str]) -> Guess | None:
    param, path = _first(op.names("query"), CURSOR_PARAMS), _first(body, CURSORS)
    if param and path:
        rule = {"kind": "cursor", "cursor": body[path], "param": param}
        return rule, f"the {param} parameter takes the answer's {path}"
    return None


def _page(op: Operation, body: dict[str, str]) -> Guess | None:
    query = op.names("query")
    page = _first(query, PAGE_PARAMS)
    if not page:
        return None
    rule: dict[str, Any] = {"kind": "page", "pageParam": page}
    size = _first(query, SIZE_PARAMS)
    if size:
        rule |= {"sizeParam": size, "size": PAGE_SIZE}
    return rule, f"a {page} parameter{f' and {size}' if size else ''}: pages numbered from 1?"


def _offset(op: Operation, body: dict[str, str]) -> Guess | None:
    query = op.names("query")
    offset, limit = _first(query, OFFSET_PARAMS), _first(query, LIMIT_PARAMS)
    if offset and limit:
        rule = {"kind": "offset", "offsetParam": offset, "limitParam": limit, "limit": PAGE_SIZE}
        return rule, f"{offset} and {limit} parameters"
    return None


RULES: tuple[Callable[[Operation, dict[str, str]], Guess | None], ...] = (
    _link,
    _next_header,
    _kinto,
    _next_url,
    _cursor,
    _page,
    _offset,
)


def guess(api: Api, op: Operation) -> Guess:
    """The pagination of op's list and why; ``none`` when nothing suggests pages."""
    body = body_paths(api, op.answer)
    for rule in RULES:
        found = rule(op, body)
        if found is not None:
            return found
    return {"kind": "none"}, "no page, offset, cursor or next-link parameter or answer"


def body_paths(api: Api, schema: Any) -> dict[str, str]:
    """The answer's properties, at its top and one level down, by name: their JMESPath (the
    first found wins: ``next`` or ``links.next``)."""
    found: dict[str, str] = {}
    for name, _node in properties(api, schema):
        found.setdefault(name, selector(name))
    for name, node in properties(api, schema):
        for inner, _ in properties(api, node):
            found.setdefault(inner, f"{selector(name)}.{selector(inner)}")
    return found


def properties(api: Api, schema: Any) -> list[tuple[str, Any]]:
    node = api.resolve(schema)
    if not isinstance(node, dict):
        return []
    props = dict(node.get("properties") or {})
    for part in node.get("allOf") or []:
        resolved = api.resolve(part)
        props |= resolved.get("properties") or {} if isinstance(resolved, dict) else {}
    return [(str(name), value) for name, value in props.items()]


def selector(name: str) -> str:
    """name as one JMESPath field (quoted unless an identifier)."""
    return name if name.isidentifier() and name.isascii() else '"' + name.replace('"', '\\"') + '"'

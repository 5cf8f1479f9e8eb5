"""Pagination kinds: how a listing goes from one page to the next. Each kind is one function
in one table; the JSON Schema lists the same names. A listing's position is a ``Step``, plain
JSON, so it can travel in a paginationCtx and resume in another call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.client import Answer
from engine.errors import PaginationStopped
from engine.selectors import select

DEFAULT_MAX_PAGES = 1000
_SEEN = 8  # cursors/URLs remembered to catch a listing that loops back
Step = dict[str, Any]
# (rule, step so far, the page's answer, its records) -> the next step, or None at the end
Advance = Callable[[Mapping[str, Any], Step, Answer, Sequence[Any]], "Step | None"]


def first(rule: Mapping[str, Any]) -> Step:
    """The step that fetches a listing's first page."""
    params = _FIRST_PARAMS[rule["kind"]](rule) if rule["kind"] in _FIRST_PARAMS else {}
    return {"pages": 0, "params": params, "url": None}


def advance(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    """The step after ``step`` given its page, or None when the listing is complete.

    Raises PaginationStopped when a safety rule (page cap, repeated cursor or URL, an empty
    page that still names a next page) ends the listing early."""
    following = _KINDS[rule["kind"]](rule, step, answer, records)
    if following is None:
        return None
    cap = int(rule.get("maxPages", DEFAULT_MAX_PAGES))
    if following["pages"] >= cap:
        raise PaginationStopped(f"{answer.label}: pagination stopped at the page cap ({cap} pages)")
    return following


def _next(step: Step, *, params: Mapping[str, Any] | None = None, url: str | None = None) -> Step:
    return {"pages": step["pages"] + 1, "params": dict(params or {}), "url": url}


def _none(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    return None


def _offset(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    limit = int(rule["limit"])
    if len(records) < limit:
        return None
    offset_param = rule.get("offsetParam", "offset")
    offset = int(step["params"].get(offset_param, 0)) + limit
    return _next(step, params={offset_param: offset, rule.get("limitParam", "limit"): limit})


def _page(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    size = rule.get("size")
    if not records or (size is not None and len(records) < int(size)):
        return None
    page_param = rule.get("pageParam", "page")
    params = dict(step["params"]) | {page_param: int(step["params"][page_param]) + 1}
    return _next(step, params=params)


def _token_step(
    rule: Mapping[str, Any],
    step: Step,
    answer: Answer,
    records: Sequence[Any],
    *,
    token: Any,
    what: str,
) -> Step | None:
    if token in (None, ""):
        return None
    token = str(token)
    if not records:
        raise PaginationStopped(
            f"{answer.label}: pagination stopped: an empty page still names a next {what}"
        )
    seen = list(step.get("seen", []))
    if token in seen or token == step.get("url"):
        raise PaginationStopped(f"{answer.label}: pagination stopped: the next {what} repeated")
    if what == "cursor":
        following = _next(step, params={rule["param"]: token})
    else:
        following = _next(step, url=token)
    following["seen"] = [*seen, token][-_SEEN:]
    return following


def _cursor(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    return _token_step(
        rule, step, answer, records, token=select(rule["cursor"], answer.json()), what="cursor"
    )


def _next_url(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    return _token_step(
        rule, step, answer, records, token=select(rule["url"], answer.json()), what="URL"
    )


def _header(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    return _token_step(
        rule, step, answer, records, token=answer.headers.get(rule["header"]), what="URL"
    )


def _link(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    return _token_step(
        rule, step, answer, records, token=answer.links.get(rule.get("rel", "next")), what="URL"
    )


_KINDS: dict[str, Advance] = {
    "none": _none,
    "offset": _offset,
    "page": _page,
    "cursor": _cursor,
    "nextUrl": _next_url,
    "header": _header,
    "link": _link,
}

_FIRST_PARAMS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "offset": lambda rule: {
        rule.get("offsetParam", "offset"): 0,
        rule.get("limitParam", "limit"): rule["limit"],
    },
    "page": lambda rule: (
        {rule.get("pageParam", "page"): rule.get("first", 1)}
        | ({rule["sizeParam"]: rule["size"]} if "sizeParam" in rule else {})
    ),
}

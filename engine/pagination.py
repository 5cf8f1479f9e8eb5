"""Pagination kinds: how a listing goes from one page to the next. Each kind is one function
in one table; the JSON Schema lists the same names. A listing's position is a ``Step``, plain
JSON, so it can travel in a paginationCtx and resume in another call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

from engine.client import Answer
from engine.errors import PaginationStopped, SaasError
from engine.hooks import Hooks
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


def valid(rule: Mapping[str, Any], step: Any) -> bool:
    """Whether ``step``, as a paginationCtx hands it back, is a position in ``rule``'s listing."""
    if not (
        isinstance(step, dict)
        and _is_count(step.get("pages"))
        and isinstance(step.get("params"), dict)
        and isinstance(step.get("url"), str | None)
        and isinstance(step.get("seen", []), list)
        and all(isinstance(token, str) for token in step.get("seen", []))
    ):
        return False
    counters = [name(rule) for name in _COUNTERS.get(rule["kind"], ())]
    return all(_is_count(step["params"].get(counter)) for counter in counters)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def advance(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    """The step after ``step`` given its page, or None when the listing is complete.

    Raises PaginationStopped when a safety rule (page cap, repeated cursor or URL, an empty
    page that still names a next page) ends the listing early, and SaasError when the page
    names its successor with something that is neither a cursor nor a URL."""
    return _capped(rule, _KINDS[rule["kind"]](rule, step, answer, records), answer)


async def next_step(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
) -> Step | None:
    """As advance(), for every kind: a ``hook`` kind asks the module's paginate hook, and its
    answer gets the same safety rules (repeated URLs, empty pages, the page cap)."""
    if rule["kind"] != "hook":
        return advance(rule, step, answer, records)
    decided = await hooks.call(
        "paginate", rule["function"], answer, list(records), dict(step), resource=answer.label
    )
    if decided is None:
        return None
    if "url" in decided:
        following = _token_step(step, answer, records, token=decided["url"], param=None)
    else:
        following = _next(step, params=decided["params"])
    return _capped(rule, following, answer)


def _capped(rule: Mapping[str, Any], following: Step | None, answer: Answer) -> Step | None:
    if following is None:
        return None
    cap = int(rule.get("maxPages", DEFAULT_MAX_PAGES))
    if following["pages"] >= cap:
        raise PaginationStopped(
            f"{answer.label}: pagination stopped: the page cap (maxPages {cap}) was reached"
        )
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
    # Only an empty page ends the listing: a SaaS that caps the limit below the one asked for
    # answers short pages, and stopping on one would silently lose the rest.
    if not records:
        return None
    offset_param = rule.get("offsetParam", "offset")
    offset = int(step["params"].get(offset_param, 0)) + len(records)
    return _next(
        step, params={offset_param: offset, rule.get("limitParam", "limit"): rule["limit"]}
    )


def _page(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    if not records:  # as for offsets: a short page may only mean the SaaS caps the size
        return None
    page_param = rule.get("pageParam", "page")
    params = dict(step["params"]) | {page_param: int(step["params"][page_param]) + 1}
    return _next(step, params=params)


def _token(value: Any, source: str, answer: Answer) -> str | None:
    """A next cursor or URL as text; None (also for "" and false) ends the listing."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        found = type(value).__name__
        raise SaasError(f"{answer.label}: {source} found a {found}, not a cursor or URL")
    return str(value)


def _token_step(
    step: Step,
    answer: Answer,
    records: Sequence[Any],
    *,
    token: str | None,
    param: str | None,
) -> Step | None:
    """The step to a cursor (sent as query ``param``) or, without ``param``, to a next URL."""
    if token is None:
        return None
    what = "cursor" if param is not None else "URL"
    if param is None and answer.url:
        token = urljoin(answer.url, token)  # RFC 3986: relative to the page that named it
    if not records:
        raise PaginationStopped(
            f"{answer.label}: pagination stopped: an empty page still names a next {what}"
        )
    seen = list(step.get("seen", []))
    current = [step["params"].get(param)] if param is not None else [step.get("url"), answer.url]
    if token in seen or token in current:
        raise PaginationStopped(
            f"{answer.label}: pagination stopped: the next {what} repeats an earlier one"
        )
    following = _next(step, params={param: token}) if param is not None else _next(step, url=token)
    following["seen"] = [*seen, token][-_SEEN:]
    return following


def _cursor(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    source = f"the cursor selector '{rule['cursor']}'"
    token = _token(select(rule["cursor"], answer.json()), source, answer)
    return _token_step(step, answer, records, token=token, param=rule["param"])


def _next_url(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    source = f"the next-page selector '{rule['url']}'"
    token = _token(select(rule["url"], answer.json()), source, answer)
    return _token_step(step, answer, records, token=token, param=None)


def _header(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    source = f"the header '{rule['header']}'"
    token = _token(answer.headers.get(rule["header"]), source, answer)
    return _token_step(step, answer, records, token=token, param=None)


def _link(
    rule: Mapping[str, Any], step: Step, answer: Answer, records: Sequence[Any]
) -> Step | None:
    rel = str(rule.get("rel", "next")).lower()
    token = _token(answer.links.get(rel), f"the Link rel '{rel}'", answer)
    return _token_step(step, answer, records, token=token, param=None)


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

# The query parameters that a kind counts with: a resumed step must hold them as numbers.
_COUNTERS: dict[str, tuple[Callable[[Mapping[str, Any]], str], ...]] = {
    "offset": (lambda rule: str(rule.get("offsetParam", "offset")),),
    "page": (lambda rule: str(rule.get("pageParam", "page")),),
}

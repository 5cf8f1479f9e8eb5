"""Reading a whole paginated listing, page by page, for tasks (discovery reads a few pages per
call instead; see discovery.Lister). A failure ends the listing with an error: a backup must
not mistake a partial listing for a complete one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from engine import pagination
from engine.client import Answer, Saas
from engine.errors import HookError, Ignored, SaasError
from engine.templating import render


async def pages(
    saas: Saas, listing: Mapping[str, Any], names: Mapping[str, Any], *, place: str
) -> AsyncIterator[list[Any]]:
    """The records of each page of ``listing`` (a list request, pagination, records selector and
    filter), in order. Raises SaasError or PaginationStopped when the listing cannot complete.

    The next page is fetched while the caller works on the current one (its request is known
    from the current answer): one page ahead at most."""
    rule: Mapping[str, Any] = listing.get("pagination", {"kind": "none"})
    request: Mapping[str, Any] = listing["request"]
    first = pagination.first(rule)
    step: pagination.Step | None = first
    ahead: asyncio.Task[Answer] | None = _ahead(saas, request, names, first, place)
    try:
        while step is not None and ahead is not None:
            try:
                answer = await ahead
            except Ignored:  # a response rule: this page yields nothing, and the listing ends
                return
            records = await records_from(saas, listing, answer, names)
            hooks = saas.definition.hooks
            following = await pagination.next_step(rule, step, answer, records, hooks)
            if following is not None and following["url"] is not None:
                following["url"] = saas.resolve(following["url"], answer.label)
            ahead = None
            if following is not None:
                ahead = _ahead(saas, request, names, following, place)
            yield _kept(listing.get("filter"), records, names, place)
            step = following
    finally:
        if ahead is not None and not ahead.done():  # the caller stopped reading
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)


def _ahead(
    saas: Saas,
    request: Mapping[str, Any],
    names: Mapping[str, Any],
    step: pagination.Step,
    place: str,
) -> asyncio.Task[Answer]:
    """A page's request, on its way while the page before is worked on."""
    page = asyncio.ensure_future(_fetch(saas, request, names, step, place))
    # a page the caller never reads (it failed on the one before) must not warn when collected
    page.add_done_callback(lambda done: done.cancelled() or done.exception())
    return page


async def _fetch(
    saas: Saas,
    request: Mapping[str, Any],
    names: Mapping[str, Any],
    step: pagination.Step,
    place: str,
) -> Answer:
    if step["url"] is None:
        return await saas.send(request, names, place=f"{place}/request", params=step["params"])
    label = f"GET {request['path']} (page {step['pages'] + 1})"
    return await saas.follow(step["url"], label, request, names, place=f"{place}/request")


async def records_from(
    saas: Saas, listing: Mapping[str, Any], answer: Answer, names: Mapping[str, Any]
) -> list[Any]:
    """A page's records: the listing's parse hook's, or what its records selector picks."""
    if "parse" not in listing:
        return records_of(answer, str(listing.get("records", "@")))
    ctx = dict(names.get("ctx", {}))
    records = await saas.definition.hooks.call(
        "parse", listing["parse"], answer, ctx, resource=answer.label
    )
    if not isinstance(records, list):
        raise HookError(
            f"hook '{listing['parse']}' (parse) returned {type(records).__name__} on"
            f" {answer.label}; expected a list of records"
        )
    return records


def records_of(answer: Answer, selector: str) -> list[Any]:
    """The list ``selector`` picks from a JSON answer; SaasError naming both when there is none."""
    records = answer.select(selector)
    if not isinstance(records, list):
        raise SaasError(f"{answer.label}: the selector '{selector}' found no list in the answer")
    return records


def _kept(
    condition: str | None, records: list[Any], names: Mapping[str, Any], place: str
) -> list[Any]:
    if condition is None:
        return records
    ctx = names.get("ctx", {})
    return [
        item
        for item in records
        if render(condition, {"ctx": ctx, "item": item}, place=f"{place}/filter")
    ]

"""Reading a whole paginated listing, page by page, for tasks (discovery reads a few pages per
call instead; see discovery.Lister). A failure ends the listing with an error: a backup must
not mistake a partial listing for a complete one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError, HookError, Ignored, SaasError, SelectorError
from engine.language.model import Listing
from engine.language.selectors import select
from engine.language.templating import render
from engine.saas import pagination, recorder
from engine.saas.client import Saas
from engine.saas.messages import Answer

# turns of the event loop a request asked for early gets to go out (a pooled connection's locks
# and the socket's write take a few); a few microseconds each
SENDING_TURNS = 10
_UNREAD: list[Any] = [None]  # a page's records before they are read: taken as not empty


@dataclass(frozen=True)
class PageReader:
    """Reads the pages of one list (its request, pagination, records selector or parse hook):
    the request of a step, the records of an answer, and the step after it. Discovery and tasks
    both read pages through it, each with its own policy for what a failure means."""

    saas: Saas
    listing: Listing
    names: Mapping[str, Any]
    place: str
    paging: pagination.Paging = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paging", pagination.paging(self.listing.pagination))

    def first(self) -> pagination.Step:
        """The step of the first page."""
        return self.paging.first()

    async def fetch(self, step: pagination.Step) -> Answer:
        """The answer for ``step`` (its query parameters, or the next URL it holds)."""
        request = self.listing.request
        place = f"{self.place}/request"
        if step["url"] is None:
            return await self.saas.send(request, self.names, place=place, params=step["params"])
        label = f"GET {request.path} (page {step['pages'] + 1})"
        return await self.saas.follow(step["url"], label, request, self.names, place=place)

    async def records(self, answer: Answer) -> list[Any]:
        """A page's records: the list's parse hook's, or what its records selector picks."""
        records = await self._records(answer)
        if recorder.on():
            recorder.selected(answer.url, records)
        return records

    async def _records(self, answer: Answer) -> list[Any]:
        hook = self.listing.parse
        if hook is None:
            return records_of(answer, self.listing.records)
        ctx = dict(self.names.get("ctx", {}))
        records = await self.saas.definition.hooks.call(
            "parse", hook, answer, ctx, resource=answer.label
        )
        if not isinstance(records, list):
            raise HookError(
                f"hook '{hook}' (parse) returned {type(records).__name__} on {answer.label};"
                " expected a list of records"
            )
        return records

    async def early(self, step: pagination.Step, answer: Answer) -> pagination.Step | None:
        """The next page's step from the answer's headers alone, before its records are read
        (header and Link pagination); None for the other kinds, and where the rules refuse it
        (``next``, once the records are read, then says why)."""
        if not self.paging.in_headers:
            return None
        try:
            return await self.next(step, answer, _UNREAD)
        except EngineError:
            return None

    async def next(
        self, step: pagination.Step, answer: Answer, records: list[Any]
    ) -> pagination.Step | None:
        """The step after ``step``, its URL (if any) refused before any request when it
        leaves the origin of the base URL."""
        hooks = self.saas.definition.hooks
        following = await self.paging.next(step, answer, records, hooks)
        if following is not None and following["url"] is not None:
            following["url"] = self.saas.resolve(following["url"], answer.label)
        return following


async def pages(
    saas: Saas, listing: Listing, names: Mapping[str, Any], *, place: str
) -> AsyncIterator[list[Any]]:
    """The records of each page of ``listing`` (a list request, pagination, records selector and
    filter), in order. Raises SaasError or PaginationStopped when the listing cannot complete.

    The next page is fetched while the caller works on the current one (its request is known
    from the current answer): one page ahead at most; where the answer's headers name it, while
    the current one's records are read too."""
    reader = PageReader(saas, listing, names, place)
    first = reader.first()
    step: pagination.Step | None = first
    ahead: asyncio.Task[Answer] | None = _ahead(reader, first)
    try:
        while step is not None and ahead is not None:
            try:
                answer = await ahead
            except Ignored:  # a response rule: this page yields nothing, and the listing ends
                return
            ahead = await _early(reader, step, answer)
            records = await reader.records(answer)
            following = await reader.next(step, answer, records)
            if following is not None and recorder.past_limit(following["pages"]):
                following = None  # a workbench sample reads the first pages only
            if ahead is None and following is not None:
                ahead = _ahead(reader, following)
            yield _kept(listing.filter, records, names, place, answer.url)
            step = following
    finally:
        if ahead is not None and not ahead.done():  # the caller stopped reading
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)


async def _early(
    reader: PageReader, step: pagination.Step, answer: Answer
) -> asyncio.Task[Answer] | None:
    """The next page asked for before this one's records are read, when its headers name it
    (the SaaS makes the next page while this one is parsed), and a few turns of the event loop
    given to the request to go out before the parsing holds the loop."""
    following = await reader.early(step, answer)
    if following is None or recorder.past_limit(following["pages"]):
        return None
    page = _ahead(reader, following)
    for _ in range(SENDING_TURNS):  # the parsing holds the loop: the request goes out first
        await asyncio.sleep(0)
    return page


def _ahead(reader: PageReader, step: pagination.Step) -> asyncio.Task[Answer]:
    """A page's request, on its way while the page before is worked on."""
    page = asyncio.ensure_future(reader.fetch(step))
    # a page the caller never reads (it failed on the one before) must not warn when collected
    page.add_done_callback(lambda done: done.cancelled() or done.exception())
    return page


def records_of(answer: Answer, selector: str) -> list[Any]:
    """The list ``selector`` picks from a JSON answer; SaasError naming both when there is none."""
    what = f"the records selector '{selector}'"
    try:
        body = answer.json()
    except SaasError as exc:
        raise SaasError(f"{exc.message}, so {what} cannot apply") from exc
    try:
        records = select(selector, body)
    except SelectorError as exc:
        raise SaasError(f"{answer.label}: {what} failed on the answer: {exc}") from exc
    if not isinstance(records, list):
        raise SaasError(f"{answer.label}: {what} found no list in the answer")
    return records


def _kept(
    condition: str | None, records: list[Any], names: Mapping[str, Any], place: str, url: str
) -> list[Any]:
    if condition is None:
        return records
    ctx = names.get("ctx", {})
    kept = [
        item
        for item in records
        if render(condition, {"ctx": ctx, "item": item}, place=f"{place}/filter")
    ]
    if recorder.on():
        recorder.kept(url, kept)
    return kept

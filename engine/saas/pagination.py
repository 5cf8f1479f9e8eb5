"""Pagination kinds: how a listing goes from one page to the next. Each kind is one class that
knows its first page and the page after a given one, holding a list's typed ``pagination`` rule
(engine.language.model; its defaults filled from the schema at load); one table maps each rule
class to its kind. A listing's position is a ``Step``, plain JSON, so it can
travel in a paginationCtx and resume in another call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urljoin

from engine.errors import PaginationStopped, SaasError
from engine.language import model
from engine.language.hooks import Hooks
from engine.language.selectors import select
from engine.saas.messages import Answer

_SEEN = 8  # cursors/URLs remembered to catch a listing that loops back
Step = dict[str, Any]


class _Capped(Protocol):
    @property
    def max_pages(self) -> int: ...


R = TypeVar("R", bound=_Capped)


@dataclass(frozen=True)
class Paging:
    """One pagination kind (this base: a listing of one page)."""

    # whether an answer's headers alone name the next page (its records matter only in that an
    # empty page must name none): the next page can then be asked for before they are read
    in_headers: ClassVar[bool] = False

    def cap(self) -> int | None:
        """The most pages the listing may take (None: no next page is ever asked for)."""
        return None

    def first(self) -> Step:
        """The step that fetches the first page."""
        return {"pages": 0, "params": self.first_params(), "url": None}

    def first_params(self) -> dict[str, Any]:
        """The first page's query parameters."""
        return {}

    def counters(self) -> tuple[str, ...]:
        """The query parameters this kind counts with (a resumed step holds them as numbers)."""
        return ()

    def valid(self, step: Any) -> bool:
        """Whether ``step``, as a paginationCtx hands it back, is a position in this listing."""
        return (
            isinstance(step, dict)
            and _is_count(step.get("pages"))
            and isinstance(step.get("params"), dict)
            and isinstance(step.get("url"), str | None)
            and isinstance(step.get("seen", []), list)
            and all(isinstance(token, str) for token in step.get("seen", []))
            and all(_is_count(step["params"].get(name)) for name in self.counters())
        )

    async def next(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        """The step after ``step`` given its page, or None when the listing is complete.

        Raises PaginationStopped when a safety rule (page cap, repeated cursor or URL, an empty
        page that still names a next page) ends the listing early, and SaasError when the page
        names its successor with something that is neither a cursor nor a URL."""
        following = await self.after(step, answer, records, hooks)
        cap = self.cap()
        if following is not None and cap is not None and following["pages"] >= cap:
            raise PaginationStopped(
                f"{answer.label}: pagination stopped: the page cap (maxPages {cap}) was reached"
            )
        return following

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        """The kind's own rule for the next step (before the page cap)."""
        return None


@dataclass(frozen=True)
class _Paged(Paging, Generic[R]):
    """A kind that may go on to a next page, up to its rule's ``maxPages``."""

    rule: R

    def cap(self) -> int | None:
        return self.rule.max_pages


@dataclass(frozen=True)
class Offset(_Paged[model.OffsetPaging]):
    """``?offset=N&limit=M``, the offset grown by the records each page gave."""

    def first_params(self) -> dict[str, Any]:
        return {self.rule.offset_param: 0, self.rule.limit_param: self.rule.limit}

    def counters(self) -> tuple[str, ...]:
        return (self.rule.offset_param,)

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        # Only an empty page ends the listing: a SaaS that caps the limit below the one asked for
        # answers short pages, and stopping on one would silently lose the rest.
        if not records:
            return None
        rule = self.rule
        offset = int(step["params"].get(rule.offset_param, 0)) + len(records)
        return _next(step, params={rule.offset_param: offset, rule.limit_param: rule.limit})


@dataclass(frozen=True)
class PageNumber(_Paged[model.PagePaging]):
    """``?page=N`` (and an optional page size), counting from ``first``."""

    def first_params(self) -> dict[str, Any]:
        rule = self.rule
        sized = {rule.size_param: rule.size} if rule.size_param is not None else {}
        return {rule.page_param: rule.first} | sized

    def counters(self) -> tuple[str, ...]:
        return (self.rule.page_param,)

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        if not records:  # as for offsets: a short page may only mean the SaaS caps the size
            return None
        page = self.rule.page_param
        params = dict(step["params"]) | {page: int(step["params"][page]) + 1}
        return _next(step, params=params)


@dataclass(frozen=True)
class Cursor(_Paged[model.CursorPaging]):
    """A cursor picked from the answer's body, sent back as a query parameter."""

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        source = f"the cursor selector '{self.rule.cursor}'"
        token = _token(select(self.rule.cursor, answer.json()), source, answer)
        return _token_step(step, answer, records, token=token, param=self.rule.param)


@dataclass(frozen=True)
class NextUrl(_Paged[model.NextUrlPaging]):
    """The next page's URL, picked from the answer's body."""

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        source = f"the next-page selector '{self.rule.url}'"
        token = _token(select(self.rule.url, answer.json()), source, answer)
        return _token_step(step, answer, records, token=token, param=None)


@dataclass(frozen=True)
class Header(_Paged[model.HeaderPaging]):
    """The next page's URL in a header of the answer (Kinto's ``Next-Page``)."""

    in_headers: ClassVar[bool] = True

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        header = self.rule.header
        token = _token(answer.headers.get(header), f"the header '{header}'", answer)
        return _token_step(step, answer, records, token=token, param=None)


@dataclass(frozen=True)
class Link(_Paged[model.LinkPaging]):
    """The next page's URL in the answer's ``Link`` header (RFC 8288), by relation."""

    in_headers: ClassVar[bool] = True

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        rel = self.rule.rel.lower()
        token = _token(answer.links.get(rel), f"the Link rel '{rel}'", answer)
        return _token_step(step, answer, records, token=token, param=None)


@dataclass(frozen=True)
class Hook(_Paged[model.HookPaging]):
    """The module's paginate hook decides; its answer gets the same safety rules."""

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        decided = await hooks.call(
            "paginate", self.rule.function, answer, list(records), dict(step), resource=answer.label
        )
        if decided is None:
            return None
        if "url" in decided:
            return _token_step(step, answer, records, token=decided["url"], param=None)
        return _next(step, params=decided["params"])


NONE = Paging()
# each pagination rule of the model and the kind that follows it
KINDS: dict[type[Any], Callable[[Any], Paging]] = {
    model.NoPaging: lambda rule: NONE,
    model.OffsetPaging: Offset,
    model.PagePaging: PageNumber,
    model.CursorPaging: Cursor,
    model.NextUrlPaging: NextUrl,
    model.HeaderPaging: Header,
    model.LinkPaging: Link,
    model.HookPaging: Hook,
}


def paging(rule: model.Pagination | None) -> Paging:
    """The pagination kind of a list's ``pagination`` rule (None: one page)."""
    return NONE if rule is None else KINDS[type(rule)](rule)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _next(step: Step, *, params: Mapping[str, Any] | None = None, url: str | None = None) -> Step:
    return {"pages": step["pages"] + 1, "params": dict(params or {}), "url": url}


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

"""Pagination kinds: how a listing goes from one page to the next. Each kind is one class that
knows its first page and the page after a given one, built from a list's ``pagination`` rule
(every default stated once, as a field); one table maps the YAML's kind names, which the JSON
Schema lists too, to the classes. A listing's position is a ``Step``, plain JSON, so it can
travel in a paginationCtx and resume in another call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import urljoin

from engine.errors import PaginationStopped, SaasError
from engine.language.hooks import Hooks
from engine.language.selectors import select
from engine.saas.messages import Answer

_SEEN = 8  # cursors/URLs remembered to catch a listing that loops back
Step = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Paging:
    """One pagination kind (this base: a listing of one page). ``KEYS`` maps the rule's YAML
    keys to the fields they set; a key the rule leaves out keeps the field's default."""

    KEYS: ClassVar[Mapping[str, str]] = {}
    max_pages: int = 1000

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Self:
        """The kind as ``rule`` configures it (the rule is valid: the schema checked it)."""
        keys = {"maxPages": "max_pages", **cls.KEYS}
        return cls(**{keys[key]: value for key, value in rule.items() if key in keys})

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
        if following is not None and following["pages"] >= self.max_pages:
            raise PaginationStopped(
                f"{answer.label}: pagination stopped: the page cap (maxPages {self.max_pages})"
                " was reached"
            )
        return following

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        """The kind's own rule for the next step (before the page cap)."""
        return None


@dataclass(frozen=True, kw_only=True)
class Offset(Paging):
    """``?offset=N&limit=M``, the offset grown by the records each page gave."""

    KEYS: ClassVar[Mapping[str, str]] = {
        "limit": "limit",
        "offsetParam": "offset_param",
        "limitParam": "limit_param",
    }
    limit: int
    offset_param: str = "offset"
    limit_param: str = "limit"

    def first_params(self) -> dict[str, Any]:
        return {self.offset_param: 0, self.limit_param: self.limit}

    def counters(self) -> tuple[str, ...]:
        return (self.offset_param,)

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        # Only an empty page ends the listing: a SaaS that caps the limit below the one asked for
        # answers short pages, and stopping on one would silently lose the rest.
        if not records:
            return None
        offset = int(step["params"].get(self.offset_param, 0)) + len(records)
        return _next(step, params={self.offset_param: offset, self.limit_param: self.limit})


@dataclass(frozen=True, kw_only=True)
class PageNumber(Paging):
    """``?page=N`` (and an optional page size), counting from ``first``."""

    KEYS: ClassVar[Mapping[str, str]] = {
        "pageParam": "page_param",
        "first": "first_page",
        "sizeParam": "size_param",
        "size": "size",
    }
    page_param: str = "page"
    first_page: int = 1
    size_param: str | None = None
    size: int | None = None

    def first_params(self) -> dict[str, Any]:
        sized = {self.size_param: self.size} if self.size_param is not None else {}
        return {self.page_param: self.first_page} | sized

    def counters(self) -> tuple[str, ...]:
        return (self.page_param,)

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        if not records:  # as for offsets: a short page may only mean the SaaS caps the size
            return None
        params = dict(step["params"]) | {self.page_param: int(step["params"][self.page_param]) + 1}
        return _next(step, params=params)


@dataclass(frozen=True, kw_only=True)
class Cursor(Paging):
    """A cursor picked from the answer's body, sent back as a query parameter."""

    KEYS: ClassVar[Mapping[str, str]] = {"cursor": "cursor", "param": "param"}
    cursor: str
    param: str

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        source = f"the cursor selector '{self.cursor}'"
        token = _token(select(self.cursor, answer.json()), source, answer)
        return _token_step(step, answer, records, token=token, param=self.param)


@dataclass(frozen=True, kw_only=True)
class NextUrl(Paging):
    """The next page's URL, picked from the answer's body."""

    KEYS: ClassVar[Mapping[str, str]] = {"url": "url"}
    url: str

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        source = f"the next-page selector '{self.url}'"
        token = _token(select(self.url, answer.json()), source, answer)
        return _token_step(step, answer, records, token=token, param=None)


@dataclass(frozen=True, kw_only=True)
class Header(Paging):
    """The next page's URL in a header of the answer (Kinto's ``Next-Page``)."""

    KEYS: ClassVar[Mapping[str, str]] = {"header": "header"}
    header: str

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        token = _token(answer.headers.get(self.header), f"the header '{self.header}'", answer)
        return _token_step(step, answer, records, token=token, param=None)


@dataclass(frozen=True, kw_only=True)
class Link(Paging):
    """The next page's URL in the answer's ``Link`` header (RFC 8288), by relation."""

    KEYS: ClassVar[Mapping[str, str]] = {"rel": "rel"}
    rel: str = "next"

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        rel = self.rel.lower()
        token = _token(answer.links.get(rel), f"the Link rel '{rel}'", answer)
        return _token_step(step, answer, records, token=token, param=None)


@dataclass(frozen=True, kw_only=True)
class Hook(Paging):
    """The module's paginate hook decides; its answer gets the same safety rules."""

    KEYS: ClassVar[Mapping[str, str]] = {"function": "function"}
    function: str

    async def after(
        self, step: Step, answer: Answer, records: Sequence[Any], hooks: Hooks
    ) -> Step | None:
        decided = await hooks.call(
            "paginate", self.function, answer, list(records), dict(step), resource=answer.label
        )
        if decided is None:
            return None
        if "url" in decided:
            return _token_step(step, answer, records, token=decided["url"], param=None)
        return _next(step, params=decided["params"])


KINDS: dict[str, type[Paging]] = {
    "none": Paging,
    "offset": Offset,
    "page": PageNumber,
    "cursor": Cursor,
    "nextUrl": NextUrl,
    "header": Header,
    "link": Link,
    "hook": Hook,
}
NONE = Paging()


def paging(rule: Mapping[str, Any] | None) -> Paging:
    """The pagination kind a list's ``pagination`` rule names (None: one page)."""
    if rule is None:
        return NONE
    return KINDS[rule["kind"]].of({key: value for key, value in rule.items() if key != "kind"})


def rule_keys(kind: str) -> frozenset[str]:
    """The YAML keys a kind reads (besides ``kind`` and ``maxPages``)."""
    return frozenset(KINDS[kind].KEYS)


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

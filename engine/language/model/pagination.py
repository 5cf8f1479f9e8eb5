"""Pagination rules, one class per kind (chosen by ``kind``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class NoPaging:
    """A listing of one page."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationNone"
    TAG: ClassVar[tuple[str, str]] = ("kind", "none")


@dataclass(frozen=True)
class OffsetPaging:
    """``?offset=N&limit=M``."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationOffset"
    TAG: ClassVar[tuple[str, str]] = ("kind", "offset")
    offset_param: str
    limit_param: str
    limit: int
    max_pages: int


@dataclass(frozen=True)
class PagePaging:
    """``?page=N`` and an optional page size."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationPage"
    TAG: ClassVar[tuple[str, str]] = ("kind", "page")
    page_param: str
    first: int
    size_param: str | None
    size: int | None
    max_pages: int


@dataclass(frozen=True)
class CursorPaging:
    """A cursor from the answer, sent back as a query parameter."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationCursor"
    TAG: ClassVar[tuple[str, str]] = ("kind", "cursor")
    cursor: str
    param: str
    max_pages: int


@dataclass(frozen=True)
class NextUrlPaging:
    """The next page's URL from the answer's body."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationNextUrl"
    TAG: ClassVar[tuple[str, str]] = ("kind", "nextUrl")
    url: str
    max_pages: int


@dataclass(frozen=True)
class HeaderPaging:
    """The next page's URL from a header."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationHeader"
    TAG: ClassVar[tuple[str, str]] = ("kind", "header")
    header: str
    max_pages: int


@dataclass(frozen=True)
class LinkPaging:
    """The next page's URL from the ``Link`` header, by relation."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationLink"
    TAG: ClassVar[tuple[str, str]] = ("kind", "link")
    rel: str
    max_pages: int


@dataclass(frozen=True)
class HookPaging:
    """The next page decided by a hook."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationHook"
    TAG: ClassVar[tuple[str, str]] = ("kind", "hook")
    function: str
    max_pages: int


Pagination = (
    NoPaging
    | OffsetPaging
    | PagePaging
    | CursorPaging
    | NextUrlPaging
    | HeaderPaging
    | LinkPaging
    | HookPaging
)

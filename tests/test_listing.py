"""engine.listing against the real paged server: a whole listing read page by page with its
filter applied, and every failure (an answer that is not JSON, a selector that finds no list, a
pagination safety stop) ending it with an error that names the request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.errors import PaginationStopped, SaasError
from engine.language.model import Listing, build
from engine.saas.client import Answer, Outbound, Saas, new_pool
from engine.saas.gate import Gate
from engine.saas.listing import pages, records_of
from tests.paged_server import PagedServer, serve
from tests.taskparts import shelf

pytestmark = pytest.mark.anyio

N_ITEMS = 47
CURSOR = {"kind": "cursor", "cursor": "next", "param": "cursor"}
NEXT_URL = {"kind": "nextUrl", "url": "links.next"}


@pytest.fixture(scope="module")
def server() -> Iterator[PagedServer]:
    with serve(items=N_ITEMS, page_size=10) as running:
        yield running


@pytest.fixture
def paged(server: PagedServer) -> PagedServer:
    server.clear()
    return server


async def read(
    base: str,
    path: str,
    rule: dict[str, Any] | None = None,
    *,
    into: list[Any] | None = None,
    ctx: dict[str, Any] | None = None,
    **listing: Any,
) -> list[list[Any]]:
    """Every page of the listing of ``path`` (collected into ``into`` as they come)."""
    found: list[list[Any]] = [] if into is None else into
    spec = {"request": {"path": path}, "records": "items"} | listing
    if rule is not None:
        spec["pagination"] = rule
    async with new_pool() as pool:
        saas = Saas(Outbound(pool, Gate(4)), shelf(), {"url": base})
        names = {"settings": saas.settings, "ctx": ctx or {}}
        async for page in pages(saas, build(Listing, spec), names, place="/resources/bucket/list"):
            found.append(page)
    return found


def numbers(found: list[list[Any]]) -> list[list[int]]:
    return [[item["n"] for item in page] for page in found]


def tens(keep: Callable[[int], bool] = lambda n: True) -> list[list[int]]:
    """The item numbers of each page of ten, those ``keep`` accepts."""
    return [
        [n for n in range(start, min(start + 10, N_ITEMS)) if keep(n)]
        for start in (0, 10, 20, 30, 40)
    ]


# --------------------------------------------------------------------------- whole listings


async def test_a_listing_without_pagination_is_one_page_of_every_record(paged: PagedServer):
    assert numbers(await read(paged.url, "/all")) == [list(range(N_ITEMS))]


@pytest.mark.parametrize("rule", [CURSOR, NEXT_URL], ids=["cursor", "nextUrl"])
async def test_every_page_is_read_in_order(paged: PagedServer, rule: dict[str, Any]):
    path = "/cursor" if rule is CURSOR else "/next-url"

    assert numbers(await read(paged.url, path, rule)) == tens()
    assert len(paged.received(path)) == 5


async def test_the_next_page_is_asked_for_while_the_caller_works_on_the_current_one(
    paged: PagedServer,
):
    spec = {"request": {"path": "/cursor"}, "records": "items", "pagination": CURSOR}
    async with new_pool() as pool:
        saas = Saas(Outbound(pool, Gate(4)), shelf(), {"url": paged.url})
        names = {"settings": saas.settings, "ctx": {}}
        listing = pages(saas, build(Listing, spec), names, place="/resources/bucket/list")
        first = await anext(listing)
        for _ in range(200):  # the caller holds the first page; the second is on its way
            if len(paged.received("/cursor")) == 2:
                break
            await asyncio.sleep(0.01)
        second_asked = len(paged.received("/cursor"))
        await listing.aclose()  # stopping early: the page on its way is dropped, not awaited

    assert numbers([first]) == [list(range(10))]
    assert second_asked == 2
    assert len(paged.received("/cursor")) == 2


@pytest.mark.parametrize(
    ("path", "rule"),
    [("/header", {"kind": "header", "header": "Next-Page"}), ("/link", {"kind": "link"})],
    ids=["header", "link"],
)
async def test_a_next_page_named_in_the_headers_is_asked_for_before_the_records_are_read(
    paged: PagedServer, path: str, rule: dict[str, Any]
):
    """The SaaS makes the next page while this one is parsed: the page-2 request goes out
    before page 1's records are read (here a selector that fails on them, so they never are)."""
    with pytest.raises(SaasError, match="found no list"):
        await read(paged.url, path, rule, records="nothing")
    for _ in range(200):
        if len(paged.received(path)) == 2:
            break
        await asyncio.sleep(0.01)

    assert len(paged.received(path)) == 2


async def test_a_next_page_named_in_the_body_waits_for_the_records(paged: PagedServer):
    with pytest.raises(SaasError, match="found no list"):
        await read(paged.url, "/cursor", CURSOR, records="nothing")
    await asyncio.sleep(0.2)

    assert len(paged.received("/cursor")) == 1


async def test_each_page_yields_only_the_records_the_filter_keeps(paged: PagedServer):
    found = await read(paged.url, "/cursor", CURSOR, filter="{{ item.n % 3 == 0 }}")

    assert numbers(found) == tens(lambda n: n % 3 == 0)


async def test_the_filter_sees_the_ctx_and_a_page_it_empties_is_still_yielded(paged: PagedServer):
    found = await read(
        paged.url, "/cursor", CURSOR, ctx={"below": 12}, filter="{{ item.n < ctx.below }}"
    )

    assert numbers(found) == [list(range(10)), [10, 11], [], [], []]


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/fail/not-json",
            "GET /fail/not-json: the answer is not JSON, so the records selector 'items'"
            " cannot apply",
        ),
        (
            "/fail/nan",
            "GET /fail/nan: the answer is not JSON, so the records selector 'items' cannot apply",
        ),
        (
            "/fail/no-items",
            "GET /fail/no-items: the records selector 'items' found no list in the answer",
        ),
        ("/fail/500", "GET /fail/500: the SaaS answered HTTP 500"),
    ],
)
async def test_a_first_page_that_fails_is_a_saas_error_naming_the_request(
    paged: PagedServer, path: str, message: str
):
    with pytest.raises(SaasError) as caught:
        await read(paged.url, path, CURSOR)
    assert caught.value.message == message


async def test_a_selector_that_picks_something_else_than_a_list_is_named(paged: PagedServer):
    with pytest.raises(SaasError) as caught:
        await read(paged.url, "/next-url", NEXT_URL, records="links")
    assert caught.value.message == (
        "GET /next-url: the records selector 'links' found no list in the answer"
    )


@pytest.mark.parametrize(
    ("rule", "how", "message"),
    [
        (
            CURSOR,
            "not-json",
            "GET /fail-later/not-json: the answer is not JSON, so the records selector 'items'"
            " cannot apply",
        ),
        (
            CURSOR,
            "no-items",
            "GET /fail-later/no-items: the records selector 'items' found no list in the answer",
        ),
        (
            NEXT_URL,
            "not-json",
            "GET /fail-later/not-json (page 2): the answer is not JSON, so the records selector"
            " 'items' cannot apply",
        ),
    ],
    ids=["cursor, not JSON", "cursor, no list", "nextUrl, not JSON"],
)
async def test_a_later_page_that_fails_ends_the_listing_after_the_pages_before_it(
    paged: PagedServer, rule: dict[str, Any], how: str, message: str
):
    found: list[list[Any]] = []

    with pytest.raises(SaasError) as caught:
        await read(paged.url, f"/fail-later/{how}", rule, into=found)

    assert caught.value.message == message
    assert numbers(found) == [list(range(10))]


async def test_a_pagination_safety_stop_ends_the_listing_with_an_error(paged: PagedServer):
    found: list[list[Any]] = []

    with pytest.raises(PaginationStopped) as caught:
        await read(paged.url, "/repeat", CURSOR, into=found)

    assert caught.value.message == (
        "GET /repeat: pagination stopped: the next cursor repeats an earlier one"
    )
    assert numbers(found) == [list(range(10))]


def test_records_of_an_answer_names_the_request_and_the_selector():
    answer = Answer("GET /things", 200, {}, b'{"items": {"a": 1}, "list": [1, 2]}')

    assert records_of(answer, "list") == [1, 2]
    with pytest.raises(SaasError) as caught:
        records_of(answer, "items")
    assert (
        caught.value.message
        == "GET /things: the records selector 'items' found no list in the answer"
    )

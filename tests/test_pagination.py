"""Pagination through engine.discovery.Lister against a real paged server: every kind lists
every item once and in order, page budgets resume, and every safety stop ends a listing with
the items before it kept."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.api.discovery import Lister
from engine.errors import CtxError, SaasAuthError, SaasError
from engine.language.definition import Definition
from engine.language.loader import build
from engine.language.schema import issues, module_schema
from engine.saas import pagination
from engine.saas.client import Outbound, Saas, new_pool
from engine.saas.gate import Gate
from tests.paged_server import FAILURES, PagedServer, closed_port_url, serve

N_ITEMS = 47
SETTINGS = {"url": "", "token_secret": "tok-3f9a7c1e"}

# name -> (path, pagination rule, pages the whole listing takes); offsets and page numbers end
# only on an empty page (a short page may just mean the SaaS caps the size), hence one more
KINDS: dict[str, tuple[str, dict[str, Any], int]] = {
    "none": ("/all", {"kind": "none"}, 1),
    "offset": ("/offset", {"kind": "offset", "limit": 10}, 6),
    "page with a size": ("/page", {"kind": "page", "sizeParam": "per_page", "size": 10}, 6),
    "page without a size": ("/page", {"kind": "page"}, 6),
    "cursor": ("/cursor", {"kind": "cursor", "cursor": "next", "param": "cursor"}, 5),
    "nextUrl": ("/next-url", {"kind": "nextUrl", "url": "links.next"}, 5),
    "header": ("/header", {"kind": "header", "header": "Next-Page"}, 5),
    "link": ("/link", {"kind": "link"}, 5),
    "link with a relative URL": ("/link-relative", {"kind": "link"}, 5),
}
# Kinds that name the next page themselves, each as it reads a page that names it every way
TOKEN_KINDS: dict[str, dict[str, Any]] = {
    "cursor": {"kind": "cursor", "cursor": "next", "param": "cursor"},
    "nextUrl": {"kind": "nextUrl", "url": "links.next"},
    "header": {"kind": "header", "header": "Next-Page"},
    "link": {"kind": "link"},
}
URL_KINDS = {name: rule for name, rule in TOKEN_KINDS.items() if name != "cursor"}


@pytest.fixture(scope="module")
def server() -> Iterator[PagedServer]:
    with serve(items=N_ITEMS, page_size=10) as running:
        yield running


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[PagedServer]:
    """A second server: another origin that credentials must never reach."""
    with serve(items=3) as running:
        yield running


@pytest.fixture
def paged(server: PagedServer) -> PagedServer:
    server.clear()
    return server


def module(path: str, rule: dict[str, Any], **listing: Any) -> dict[str, Any]:
    """A one-type module listing ``path`` with the pagination ``rule``."""
    return {
        "module": {"id": "paged", "name": "Paged", "version": "1.0.0"},
        "capabilities": {"auth": [], "features": [], "storage": ["STORAGE_SERVICE"]},
        "connection": {
            "baseUrl": "{{ settings.url }}",
            "auth": {"kind": "bearer", "token": "{{ settings.token_secret }}"},
            "timeouts": {"connect": 2, "read": 0.3},
        },
        "resources": {
            "thing": {
                "list": {
                    "request": {"path": path, "headers": {"X-Api-Version": "2"}},
                    "pagination": rule,
                    "records": "items",
                    **listing,
                },
                "resource": {"id": "{{ item.id }}", "name": "{{ item.id }}"},
                "ctx": {"thing": "{{ item.id }}"},
            }
        },
    }


def definition(raw: dict[str, Any]) -> Definition:
    """The model of a test module, which must itself be valid against the language schema."""
    assert issues(module_schema(), raw) == []
    return build(raw, Path())


async def _roots(
    model: Definition, settings: dict[str, Any], budget: int, pagination_ctx: Any
) -> dict[str, Any]:
    async with new_pool() as pool:
        saas = Saas(Outbound(pool, Gate(4)), model, settings)
        return await Lister(model, saas, budget).roots(pagination_ctx)


def roots(
    raw: dict[str, Any], base: str, *, budget: int = 100, pagination_ctx: Any = None
) -> dict[str, Any]:
    """One /api/roots answer for the module ``raw`` against the server at ``base``."""
    settings = SETTINGS | {"url": base}
    return asyncio.run(_roots(definition(raw), settings, budget, pagination_ctx))


def ids(answer: dict[str, Any]) -> list[str]:
    return [resource["id"] for resource in answer["resources"]]


def item_ids(server: PagedServer, count: int | None = None) -> list[str]:
    return [item["id"] for item in server.items[:count]]


def every_page(raw: dict[str, Any], base: str, budget: int) -> list[dict[str, Any]]:
    """Every answer of a listing, feeding each paginationCtx back as the platform would."""
    answers = [roots(raw, base, budget=budget)]
    while "paginationCtx" in answers[-1]:
        handed_back = json.loads(json.dumps(answers[-1]["paginationCtx"]))
        answers.append(roots(raw, base, budget=budget, pagination_ctx=handed_back))
        assert len(answers) <= 20, "the listing does not end"
    return answers


# ---------------------------------------------------------------------------- complete listings


def test_the_pagination_table_lists_the_same_kinds_as_the_schema():
    kinds = module_schema()["$defs"]["pagination"]
    names = {rule["if"]["properties"]["kind"]["const"] for rule in kinds["allOf"]}
    assert {rule.TAG[1] for rule in pagination.KINDS} == names


@pytest.mark.parametrize(("path", "rule", "pages"), KINDS.values(), ids=KINDS.keys())
def test_every_kind_lists_every_item_exactly_once_and_in_order(
    paged: PagedServer, path: str, rule: dict[str, Any], pages: int
):
    answer = roots(module(path, rule), paged.url)

    assert answer["errors"] == []
    assert ids(answer) == item_ids(paged)
    assert "paginationCtx" not in answer
    assert len(paged.received(path)) == pages


@pytest.mark.parametrize(("path", "rule", "pages"), KINDS.values(), ids=KINDS.keys())
def test_every_page_carries_the_credentials_and_the_list_request_headers(
    paged: PagedServer, path: str, rule: dict[str, Any], pages: int
):
    roots(module(path, rule), paged.url)

    received = paged.received()
    assert len(received) == pages
    assert {r.headers["authorization"] for r in received} == {"Bearer tok-3f9a7c1e"}
    assert {r.headers["x-api-version"] for r in received} == {"2"}
    assert {r.headers["host"] for r in received} == {f"127.0.0.1:{paged.port}"}


def test_a_listing_maps_each_item_to_a_root_resource_with_its_ctx(paged: PagedServer):
    answer = roots(module("/cursor", TOKEN_KINDS["cursor"]), paged.url)

    assert answer["resources"][0] == {
        "id": "item-000",
        "name": "item-000",
        "type": "thing",
        "hasSubresources": False,
        "canBackup": True,
        "backupSeqGroup": None,
        "restoreSeqGroup": None,
        "ctx": {"kind": "root@paged", "type": "thing", "values": {"thing": "item-000"}},
        "displayCtx": {},
    }


def test_the_offset_kind_sends_its_offset_and_limit_parameters(paged: PagedServer):
    rule = {"kind": "offset", "limit": 10, "offsetParam": "skip", "limitParam": "top"}
    roots(module("/offset", rule | {"maxPages": 2}), paged.url)

    assert [r.query for r in paged.received()] == [
        {"skip": "0", "top": "10"},
        {"skip": "10", "top": "10"},
    ]


def test_the_page_kind_counts_from_its_first_page_number(paged: PagedServer):
    rule = {"kind": "page", "first": 1, "sizeParam": "per_page", "size": 20}
    answer = roots(module("/page", rule), paged.url)

    assert ids(answer) == item_ids(paged)
    assert [r.query["page"] for r in paged.received()] == ["1", "2", "3", "4"]  # 4 is empty


def test_the_list_requests_own_query_is_sent_beside_the_pagination_parameters(
    paged: PagedServer,
):
    raw = module("/cursor", TOKEN_KINDS["cursor"])
    raw["resources"]["thing"]["list"]["request"]["query"] = {"fields": "id,n"}
    roots(raw, paged.url)

    queries = [r.query for r in paged.received()]
    assert queries[0] == {"fields": "id,n"}
    assert queries[1] == {"fields": "id,n", "cursor": "o10"}


def test_a_filter_drops_items_without_changing_how_pages_advance(paged: PagedServer):
    raw = module("/offset", {"kind": "offset", "limit": 10}, filter="{{ item.n % 2 == 0 }}")
    answer = roots(raw, paged.url)

    assert ids(answer) == [item["id"] for item in paged.items if item["n"] % 2 == 0]
    assert len(paged.received()) == 6


# ---------------------------------------------------------------------------- page budget


@pytest.mark.parametrize(("path", "rule", "pages"), KINDS.values(), ids=KINDS.keys())
def test_a_page_budget_splits_a_listing_whose_parts_add_up_to_every_item(
    paged: PagedServer, path: str, rule: dict[str, Any], pages: int
):
    answers = every_page(module(path, rule), paged.url, budget=2)

    assert [each["errors"] for each in answers] == [[]] * len(answers)
    assert [i for each in answers for i in ids(each)] == item_ids(paged)
    assert len(answers) == -(-pages // 2)
    assert len(paged.received()) == pages


def test_an_answer_that_spent_its_budget_carries_a_pagination_ctx(paged: PagedServer):
    answer = roots(module("/offset", {"kind": "offset", "limit": 10}), paged.url, budget=2)

    assert ids(answer) == item_ids(paged, 20)
    assert answer["paginationCtx"] == {
        "kind": "pagination@paged",
        "type": "thing",
        "values": {
            "step": {"pages": 2, "params": {"offset": 20, "limit": 10}, "url": None},
            "parent": {},
        },
    }


def test_a_listing_that_ends_exactly_on_its_budget_carries_no_pagination_ctx(
    paged: PagedServer,
):
    rule = {"kind": "page", "sizeParam": "per_page", "size": 10}
    answer = roots(module("/page", rule), paged.url, budget=6)

    assert ids(answer) == item_ids(paged)
    assert "paginationCtx" not in answer


def test_a_pagination_ctx_with_a_next_url_resumes_at_that_url(paged: PagedServer):
    raw = module("/header", URL_KINDS["header"])
    first = roots(raw, paged.url, budget=1)
    paged.clear()
    second = roots(raw, paged.url, budget=1, pagination_ctx=first["paginationCtx"])

    assert ids(second) == item_ids(paged, 20)[10:]
    assert [r.query for r in paged.received()] == [{"_token": "o10"}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "pagination@other"}, "belongs to module 'other'"),
        ({"kind": "root@paged"}, "has role 'root'"),
        ({"type": "gadget"}, "names type 'gadget'"),
        ({"values": {"step": {"pages": "2"}, "parent": {}}}, "no valid listing position"),
        (
            {"values": {"step": {"pages": 1, "params": {"offset": "x"}, "url": None}}},
            "no valid listing position",
        ),
        ({"values": {"step": {"pages": 1, "params": {}, "url": None}}}, "no valid listing"),
        (
            {"values": {"step": {"pages": 1, "params": {}, "url": None}, "parent": {"a": 1}}},
            "listing of another ctx",
        ),
    ],
    ids=[
        "other module",
        "other role",
        "unknown type",
        "bad pages",
        "bad offset",
        "no offset",
        "other parent",
    ],
)
def test_a_pagination_ctx_that_does_not_fit_is_a_ctx_error(
    paged: PagedServer, change: dict[str, Any], message: str
):
    raw = module("/offset", {"kind": "offset", "limit": 10})
    handed_back = roots(raw, paged.url, budget=1)["paginationCtx"] | change

    with pytest.raises(CtxError, match=message):
        roots(raw, paged.url, budget=1, pagination_ctx=handed_back)


def test_a_pagination_ctx_pointing_at_another_origin_is_refused_before_any_request(
    paged: PagedServer, elsewhere: PagedServer
):
    raw = module("/header", URL_KINDS["header"])
    handed_back = roots(raw, paged.url, budget=1)["paginationCtx"]
    handed_back["values"]["step"]["url"] = f"{elsewhere.url}/all"
    paged.clear()
    elsewhere.clear()

    with pytest.raises(CtxError, match="leaves the origin"):
        roots(raw, paged.url, budget=1, pagination_ctx=handed_back)
    assert paged.received() == elsewhere.received() == []


# ---------------------------------------------------------------------------- safety stops


def _stop(answer: dict[str, Any]) -> dict[str, Any]:
    [error] = answer["errors"]
    return error


@pytest.mark.parametrize("rule", TOKEN_KINDS.values(), ids=TOKEN_KINDS.keys())
def test_a_repeated_cursor_or_url_stops_the_listing_and_keeps_the_items_before_it(
    paged: PagedServer, rule: dict[str, Any]
):
    answer = roots(module("/repeat", rule), paged.url)

    assert ids(answer) == item_ids(paged, 20)
    assert _stop(answer)["code"] == "PAGINATION_STOPPED"
    assert "repeats an earlier one" in _stop(answer)["description"]
    assert _stop(answer)["description"].startswith("GET /repeat")
    assert len(paged.received()) == 2


@pytest.mark.parametrize("rule", URL_KINDS.values(), ids=URL_KINDS.keys())
def test_a_first_page_that_names_itself_as_next_stops_before_listing_it_twice(
    paged: PagedServer, rule: dict[str, Any]
):
    answer = roots(module("/self", rule), paged.url)

    assert ids(answer) == item_ids(paged, 10)
    assert "the next URL repeats an earlier one" in _stop(answer)["description"]
    assert len(paged.received()) == 1


@pytest.mark.parametrize("rule", TOKEN_KINDS.values(), ids=TOKEN_KINDS.keys())
def test_an_empty_page_that_still_names_a_next_page_stops_the_listing(
    paged: PagedServer, rule: dict[str, Any]
):
    answer = roots(module("/empty-next", rule), paged.url)

    assert ids(answer) == item_ids(paged, 10)
    assert _stop(answer)["code"] == "PAGINATION_STOPPED"
    assert "an empty page still names a next" in _stop(answer)["description"]
    assert len(paged.received()) == 2


@pytest.mark.parametrize(("path", "rule", "pages"), list(KINDS.values())[1:], ids=list(KINDS)[1:])
def test_the_max_pages_cap_stops_the_listing_after_that_many_pages(
    paged: PagedServer, path: str, rule: dict[str, Any], pages: int
):
    answer = roots(module(path, rule | {"maxPages": 3}), paged.url)

    assert ids(answer) == item_ids(paged, 30)
    assert _stop(answer)["code"] == "PAGINATION_STOPPED"
    assert "the page cap (maxPages 3)" in _stop(answer)["description"]
    assert len(paged.received()) == 3


def test_a_max_pages_cap_the_listing_does_not_reach_is_no_error(paged: PagedServer):
    answer = roots(module("/offset", {"kind": "offset", "limit": 10, "maxPages": 6}), paged.url)

    assert answer["errors"] == []
    assert ids(answer) == item_ids(paged)


@pytest.mark.parametrize("rule", URL_KINDS.values(), ids=URL_KINDS.keys())
def test_a_next_url_to_another_origin_is_refused_and_nothing_is_sent_there(
    paged: PagedServer, elsewhere: PagedServer, rule: dict[str, Any]
):
    elsewhere.clear()
    raw = module("/foreign", rule)
    raw["resources"]["thing"]["list"]["request"]["query"] = {"to": f"{elsewhere.url}/all"}
    answer = roots(raw, paged.url)

    assert ids(answer) == item_ids(paged, 10)
    assert _stop(answer)["code"] == "SAAS_ERROR"
    assert "leaves the origin of the base URL" in _stop(answer)["description"]
    assert elsewhere.received() == []
    assert len(paged.received()) == 1


@pytest.mark.parametrize("rule", URL_KINDS.values(), ids=URL_KINDS.keys())
def test_a_refused_next_url_never_reaches_a_pagination_ctx(
    paged: PagedServer, elsewhere: PagedServer, rule: dict[str, Any]
):
    raw = module("/foreign", rule)
    raw["resources"]["thing"]["list"]["request"]["query"] = {"to": f"{elsewhere.url}/all"}
    answer = roots(raw, paged.url, budget=1)

    assert "paginationCtx" not in answer
    assert _stop(answer)["code"] == "SAAS_ERROR"


# ---------------------------------------------------------------------------- bad pages


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not-json", "GET /fail/not-json: the answer is not JSON, so the records selector 'items'"),
        ("nan", "GET /fail/nan: the answer is not JSON, so the records selector 'items'"),
        ("no-items", "GET /fail/no-items: the records selector 'items' found no list"),
    ],
)
def test_a_first_page_without_records_is_a_non_fatal_error_naming_request_and_selector(
    paged: PagedServer, how: str, message: str
):
    answer = roots(module(f"/fail/{how}", {"kind": "none"}), paged.url)

    assert answer["resources"] == []
    assert _stop(answer)["code"] == "SAAS_ERROR"
    assert _stop(answer)["description"].startswith(message)


@pytest.mark.parametrize("rule", TOKEN_KINDS.values(), ids=TOKEN_KINDS.keys())
@pytest.mark.parametrize(
    ("how", "code", "message"),
    [
        ("not-json", "SAAS_ERROR", "the answer is not JSON, so the records selector 'items'"),
        ("no-items", "SAAS_ERROR", "the records selector 'items' found no list"),
        ("500", "SAAS_ERROR", "the SaaS answered HTTP 500"),
        ("401", "SAAS_AUTH_FAILED", "the SaaS refused the credentials (HTTP 401)"),
        ("slow", "SAAS_ERROR", "the SaaS did not answer in time"),
    ],
)
def test_a_later_page_that_fails_is_a_non_fatal_error_after_the_items_before_it(
    paged: PagedServer, rule: dict[str, Any], how: str, code: str, message: str
):
    answer = roots(module(f"/fail-later/{how}", rule), paged.url)

    assert ids(answer) == item_ids(paged, 10)
    assert _stop(answer)["code"] == code
    assert _stop(answer)["description"].startswith(f"GET /fail-later/{how}")
    assert message in _stop(answer)["description"]


@pytest.mark.parametrize(
    ("how", "error", "message"),
    [
        ("500", SaasError, r"^GET /fail/500: the SaaS answered HTTP 500$"),
        ("401", SaasAuthError, r"^GET /fail/401: the SaaS refused the credentials \(HTTP 401\)$"),
        ("403", SaasAuthError, r"^GET /fail/403: the SaaS refused the credentials \(HTTP 403\)$"),
        (
            "slow",
            SaasError,
            r"^GET /fail/slow: the SaaS did not answer in time \(gave up after 3 attempts\)$",
        ),
    ],
)
def test_a_failing_first_request_is_fatal(
    paged: PagedServer, how: str, error: type[SaasError], message: str
):
    with pytest.raises(error, match=message) as raised:
        roots(module(f"/fail/{how}", {"kind": "none"}), paged.url)
    assert type(raised.value) is error


def test_an_unreachable_saas_is_fatal():
    with pytest.raises(
        SaasError,
        match=r"^GET /all: cannot reach the SaaS \(connection failed\)"
        r" \(gave up after 3 attempts\)$",
    ):
        roots(module("/all", {"kind": "none"}), closed_port_url())


def test_the_failures_served_are_the_ones_tested():
    assert set(FAILURES) == {"not-json", "no-items", "nan", "500", "401", "403", "slow"}


def test_a_cursor_selector_that_finds_an_object_is_a_non_fatal_error(paged: PagedServer):
    rule = {"kind": "cursor", "cursor": "links", "param": "cursor"}
    answer = roots(module("/repeat", rule), paged.url)

    assert ids(answer) == item_ids(paged, 10)
    assert _stop(answer)["code"] == "SAAS_ERROR"
    assert "the cursor selector 'links' found a dict" in _stop(answer)["description"]


def test_a_cursor_selector_that_finds_false_ends_the_listing(paged: PagedServer):
    rule = {"kind": "cursor", "cursor": "contains(keys(@), 'more') && next", "param": "cursor"}
    answer = roots(module("/cursor", rule), paged.url)

    assert answer["errors"] == []
    assert ids(answer) == item_ids(paged, 10)


def test_an_item_that_cannot_be_mapped_is_skipped_with_an_error_naming_it(paged: PagedServer):
    raw = module("/offset", {"kind": "offset", "limit": 10})
    raw["resources"]["thing"]["resource"]["canBackup"] = "{{ 'yes' if item.n == 3 else true }}"
    answer = roots(raw, paged.url)

    assert len(answer["resources"]) == N_ITEMS - 1
    [error] = answer["errors"]
    assert error["resource"] == "item-003"
    assert error["description"].startswith(
        "thing item skipped: /resources/thing/resource/canBackup"
    )


# ---------------------------------------------------------------------------- children


async def _children(
    raw: dict[str, Any], base: str, ctx: dict[str, Any], pagination_ctx: Any
) -> dict[str, Any]:
    model = definition(raw)
    async with new_pool() as pool:
        saas = Saas(Outbound(pool, Gate(4)), model, SETTINGS | {"url": base})
        return await Lister(model, saas, 2).children(ctx, pagination_ctx)


def two_levels() -> dict[str, Any]:
    raw = module("/all", {"kind": "none"})
    raw["resources"]["member"] = {
        "parent": "thing",
        "list": {
            "request": {"path": "/offset", "query": {"of": "{{ ctx.thing }}"}},
            "pagination": {"kind": "offset", "limit": 10},
            "records": "items",
        },
        "resource": {"id": "{{ ctx.thing }}/{{ item.id }}", "name": "{{ item.id }}"},
    }
    return raw


def test_children_are_listed_with_their_parents_ctx_and_resume_under_it(paged: PagedServer):
    raw = two_levels()
    parent = {"kind": "root@paged", "type": "thing", "values": {"thing": "item-001"}}
    answers = [asyncio.run(_children(raw, paged.url, parent, None))]
    while "paginationCtx" in answers[-1]:
        more = answers[-1]["paginationCtx"]
        assert more["values"]["parent"] == {"thing": "item-001"}
        answers.append(asyncio.run(_children(raw, paged.url, parent, more)))

    listed = [i for each in answers for i in ids(each)]
    assert listed == [f"item-001/{i}" for i in item_ids(paged)]
    assert {r.query["of"] for r in paged.received()} == {"item-001"}
    assert answers[0]["resources"][0]["ctx"] == {
        "kind": "resource@paged",
        "type": "member",
        "values": {"thing": "item-001"},
    }


def test_a_childrens_pagination_ctx_handed_back_with_another_parent_is_a_ctx_error(
    paged: PagedServer,
):
    raw = two_levels()
    parent = {"kind": "root@paged", "type": "thing", "values": {"thing": "item-001"}}
    more = asyncio.run(_children(raw, paged.url, parent, None))["paginationCtx"]
    other = parent | {"values": {"thing": "item-002"}}

    with pytest.raises(CtxError, match="belongs to the listing of another ctx"):
        asyncio.run(_children(raw, paged.url, other, more))

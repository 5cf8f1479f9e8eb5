"""scripts.dav against a real Radicale: seeding, dumping, deleting, and the round trips a Radicale
module's tests will rely on (see docs/radicale-dav.md for what the server does)."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from scripts import dav, servers

USER, PASSWORD = "alice", "alice-pw"
TMPFS = Path("/dev/shm")


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """A Radicale for this module, its data on tmpfs when there is one: Radicale fsyncs six times
    per item it writes, which on a busy disk makes seeding three times slower."""
    with ExitStack() as stack:
        folder = tmp_path_factory.mktemp("radicale")
        if TMPFS.is_dir():
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=TMPFS)))
        yield stack.enter_context(servers.start_radicale(folder, {USER: PASSWORD}))


@pytest.fixture(scope="module")
def seeded(radicale: servers.Server) -> dav.DavSeed:
    """3 calendars of 100 items and 2 address books of 100 contacts (tests leave them as found)."""
    return seed(radicale)


def seed(radicale: servers.Server, only: set[str] | None = None) -> dav.DavSeed:
    return dav.seed_radicale(
        radicale.url,
        USER,
        PASSWORD,
        calendars=3,
        address_books=2,
        events=100,
        contacts=100,
        only=only,
    )


def dump(radicale: servers.Server, **options: Any) -> dict[str, Any]:
    return dav.dump_radicale(radicale.url, USER, PASSWORD, **options)


def lines(collection: dict[str, Any]) -> Counter[str]:
    """How often each content line occurs in a dumped collection's items."""
    found: Counter[str] = Counter()

    def walk(component: dict[str, Any]) -> None:
        found.update(component["properties"])
        for child in component["components"]:
            walk(child)

    for item in collection["items"].values():
        walk(item)
    return found


def test_the_dump_holds_every_seeded_collection_with_its_properties_and_items(
    radicale: servers.Server, seeded: dav.DavSeed
):
    found = dump(radicale)
    assert sorted(found) == ["book000", "book001", "cal000", "cal001", "cal002"]
    assert seeded.item_count == 500
    for name, items in {**seeded.calendars, **seeded.address_books}.items():
        assert sorted(found[name]["items"]) == sorted(items)
    assert found["cal001"]["properties"] == {
        "D:resourcetype": ["C:calendar", "D:collection"],
        "D:displayname": "Calendar 1 — café ✓",
        "C:calendar-description": "Seeded calendar cal001 <&>",
        "ICAL:calendar-color": "#1E90FFFF",
        "C:supported-calendar-component-set": ["VEVENT", "VJOURNAL", "VTODO"],
    }
    assert found["book001"]["properties"] == {
        "D:resourcetype": ["CR:addressbook", "D:collection"],
        "D:displayname": "Address book 1 — ünïcode",
        "CR:addressbook-description": "Seeded address book book001 <&>",
    }
    calendar, book = lines(found["cal000"]), lines(found["book000"])
    kinds = Counter(
        c["name"] for item in found["cal000"]["items"].values() for c in item["components"]
    )
    assert kinds == {"VEVENT": 95, "VTODO": 10, "VTIMEZONE": 20}  # 5 items hold a moved occurrence
    assert calendar["SUMMARY:Réunion n°0 — café ✓ 会议"] == 1
    assert calendar["RRULE:FREQ=WEEKLY;COUNT=10"] == 20
    assert book["VERSION:3.0"] == book["VERSION:4.0"] == 50
    assert book["N:Chen 陈美;Mei;;;"] == 16


def test_putting_an_item_that_exists_with_if_none_match_star_is_refused_with_412(
    radicale: servers.Server, seeded: dav.DavSeed
):
    name = seeded.calendars["cal000"][0]
    with dav.client(radicale.url, USER, PASSWORD) as http:
        body = dav.read_items(http, seeded.href("cal000"))[name]
        with pytest.raises(dav.DavError, match=r"PUT /alice/cal000/.*: 412"):
            dav.put_items(http, seeded.href("cal000"), {name: body}, create_only=True)


def test_a_deleted_collection_is_gone_and_seeding_it_again_gives_the_same_dump(
    radicale: servers.Server, seeded: dav.DavSeed
):
    before = dump(radicale)
    dav.delete_collections(radicale.url, USER, PASSWORD, [seeded.href("cal001")])
    assert dump(radicale) == {name: c for name, c in before.items() if name != "cal001"}
    seed(radicale, only={"cal001"})
    assert dump(radicale) == before


def test_putting_every_item_back_from_its_own_body_changes_no_byte(
    radicale: servers.Server, seeded: dav.DavSeed
):
    before = dump(radicale, ignore=())
    with dav.client(radicale.url, USER, PASSWORD) as http:
        etags = {name: dav.item_etags(http, seeded.href(name)) for name in before}
        for name in before:
            href = seeded.href(name)
            dav.put_items(http, href, dav.read_items(http, href))  # overwrites: 204
        # an item's ETag is a hash of the text the server keeps
        assert {name: dav.item_etags(http, seeded.href(name)) for name in before} == etags
    assert dump(radicale, ignore=()) == before


@pytest.fixture
def scratch(radicale: servers.Server) -> Iterator[list[str]]:
    """Collect the hrefs of the collections a test makes: they are deleted after it."""
    hrefs: list[str] = []
    yield hrefs
    dav.delete_collections(radicale.url, USER, PASSWORD, hrefs)


def put_whole_copy(radicale: servers.Server, name: str, kind: str, scratch: list[str]) -> None:
    """GET the collection called name whole and PUT that at copy-<name>."""
    with dav.client(radicale.url, USER, PASSWORD) as http:
        export = http.get(f"/{USER}/{name}/")
        assert export.headers["content-type"] == f"{kind}; charset=utf-8"
        scratch.append(f"/{USER}/copy-{name}/")
        created = http.put(scratch[-1], content=export.content, headers={"Content-Type": kind})
        assert created.status_code == 201


def test_a_whole_calendar_put_at_a_new_href_has_its_items_with_rebuilt_time_zones_and_no_color(
    radicale: servers.Server, seeded: dav.DavSeed, scratch: list[str]
):
    put_whole_copy(radicale, "cal000", "text/calendar", scratch)
    found = dump(radicale)
    calendar, copy = found["cal000"], found["copy-cal000"]
    # Radicale rebuilt the VTIMEZONE of the 20 items using one (and put its own PRODID)
    changed = [name for name, item in copy["items"].items() if item != calendar["items"][name]]
    assert len(changed) == 20
    kept = dump(radicale, ignore={*dav.VOLATILE, "VTIMEZONE"})
    assert kept["copy-cal000"]["items"] == kept["cal000"]["items"]
    assert copy["properties"] == {  # from X-WR-CALNAME and X-WR-CALDESC
        "D:resourcetype": ["C:calendar", "D:collection"],
        "D:displayname": calendar["properties"]["D:displayname"],
        "C:calendar-description": calendar["properties"]["C:calendar-description"],
        "C:supported-calendar-component-set": ["VEVENT", "VJOURNAL", "VTODO"],
    }


def test_a_whole_address_book_put_at_a_new_href_has_its_cards_but_renames_some_unreachably(
    radicale: servers.Server, seeded: dav.DavSeed, scratch: list[str]
):
    put_whole_copy(radicale, "book000", "text/vcard", scratch)
    found = dump(radicale)
    book, copy = found["book000"], found["copy-book000"]
    assert sorted(copy["items"].values(), key=str) == sorted(book["items"].values(), key=str)
    renamed = sorted(set(copy["items"]) - set(book["items"]))  # hrefs come from the UIDs
    assert len(renamed) == 50
    assert all(name.startswith("urn:uuid:") for name in renamed)
    assert copy["properties"] == {  # none kept; the displayname shown is the path
        "D:resourcetype": ["CR:addressbook", "D:collection"],
        "D:displayname": "alice/copy-book000",
    }
    with dav.client(radicale.url, USER, PASSWORD) as http:
        refused = http.get(f"/{USER}/copy-book000/{quote(renamed[0])}")
    assert refused.status_code == 400  # ":" is refused in request paths, even encoded


EVENT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//one//EN\r
BEGIN:VEVENT\r
UID:1\r
SUMMARY:A long summary, folded by the server at seventy-five octets \r
 — ünïcode\r
ATTENDEE;ROLE=CHAIR;CN="Doe; John: Jr":mailto:j@example.com\r
END:VEVENT\r
END:VCALENDAR\r
"""
REWRITTEN = """BEGIN:VCALENDAR
PRODID:-//two//EN
VERSION:2.0
BEGIN:VEVENT
attendee;cn="Doe; John: Jr";role=CHAIR:mailto:j@example.com
SUMMARY:A long summary, folded by the server at seventy-five octets — ünïcode
UID:1
END:VEVENT
END:VCALENDAR
"""


def test_the_normal_form_ignores_line_order_folding_line_ends_parameter_order_and_prodid():
    assert dav.normal_form(EVENT) == dav.normal_form(REWRITTEN)
    assert dav.normal_form(EVENT)["components"][0]["properties"] == [
        'ATTENDEE;CN="Doe; John: Jr";ROLE=CHAIR:mailto:j@example.com',
        "SUMMARY:A long summary, folded by the server at seventy-five octets — ünïcode",
        "UID:1",
    ]
    assert dav.normal_form(EVENT, ignore=()) != dav.normal_form(REWRITTEN, ignore=())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BEGIN:VCARD\nFN:x\n",
        "END:VCARD\n",
        "BEGIN:VCARD\nEND:VCARD\nBEGIN:VCARD\nEND:VCARD\n",
        "no colon",
    ],
)
def test_text_that_is_not_one_complete_component_has_no_normal_form(text: str):
    with pytest.raises(ValueError, match=r"component|BEGIN|content line"):
        dav.normal_form(text)

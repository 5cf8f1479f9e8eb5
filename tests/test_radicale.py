"""End to end: modules/radicale through the module API (in process) against a real Radicale:
discovery, the connection check, a bulk backup, restores in place, as a new collection, into
another user and over existing data, and parse hooks fed answers that are not DAV XML. Dumps
are compared in scripts.dav's form (properties without the live ones, items' normal forms)."""

from __future__ import annotations

import base64
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from engine.language import hooks
from scripts import dav, servers
from tests.fault_proxy import Fault, proxying
from tests.taskflow import (
    ROOT,
    Backend,
    Place,
    assert_same,
    json_documents,
    module_api,
    new_uuid,
    post,
    readable,
    root_ctxs,
    run_module_task,
)

pytestmark = pytest.mark.e2e

MODULE = ROOT / "modules" / "radicale"
USER, PASSWORD = "alice", "Radicale-Pass-Secret-7731"  # distinctive, so a leak shows anywhere
OTHER, OTHER_PASSWORD = "bob", "Other-Radicale-Secret-2468"
CALENDARS, BOOKS, ITEMS = 3, 2, 50  # 250 items: Radicale writes 15-40 ms each
TMPFS = Path("/dev/shm")
XML = {"Content-Type": "application/xml; charset=utf-8"}
# a calendar made without properties (its displayname is then answered as its path), given two
# others no client of the tests knows: a backup must keep them all
BARE_PROPERTIES = """<D:propertyupdate xmlns:D="DAV:" xmlns:I="http://apple.com/ns/ical/"
xmlns:X="http://example.com/ns/"><D:set><D:prop><I:calendar-order>3</I:calendar-order>
<X:custom>a &lt;custom&gt; &amp; dead property</X:custom></D:prop></D:set></D:propertyupdate>"""
CAL000 = {"kind": "root@radicale", "type": "calendar", "values": {"collection": "cal000"}}
BARE = {
    "D:resourcetype": ["C:calendar", "D:collection"],
    "D:displayname": "alice/bare",  # answered, not stored
    "C:supported-calendar-component-set": ["VEVENT", "VJOURNAL", "VTODO"],
    "ICAL:calendar-order": "3",
    "{http://example.com/ns/}custom": "a <custom> & dead property",
}
Backup = tuple[Place, dict[str, Any], dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """A Radicale with two users, its data on tmpfs when there is one (see tests/test_dav.py)."""
    with ExitStack() as stack:
        folder = tmp_path_factory.mktemp("radicale")
        if TMPFS.is_dir():
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=TMPFS)))
        users = {USER: PASSWORD, OTHER: OTHER_PASSWORD}
        yield stack.enter_context(servers.start_radicale(folder, users))


@pytest.fixture(scope="module")
def seeded(radicale: servers.Server) -> dav.DavSeed:
    """cal000..cal002 and book000..book001 of USER, 50 items each, and the empty calendar
    "bare" (tests leave them as found)."""
    seed = dav.seed_radicale(
        radicale.url,
        USER,
        PASSWORD,
        calendars=CALENDARS,
        address_books=BOOKS,
        events=ITEMS,
        contacts=ITEMS,
    )
    with dav.client(radicale.url, USER, PASSWORD) as http:
        assert http.request("MKCALENDAR", seed.href("bare")).status_code == 201
        answer = http.request("PROPPATCH", seed.href("bare"), content=BARE_PROPERTIES, headers=XML)
        assert answer.status_code == 207
    return seed


@pytest.fixture(scope="module")
def api(area: Backend) -> Iterator[TestClient]:
    """The engine serving modules/radicale in process (its lifespan runs the tasks)."""
    with module_api(MODULE, area.allow) as client:
        yield client


def auth(url: str, user: str = USER, password: str = PASSWORD) -> dict[str, Any]:
    return {"settings": {"server_url": url, "username": user, "password_secret": password}}


def dump(radicale: servers.Server, user: str = USER, password: str = PASSWORD) -> dict[str, Any]:
    return dav.dump_radicale(radicale.url, user, password)


def run(api: TestClient, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    return run_module_task(api, path, {"taskUuid": new_uuid()} | body, "radicale")


def done(result: tuple[int, Any]) -> dict[str, Any]:
    status, answer = result
    assert status == 200 and answer["status"] == "DONE", answer
    assert answer["errors"] == [], answer["errors"]
    return dict(answer)


def task_record(place: Place, task_uuid: str) -> dict[str, Any]:
    """The task record the engine keeps in the backup's storage (errors, units and counts)."""
    record: dict[str, Any] = json.loads(place.read(f".engine/tasks/{task_uuid}.json"))
    return record


def restore(
    api: TestClient, radicale: servers.Server, place: Place, ctxs: list[dict[str, Any]], **how: Any
) -> dict[str, Any]:
    """Restore the resources of ctxs from place (how: scenario, options, auth) until DONE."""
    body = {"auth": auth(radicale.url), "storage": place.storage(), "scenario": "IN_PLACE"}
    body |= {"items": [{"ctx": ctx} for ctx in ctxs]} | how
    return done(run(api, "/api/bulk/restore", body))


@pytest.fixture(scope="module")
def backed_up(
    api: TestClient, area: Backend, radicale: servers.Server, seeded: dav.DavSeed
) -> Backup:
    """A bulk backup of every collection: (its place, the dump it was taken from, root ctxs by
    href)."""
    place = area.place("all")
    roots = root_ctxs(api, auth(radicale.url))
    body = {"auth": auth(radicale.url), "storage": place.storage()}
    done(run(api, "/api/bulk/backup", body | {"items": [{"ctx": c} for c in roots.values()]}))
    return place, dump(radicale), roots


def by_name(roots: dict[str, dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [roots[f"/{USER}/{name}/"] for name in names]


# --------------------------------------------------------------------------- discovery


def test_the_roots_are_the_users_calendars_and_address_books_by_display_name(
    api: TestClient, radicale: servers.Server, seeded: dav.DavSeed
) -> None:
    status, page = post(api, "/api/roots", {"auth": auth(radicale.url)})

    assert status == 200 and page.get("errors", []) == [], page
    found = {root["id"]: (root["type"], root["name"]) for root in page["resources"]}
    assert found == {
        "/alice/cal000/": ("calendar", "Calendar 0 — café ✓"),
        "/alice/cal001/": ("calendar", "Calendar 1 — café ✓"),
        "/alice/cal002/": ("calendar", "Calendar 2 — café ✓"),
        "/alice/book000/": ("addressbook", "Address book 0 — ünïcode"),
        "/alice/book001/": ("addressbook", "Address book 1 — ünïcode"),
        "/alice/bare/": ("calendar", "bare"),
    }
    calendar = next(root for root in page["resources"] if root["id"] == "/alice/cal001/")
    assert calendar["ctx"] == {
        "kind": "root@radicale",
        "type": "calendar",
        "values": {"collection": "cal001"},
    }
    assert calendar["hasSubresources"] is False


def test_validate_accepts_the_users_password_and_refuses_a_wrong_one(
    api: TestClient, radicale: servers.Server
) -> None:
    path = "/api/schemas/auth/validate"
    assert post(api, path, {"auth": auth(radicale.url)}) == (200, {"valid": True, "errors": []})

    status, answer = post(api, path, {"auth": auth(radicale.url, password="wrong")})

    assert status == 200 and answer["valid"] is False, answer
    [error] = answer["errors"]
    assert error["code"] == "SAAS_AUTH_FAILED", error
    assert "HTTP 401" in error["description"], error


# --------------------------------------------------------------------------- backup, restore


def test_a_bulk_backup_stores_each_collection_and_restores_it_in_place_and_for_another_user(
    api: TestClient,
    radicale: servers.Server,
    seeded: dav.DavSeed,
    backed_up: Backup,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    place, before, roots = backed_up
    assert sorted(before) == ["bare", "book000", "book001", "cal000", "cal001", "cal002"]
    assert before["bare"] == {"properties": BARE, "items": {}}
    objects = {entry["path"]: entry for entry in place.manifest()["objects"]}
    assert sorted(objects) == sorted(
        f"{name}/{what}.zst" for name in before for what in ("collection.json", "items.jsonl")
    )
    counts = {name: objects[f"{name}/items.jsonl.zst"]["records"] for name in before}
    assert counts == dict.fromkeys(before, ITEMS) | {"bare": 0}
    stored = stored_items(place, "cal000")
    name = seeded.calendars["cal000"][0]
    assert stored[name]["contentType"] == "text/calendar; charset=utf-8"
    assert stored[name]["body"] == item_text(radicale, "cal000", name)  # exact, CRLF and all

    dav.delete_collections(radicale.url, USER, PASSWORD, [seeded.href(name) for name in before])
    assert dump(radicale) == {}
    other = auth(radicale.url, OTHER, OTHER_PASSWORD)
    restore(api, radicale, place, list(roots.values()))
    restore(api, radicale, place, list(roots.values()), scenario="OTHER_SOURCE", auth=other)

    assert_same(dump(radicale), before)
    bare = {"D:displayname": f"{OTHER}/bare"}  # none was stored: the path is answered
    copied = before | {"bare": {"properties": BARE | bare, "items": {}}}
    assert_same(dump(radicale, OTHER, OTHER_PASSWORD), copied)
    dav.delete_collections(radicale.url, OTHER, OTHER_PASSWORD, [f"/{OTHER}/{n}/" for n in before])
    assert_no_secret(caplog, place)


def stored_items(place: Place, collection: str) -> dict[str, dict[str, Any]]:
    path = f"{collection}/items.jsonl.zst"
    records = json_documents(place.contents(path, "zstd"), path)
    return {record["name"]: record for record in records}


def item_text(radicale: servers.Server, collection: str, name: str) -> str:
    with dav.client(radicale.url, USER, PASSWORD) as http:
        answer = http.get(f"/{USER}/{collection}/{quote(name)}")
        answer.raise_for_status()
        return answer.text


def assert_no_secret(caplog: pytest.LogCaptureFixture, place: Place) -> None:
    """Neither the logs nor the backup hold a password (nor a Basic header made of one)."""
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    logs = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    files = "".join(readable(path, place.read(path)) for path in place.files())
    for secret in (PASSWORD, OTHER_PASSWORD, basic):
        assert secret not in logs
        assert secret not in files


def test_a_collection_restored_as_new_has_the_same_properties_and_items_under_its_new_name(
    api: TestClient,
    radicale: servers.Server,
    backed_up: Backup,
) -> None:
    place, before, roots = backed_up
    for name in ("cal001", "book001"):
        options = {"new_name": f"copy of {name}"}
        restore(api, radicale, place, by_name(roots, name), scenario="AS_NEW", options=options)

    after = dump(radicale)
    copies = ["/alice/copy of cal001/", "/alice/copy of book001/"]
    dav.delete_collections(radicale.url, USER, PASSWORD, copies)
    assert_same(after["copy of cal001"], before["cal001"])
    assert_same(after["copy of book001"], before["book001"])
    assert_same(dump(radicale), before)


def test_a_restore_over_existing_data_skips_what_exists_or_overwrites_it_as_chosen(
    api: TestClient,
    radicale: servers.Server,
    seeded: dav.DavSeed,
    backed_up: Backup,
) -> None:
    place, before, roots = backed_up
    changed, deleted = seeded.calendars["cal000"][:2]
    with dav.client(radicale.url, USER, PASSWORD) as http:
        text = item_text(radicale, "cal000", changed).replace("SUMMARY:", "SUMMARY:Changed ", 1)
        dav.put_items(http, seeded.href("cal000"), {changed: text})
        http.delete(f"{seeded.href('cal000')}{quote(deleted)}").raise_for_status()
        rename = '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Renamed'
        rename += "</D:displayname></D:prop></D:set></D:propertyupdate>"
        renamed = http.request("PROPPATCH", seeded.href("cal000"), content=rename, headers=XML)
        assert renamed.status_code == 207
    edited = dump(radicale)["cal000"]

    with proxying(radicale.url) as proxy:  # to see the requests as Radicale gets them
        skipped = restore(api, radicale, place, by_name(roots, "cal000"), auth=auth(proxy.url))

    now = dump(radicale)["cal000"]
    assert now["items"][changed] == edited["items"][changed] != before["cal000"]["items"][changed]
    assert now["items"][deleted] == before["cal000"]["items"][deleted]
    assert now["properties"]["D:displayname"] == "Renamed"
    sent = {
        (request.method, request.headers["content-type"], request.headers.get("if-none-match"))
        for request in proxy.requests
    }
    assert sent == {
        ("MKCALENDAR", "application/xml; charset=utf-8", None),  # answered 409: it exists
        ("PUT", "text/calendar; charset=utf-8", "*"),  # answered 412, but for the deleted one
    }
    unit = task_record(place, skipped["taskUuid"])["units"]["cal000/items.jsonl.zst"]
    counts = {outcome: unit[outcome] for outcome in ("written", "conflicts", "skipped", "failed")}
    assert counts == {"written": 1, "conflicts": ITEMS - 1, "skipped": 0, "failed": 0}

    restore(api, radicale, place, by_name(roots, "cal000"), options={"conflict": "overwrite"})

    assert_same(dump(radicale), before)


# --------------------------------------------------------------------------- hook failures


def test_answers_that_are_not_dav_xml_fail_the_parse_hooks_with_hook_failed_naming_them(
    api: TestClient,
    area: Backend,
    radicale: servers.Server,
    seeded: dav.DavSeed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with proxying(radicale.url) as proxy:
        garbage = Fault("body", body=b"<html><body>Welcome to nginx!</body></html>")
        proxy.inject(garbage, r"^/alice/(cal000/)?$", method="PROPFIND", times=None)
        status, page = post(api, "/api/roots", {"auth": auth(proxy.url)})
        place = area.place("garbage")
        body = {"auth": auth(proxy.url), "storage": place.storage(), "items": [{"ctx": CAL000}]}
        backup = run(api, "/api/bulk/backup", body | {"taskUuid": new_uuid()})

    assert status == 200 and page["resources"] == [], page
    assert [error["code"] for error in page["errors"]] == ["HOOK_FAILED"] * 2, page
    first = page["errors"][0]["description"]
    assert "hook 'collections' (radicale/hooks.py, parse) failed" in first
    assert "the answer is not a DAV multistatus but <html>" in first
    assert backup[0] == 502 and backup[1]["error"]["code"] == "SAAS_ERROR", backup
    assert (
        "the backup is incomplete: 2 required part(s) failed" in backup[1]["error"]["description"]
    )
    errors = task_record(place, backup[1]["error"]["payload"]["taskUuid"])["errors"]
    hooks = sorted(
        (error["resourceType"], error["resource"], error["description"].split(" (")[0])
        for error in errors
        if error["code"] == "HOOK_FAILED"
    )
    assert hooks == [
        ("calendar", "cal000", "hook 'collection_properties'"),
        ("calendar", "cal000", "hook 'items'"),
    ], errors
    assert api.get("/healthz").status_code == 200
    assert post(api, "/api/roots", {"auth": auth(radicale.url)})[0] == 200
    assert "Traceback" in caplog.text and PASSWORD not in caplog.text


def test_an_item_deleted_while_the_backup_runs_is_left_out(
    api: TestClient,
    area: Backend,
    radicale: servers.Server,
    seeded: dav.DavSeed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    gone = seeded.calendars["cal000"][7]
    with proxying(radicale.url) as proxy:
        proxy.inject(Fault("status", status=404), f"^/alice/cal000/{quote(gone)}$", method="GET")
        place = area.place("deleted-meanwhile")
        body = {"auth": auth(proxy.url), "storage": place.storage(), "items": [{"ctx": CAL000}]}
        done(run(api, "/api/bulk/backup", body))

    stored = stored_items(place, "cal000")
    assert sorted(stored) == sorted(set(seeded.calendars["cal000"]) - {gone})
    assert_no_secret(caplog, place)


# --------------------------------------------------------------------------- the hooks alone
# Any prefix may stand for a namespace (Radicale's answers put DAV: as the default one), and
# a propstat other than 200 lists what is missing, not what is there.
PREFIXED = b"""<?xml version="1.0"?>
<x:multistatus xmlns:x="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">
 <x:response><x:href>/u%40example.com/</x:href><x:propstat>
  <x:prop><x:resourcetype><x:principal/><x:collection/></x:resourcetype></x:prop>
  <x:status>HTTP/1.1 200 OK</x:status></x:propstat></x:response>
 <x:response><x:href>/u%40example.com/caf%C3%A9/</x:href>
  <x:propstat><x:prop><x:resourcetype><cal:calendar/><x:collection/></x:resourcetype>
   <x:displayname>Caf&#233; &lt;&amp;&gt;</x:displayname></x:prop>
   <x:status>HTTP/1.1 200 OK</x:status></x:propstat>
  <x:propstat><x:prop><cal:calendar-description>not found</cal:calendar-description></x:prop>
   <x:status>HTTP/1.1 404 Not Found</x:status></x:propstat></x:response>
</x:multistatus>"""


def module_hooks() -> hooks.Hooks:
    return hooks.load("radicale", MODULE, "hooks.py", True)


def test_collections_are_matched_by_namespace_not_prefix_and_named_by_decoded_href() -> None:
    collections = module_hooks().function("collections")
    assert collections is not None

    found = collections(SimpleNamespace(body=PREFIXED), {})

    assert found == [
        {
            "href": "/u%40example.com/caf%C3%A9/",
            "name": "café",
            "kind": "calendar",
            "displayname": "Café <&>",
            "description": None,
            "color": None,
            "components": [],
        }
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"Access to the requested resource forbidden.", "the answer is not XML"),
        (b'<error xmlns="DAV:"><valid-sync-token/></error>', "not a DAV multistatus but"),
    ],
)
def test_an_answer_that_is_not_a_multistatus_is_refused_with_its_reason(
    body: bytes, reason: str
) -> None:
    items = module_hooks().function("items")
    assert items is not None
    with pytest.raises(ValueError, match=reason):
        items(SimpleNamespace(body=body), {})

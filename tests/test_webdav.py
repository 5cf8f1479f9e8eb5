"""End to end: modules/webdav through the module API (in process) against a real WsgiDAV:
discovery at depth, the connection check, a backup of a tree 10 levels deep (unicode names,
names URLs reserve, empty folders, 0-byte files) restored in place after losing parts of it and
restored under another folder, each compared file by file (SHA-256) and folder by folder; and
the same with a 1 GiB file. Trees are made and compared on the server's own disk
(scripts/files.py)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.language import hooks
from scripts import files, servers
from tests.conftest import WEBDAV_USER
from tests.taskflow import (
    ROOT,
    Backend,
    Place,
    module_api,
    new_uuid,
    post,
    root_ctxs,
    run_module_task,
)

pytestmark = pytest.mark.e2e

MODULE = ROOT / "modules" / "webdav"
GiB = 1 << 30


@pytest.fixture(scope="module")
def api(area: Backend) -> Iterator[TestClient]:
    """The engine serving modules/webdav in process (its lifespan runs the tasks)."""
    with module_api(MODULE, area.allow) as client:
        yield client


@pytest.fixture
def top(webdav: servers.WebdavServer) -> Iterator[str]:
    """A top folder name of this test's own, removed (with any copy) afterwards."""
    name = f"tree {uuid.uuid4().hex[:8]} ✓"
    yield name
    for path in webdav.root.iterdir():
        if name in path.name or path.name.startswith("copy "):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def auth(webdav: servers.WebdavServer, password: str = WEBDAV_USER[1]) -> dict[str, Any]:
    user = WEBDAV_USER[0]
    return {"settings": {"server_url": webdav.url, "username": user, "password_secret": password}}


def run(api: TestClient, path: str, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Run a task until it ends; it must be DONE without errors."""
    status, answer = run_module_task(
        api, path, {"taskUuid": new_uuid()} | body, "webdav", timeout=timeout
    )
    assert status == 200 and answer["status"] == "DONE", answer
    assert answer["errors"] == [], answer["errors"]
    return dict(answer)


def backup(
    api: TestClient,
    webdav: servers.WebdavServer,
    place: Place,
    names: list[str],
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """Back the top entries called names up into place; their ctxs."""
    roots = root_ctxs(api, auth(webdav))
    ctxs = [roots[f"/{name}"] for name in names]
    body = {"auth": auth(webdav), "storage": place.storage(), "items": [{"ctx": c} for c in ctxs]}
    run(api, "/api/bulk/backup", body, timeout)
    return ctxs


def restore(
    api: TestClient,
    webdav: servers.WebdavServer,
    place: Place,
    ctxs: list[dict[str, Any]],
    timeout: float = 60,
    **how: Any,
) -> dict[str, Any]:
    body = {"auth": auth(webdav), "storage": place.storage(), "scenario": "IN_PLACE"}
    body |= {"items": [{"ctx": ctx} for ctx in ctxs]} | how
    return run(api, "/api/bulk/restore", body, timeout)


def test_the_roots_are_the_top_entries_and_a_folder_lists_its_children_at_any_depth(
    api: TestClient, webdav: servers.WebdavServer, top: str
) -> None:
    files.make_tree(webdav.root / top, depth=4)
    roots = root_ctxs(api, auth(webdav))
    assert roots[f"/{top}"]["values"] == {
        "path": f"/{top}",
        "href": files.href(f"/{top}"),
        "folder": True,
    }
    ctx = roots[f"/{top}"]
    expected = {"notes", f"{files.NAMES[0]} 0"}
    for level in range(4):
        status, page = post(api, "/api/resources", {"auth": auth(webdav), "ctx": ctx})
        assert status == 200, page
        found = {item["name"]: item for item in page["resources"]}
        folder = f"{files.NAMES[level]} {level}"
        assert set(found) == expected
        assert found[folder]["hasSubresources"] is True
        ctx = found[folder]["ctx"]
        expected = {f"data {level}.bin", f"empty file {level} ∅", f"empty folder {level}"}
        expected |= {f"{files.NAMES[level + 1]} {level + 1}"} if level < 3 else set()
    assert found["data 2.bin"]["hasSubresources"] is False
    assert ctx["values"]["path"].count("/") == 5


def test_validate_accepts_the_password_and_refuses_a_wrong_one(
    api: TestClient, webdav: servers.WebdavServer
) -> None:
    status, answer = post(api, "/api/schemas/auth/validate", {"auth": auth(webdav)})
    assert status == 200 and answer["valid"] is True, answer
    status, answer = post(api, "/api/schemas/auth/validate", {"auth": auth(webdav, "wrong")})
    assert status == 200 and answer["valid"] is False, answer
    assert "wrong" not in str(answer)


def test_a_tree_ten_levels_deep_restores_in_place_and_under_another_folder_file_for_file(
    api: TestClient, webdav: servers.WebdavServer, area: Backend, top: str
) -> None:
    original = files.make_tree(webdav.root / top, depth=10)
    lone = f"{top} lone file.txt"
    (webdav.root / lone).write_bytes(b"a file at the top\n")
    place = area.place(new_uuid())
    ctxs = backup(api, webdav, place, [top, lone])

    stored = [entry["path"] for entry in place.manifest()["objects"]]
    assert len([p for p in stored if p.startswith("content/")]) == len(original.files) + 1
    assert (
        len([p for p in stored if p.startswith("properties/")])
        == len(original.files) + len(original.folders) + 2
    )

    deep = "/".join(f"{files.NAMES[i % 5]} {i}" for i in range(4))
    lost = [
        f"/{top}/{deep}",
        f"/{top}/notes/a b.txt",
        f"/{top}/{files.NAMES[0]} 0/empty folder 0",
        f"/{lone}",
    ]
    files.delete(webdav.url, WEBDAV_USER, lost)
    assert files.fingerprint(webdav.root / top) != original

    restore(api, webdav, place, ctxs)
    assert files.fingerprint(webdav.root / top) == original
    assert (webdav.root / lone).read_bytes() == b"a file at the top\n"

    (webdav.root / "copy ✓").mkdir()
    restore(api, webdav, place, ctxs, scenario="AS_NEW", options={"folder": "/copy ✓/restored"})
    assert files.fingerprint(webdav.root / "copy ✓" / "restored" / top) == original
    assert (webdav.root / "copy ✓" / "restored" / lone).read_bytes() == b"a file at the top\n"


def test_a_restore_over_what_exists_skips_it_or_overwrites_it_as_chosen(
    api: TestClient, webdav: servers.WebdavServer, area: Backend, top: str
) -> None:
    original = files.make_tree(webdav.root / top, depth=2)
    place = area.place(new_uuid())
    ctxs = backup(api, webdav, place, [top])
    changed = webdav.root / top / "notes" / "a b.txt"
    changed.write_text("changed since the backup\n")

    answer = restore(api, webdav, place, ctxs)
    assert changed.read_text() == "changed since the backup\n"
    assert answer["errors"] == []
    restore(api, webdav, place, ctxs, options={"conflict": "overwrite"})
    assert files.fingerprint(webdav.root / top) == original


def test_a_one_gib_file_and_a_zero_byte_file_round_trip_in_place_and_as_new(
    api: TestClient, webdav: servers.WebdavServer, area: Backend, top: str
) -> None:
    big = webdav.root / top / "big ✓" / "one gibibyte.bin"
    digest = files.write_random(big, GiB, "one gibibyte")
    (webdav.root / top / "zero.bin").write_bytes(b"")
    original = files.fingerprint(webdav.root / top)
    assert original.files["big ✓/one gibibyte.bin"] == digest
    place = area.place(new_uuid())
    ctxs = backup(api, webdav, place, [top], timeout=600)

    files.delete(webdav.url, WEBDAV_USER, [f"/{top}/big ✓", f"/{top}/zero.bin"])
    restore(api, webdav, place, ctxs, timeout=600)
    assert files.fingerprint(webdav.root / top) == original

    (webdav.root / "copy ✓").mkdir()
    restore(api, webdav, place, ctxs, timeout=600, scenario="AS_NEW", options={"folder": "copy ✓"})
    assert files.fingerprint(webdav.root / "copy ✓" / top) == original


def load_hooks() -> hooks.Hooks:
    return hooks.load("webdav", MODULE, "hooks.py", True)


LISTING = b"""<?xml version="1.0"?><x:multistatus xmlns:x="DAV:">
<x:response><x:href>http://h/dav/files/alice/a%20b/</x:href><x:propstat><x:prop>
<x:resourcetype><x:collection/></x:resourcetype></x:prop><x:status>HTTP/1.1 200 OK</x:status>
</x:propstat></x:response>
<x:response><x:href>/dav/files/alice/a%20b/caf%C3%A9/</x:href><x:propstat><x:prop>
<x:resourcetype><x:collection/></x:resourcetype></x:prop><x:status>HTTP/1.1 200 OK</x:status>
</x:propstat></x:response>
<x:response><x:href>/dav/files/alice/a%20b/100%25%20%231.txt</x:href><x:propstat><x:prop>
<x:resourcetype/><x:getcontentlength>12</x:getcontentlength><x:getetag>"e1"</x:getetag>
</x:prop><x:status>HTTP/1.1 200 OK</x:status></x:propstat><x:propstat><x:prop><x:displayname/>
</x:prop><x:status>HTTP/1.1 404 Not Found</x:status></x:propstat></x:response>
</x:multistatus>"""


def test_a_listing_names_entries_by_the_listed_folders_path_under_any_prefix_or_href_form() -> None:
    answer = SimpleNamespace(body=LISTING, url="http://h/dav/files/alice/a%20b/")
    found = load_hooks().function("entries")(answer, {"path": "/a b"})  # type: ignore[misc]
    assert found == [
        {
            "name": "café",
            "path": "/a b/café",
            "href": "/a%20b/caf%C3%A9",
            "folder": True,
            "size": None,
            "contentType": None,
            "etag": None,
            "lastModified": None,
            "displayName": None,
        },
        {
            "name": "100% #1.txt",
            "path": "/a b/100% #1.txt",
            "href": "/a%20b/100%25%20%231.txt",
            "folder": False,
            "size": 12,
            "contentType": None,
            "etag": '"e1"',
            "lastModified": None,
            "displayName": None,
        },
    ]


def test_an_answer_that_is_not_a_multistatus_fails_the_parse_with_its_reason() -> None:
    answer = SimpleNamespace(body=b"<html>sign in</html>", url="http://h/")
    with pytest.raises(ValueError, match="not a DAV multistatus but <html>"):
        load_hooks().function("entries")(answer, {})  # type: ignore[misc]
    answer = SimpleNamespace(body=b"not xml", url="http://h/")
    with pytest.raises(ValueError, match="not XML"):
        load_hooks().function("properties")(answer, {"path": "/x"})  # type: ignore[misc]

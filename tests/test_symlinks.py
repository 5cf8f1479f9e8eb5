"""Local storage never follows a symbolic link out of its allowed folder: writes, reads and
removals through such a link are refused (or remove the link alone), through engine.storage and
through the API's backup and cleanup."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from engine.errors import StorageNotAllowed
from engine.storage import Storage, open_storage
from scripts import servers
from tests.taskflow import Shape, assert_done, assert_error, auth_of, new_uuid, root_ctxs, run_task
from tests.taskflow import seed as seed_kinto

pytestmark = pytest.mark.anyio


@dataclass
class Escape:
    """An allowed folder holding ``link``, a link to ``outside`` (a folder beside the area)."""

    area: Path
    outside: Path
    link: Path

    def open(self, relative: str) -> Storage:
        return open_storage(f"{self.area}/{relative}", None, allow=[f"file://{self.area}"])

    def outside_files(self) -> dict[str, bytes]:
        files = (path for path in self.outside.rglob("*") if path.is_file())
        return {path.relative_to(self.outside).as_posix(): path.read_bytes() for path in files}


@pytest.fixture
def escape(tmp_path: Path) -> Escape:
    area, outside = tmp_path / "area", tmp_path / "outside"
    (outside / "backup-1").mkdir(parents=True)
    (outside / "keep.txt").write_bytes(b"not the engine's")
    (outside / "backup-1" / "manifest.json").write_bytes(b"{}")
    area.mkdir()
    (area / "evil").symlink_to(outside, target_is_directory=True)
    return Escape(area, outside, area / "evil")


async def test_a_write_below_a_link_that_leaves_the_area_is_refused_and_lands_nowhere(
    escape: Escape,
):
    before = escape.outside_files()
    async with escape.open("evil/backup-2") as storage:
        with pytest.raises(StorageNotAllowed) as err:
            await storage.write_json("objects/a.json", {"id": 1})
    assert err.value.message == (
        f"cannot write objects/a.json under {escape.area}/evil/backup-2: "
        "a symbolic link leads outside the allowed storage area"
    )
    assert err.value.status == 403
    assert escape.outside_files() == before
    assert not (escape.outside / "backup-2").exists()


async def test_a_read_through_a_link_that_leaves_the_area_is_refused(escape: Escape):
    async with escape.open("evil/backup-1") as storage:
        with pytest.raises(StorageNotAllowed):
            await storage.read_json("manifest.json")
        with pytest.raises(StorageNotAllowed):
            await storage.exists("manifest.json")
        with pytest.raises(StorageNotAllowed):
            async with storage.reader("manifest.json", compression=None) as reader:
                await reader.read()


async def test_removing_a_root_that_is_a_link_removes_the_link_and_never_its_target(
    escape: Escape,
):
    before = escape.outside_files()
    async with escape.open("evil") as storage:
        await storage.remove_tree()
    assert not escape.link.is_symlink()
    assert escape.outside_files() == before


async def test_removing_a_root_below_a_link_that_leaves_the_area_is_refused(escape: Escape):
    before = escape.outside_files()
    async with escape.open("evil/backup-1") as storage:
        with pytest.raises(StorageNotAllowed):
            await storage.remove_tree()
        with pytest.raises(StorageNotAllowed):
            await storage.remove("manifest.json")
    assert escape.outside_files() == before


async def test_a_link_inside_a_removed_root_is_unlinked_and_a_write_through_it_refused(
    escape: Escape,
):
    root = escape.area / "backup-3"
    root.mkdir()
    (root / "data").symlink_to(escape.outside, target_is_directory=True)
    before = escape.outside_files()
    async with escape.open("backup-3") as storage:
        with pytest.raises(StorageNotAllowed):
            await storage.write_json("data/a.json", {"id": 1})
        await storage.remove_tree()
    assert not root.exists()
    assert escape.outside_files() == before


async def test_a_link_within_the_area_is_followed(escape: Escape):
    (escape.area / "real").mkdir()
    (escape.area / "alias").symlink_to(escape.area / "real", target_is_directory=True)
    async with escape.open("alias/backup-4") as storage:
        await storage.write_json("objects/a.json", {"id": 1})
        assert await storage.read_json("objects/a.json") == {"id": 1}
    assert (escape.area / "real" / "backup-4" / "objects" / "a.json").is_file()


def test_the_api_refuses_a_backup_and_a_cleanup_through_a_link_and_spares_its_target(
    escape: Escape,
    kinto: servers.KintoServer,
    engine_api: Callable[..., TestClient],
):
    bucket = f"links-{uuid.uuid4().hex[:10]}"
    seed_kinto(kinto, Shape({bucket: [3]}, {bucket: 1}))
    api = engine_api(storage_allow=(f"file://{escape.area}",))
    ctx = root_ctxs(api, auth_of(kinto))[bucket]
    before = escape.outside_files()

    def body(url: str) -> dict[str, object]:
        storage = {"url": f"file://{url}"}
        return {"auth": auth_of(kinto), "taskUuid": new_uuid(), "storage": storage, "ctx": ctx}

    (escape.area / "inside").mkdir()
    (escape.area / "inside" / "data").symlink_to(escape.outside, target_is_directory=True)
    backup = run_task(api, "/api/backup", body(f"{escape.link}/backup-5"))
    assert "symbolic link" in assert_error(backup, 403, "STORAGE_NOT_ALLOWED")
    cleanup = run_task(api, "/api/cleanup", body(f"{escape.link}/backup-1"))
    assert_error(cleanup, 403, "STORAGE_NOT_ALLOWED")
    # a root that is itself such a link: its task record cannot be read, so refused too
    cleanup = run_task(api, "/api/cleanup", body(str(escape.link)))
    assert_error(cleanup, 403, "STORAGE_NOT_ALLOWED")
    assert escape.outside_files() == before
    assert_done(run_task(api, "/api/cleanup", body(f"{escape.area}/inside")))
    assert not (escape.area / "inside").exists()  # the link inside it unlinked, its target kept
    assert escape.outside_files() == before

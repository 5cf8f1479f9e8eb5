"""engine.storage.filesystems' clean-up of what killed writes leave behind, through
Storage.sweep(): only the hidden ``.<name>.<random>.part`` files of local writes go, everything
else stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from engine.storage.filesystems import Area, open_deferred, sweep_leftovers
from tests.taskparts import local_storage, memory_storage, write_object

pytestmark = pytest.mark.anyio

LEFTOVERS = [
    ".records.jsonl.zst.k3j_x9a1.part",
    "b1/.bucket.json.zst.abc123.part",
    "b1/c1/.records.jsonl.zst.Zz_09.part",
    ".engine/tasks/.t1.json.q8w7e6r5.part",
]
KEPT = [
    "manifest.json",
    ".hidden",
    ".gitkeep.part",
    "b1/data.part",
    "b1/notes.abc123.part",
    "b1/.bucket.json.zst.abc-123.part",
    "b1/c1/.bucket.json.zst.abc123.part.bak",
    "b1/c1/.records.jsonl.zst.abc123.partial",
    "b1/c1/records.jsonl.zst",
]


def fill(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"data")


def files_below(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


async def test_sweeping_removes_every_leftover_in_nested_folders_and_keeps_other_files(
    tmp_path: Path,
):
    storage = local_storage(tmp_path)
    root = tmp_path / "backup"
    fill(root, LEFTOVERS + KEPT)
    fill(tmp_path / "beside", LEFTOVERS)

    assert await storage.sweep() == len(LEFTOVERS)

    assert files_below(root) == sorted(KEPT)
    assert files_below(tmp_path / "beside") == sorted(LEFTOVERS)
    assert await storage.sweep() == 0


async def test_the_leftover_of_a_write_that_never_committed_is_swept(tmp_path: Path):
    storage = local_storage(tmp_path)
    await write_object(storage, "b1/bucket.json.zst", b'{"id": "b1"}')
    target = tmp_path / "backup" / "b1" / "records.jsonl.zst"
    cut_off = open_deferred(LocalFileSystem(), str(target))
    cut_off.write(b"half of it")
    cut_off.close()  # the process dies here: neither commit() nor discard()
    [leftover] = [name for name in files_below(tmp_path / "backup") if name.endswith(".part")]
    assert leftover.startswith("b1/.records.jsonl.zst.")

    assert await storage.sweep() == 1

    assert files_below(tmp_path / "backup") == ["b1/bucket.json.zst"]


async def test_sweeping_a_root_that_does_not_exist_yet_finds_nothing(tmp_path: Path):
    assert await local_storage(tmp_path).sweep() == 0


async def test_memory_storage_has_nothing_to_sweep():
    with memory_storage() as storage:
        async with storage.writer(".b1.abc123.part", compress=None) as writer:
            await writer.write(b"data")

        assert await storage.sweep() == 0
        assert await storage.exists(".b1.abc123.part")


def test_only_local_filesystems_are_swept(tmp_path: Path):
    fill(tmp_path, LEFTOVERS)

    assert sweep_leftovers(object(), str(tmp_path), Area()) == 0
    assert files_below(tmp_path) == sorted(LEFTOVERS)

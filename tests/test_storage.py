"""engine.storage against a local folder, memory://, S3 (moto) and GCS (fake-gcs-server)."""

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import fsspec.asyn
import gcsfs
import pytest
import s3fs
import zstandard
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from engine.errors import (
    BackupDamaged,
    ChecksumMismatch,
    ConfigError,
    ObjectNotFound,
    PathError,
    StorageError,
    StorageNotAllowed,
)
from engine.settings import Settings
from engine.storage import (
    CHUNK_SIZE,
    ENGINE_DIR,
    ObjectInfo,
    Storage,
    merge_options,
    multipart,
    open_storage,
    register_classes,
    workers,
)
from scripts import servers

pytestmark = [
    pytest.mark.anyio,
    # gcsfs hands aiohttp each resumable-upload chunk (MiBs) as raw bytes; aiohttp warns that
    # this may stall its event loop, which is fsspec's own loop thread here: harmless.
    pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning"),
]

SECRET = "sEcReT-must-never-show-4711"
MIB = 1 << 20
CHUNK = 300_007


# --------------------------------------------------------------------------- backends


@dataclass
class Backend:
    """A backup root on one backend, plus a direct fsspec client to check what landed there."""

    name: str
    url: str
    options: dict[str, Any]
    allow: list[str]
    fs: Any  # the direct client, independent of engine.storage
    path: str  # the root as the direct client names it

    def open(self) -> Storage:
        return open_storage(self.url, self.options, allow=self.allow)

    def stored(self, relative: str) -> bytes:
        self.fs.invalidate_cache()
        return self.fs.cat_file(f"{self.path}/{relative}")

    def put(self, relative: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.path}/{relative}", data)

    def has(self, relative: str) -> bool:
        self.fs.invalidate_cache()
        return self.fs.exists(f"{self.path}/{relative}")


def _close(fs: Any) -> None:
    """Close a direct s3fs/gcsfs client's aiohttp session on fsspec's loop (no ResourceWarning)."""
    if isinstance(fs, s3fs.S3FileSystem) and getattr(fs, "_s3creator", None) is not None:
        fsspec.asyn.sync(fs.loop, fs._s3creator.__aexit__, None, None, None)
    elif isinstance(fs, gcsfs.GCSFileSystem) and fs._session is not None:
        fsspec.asyn.sync(fs.loop, fs._session.close)


@contextmanager
def _local(request: pytest.FixtureRequest) -> Iterator[Backend]:
    folder = request.getfixturevalue("tmp_path") / "backups"
    url = f"file://{folder}/task-1"
    yield Backend(
        "local", url, {}, [f"file://{folder}"], LocalFileSystem(auto_mkdir=True), f"{folder}/task-1"
    )


@contextmanager
def _memory(request: pytest.FixtureRequest) -> Iterator[Backend]:
    MemoryFileSystem.store.clear()  # one store per process
    fs = MemoryFileSystem()
    yield Backend(
        "memory", "memory://backups/task-1", {}, ["memory://backups"], fs, "/backups/task-1"
    )
    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]


@contextmanager
def _bucket(fs: Any, scheme: str, options: dict[str, Any], name: str) -> Iterator[Backend]:
    bucket = f"bucket-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    root = f"{bucket}/backups/task-1"
    try:
        yield Backend(
            name, f"{scheme}://{root}", options, [f"{scheme}://{bucket}/backups"], fs, root
        )
    finally:
        fs.rm(bucket, recursive=True)
        _close(fs)


@contextmanager
def _s3(request: pytest.FixtureRequest) -> Iterator[Backend]:
    moto = request.getfixturevalue("moto")
    options = {"key": "x", "secret": "x", "client_kwargs": {"endpoint_url": moto.url}}
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True, use_listings_cache=False)
    with _bucket(fs, "s3", options, "s3") as backend:
        yield backend


@contextmanager
def _gcs(request: pytest.FixtureRequest) -> Iterator[Backend]:
    fake_gcs = request.getfixturevalue("fake_gcs")
    options = {"token": "anon", "endpoint_url": fake_gcs.url}
    fs = gcsfs.GCSFileSystem(**options, skip_instance_cache=True, use_listings_cache=False)
    with _bucket(fs, "gs", options, "gcs") as backend:
        yield backend


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "local": _local,
    "memory": _memory,
    "s3": _s3,
    "gcs": _gcs,
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with BACKENDS[request.param](request) as made:
        yield made


@pytest.fixture
def memory(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with _memory(request) as made:
        yield made


def _payload(size: int) -> bytes:
    """Half JSON lines (compressible), half random bytes (not): exercises both codecs' paths."""
    lines = b"".join(
        json.dumps({"id": i, "title": f"record {i}", "tags": ["a", "b"]}).encode() + b"\n"
        for i in range(size // 120)
    )[: size // 2]
    return lines + os.urandom(size - len(lines))


async def _write(storage: Storage, relative: str, data: bytes, **options: Any) -> ObjectInfo:
    async with storage.writer(relative, **options) as writer:
        for start in range(0, len(data), CHUNK):  # odd chunks: the writer's buffer re-cuts them
            await writer.write(data[start : start + CHUNK])
            writer.records += 1
    return writer.info


async def _read(storage: Storage, relative: str, compression: str | None) -> bytes:
    async with storage.reader(relative, compression=compression) as reader:
        chunks = [chunk async for chunk in reader]
    assert max(map(len, chunks), default=0) <= MIB
    return b"".join(chunks)


DECOMPRESS: dict[str | None, Callable[[bytes], bytes]] = {
    "zstd": lambda data: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read(),
    "gzip": gzip.decompress,
    None: lambda data: data,
}


# --------------------------------------------------------------------------- objects


@pytest.mark.parametrize("compression", ["zstd", "gzip", None])
async def test_a_streamed_object_round_trips_with_the_sizes_and_hash_of_its_stored_bytes(
    backend: Backend, compression: str | None
):
    data = _payload(9 * MIB)  # over s3's 5 MiB part: a multipart upload there
    async with backend.open() as storage:
        info = await _write(storage, "objects/items.bin", data, compress=compression)
        assert await _read(storage, "objects/items.bin", compression) == data
        await storage.verify(info)

    stored = backend.stored("objects/items.bin")
    assert info == ObjectInfo(
        path="objects/items.bin",
        size=len(stored),
        sha256=hashlib.sha256(stored).hexdigest(),
        raw_size=len(data),
        compression=compression,
        records=-(-len(data) // CHUNK),
    )
    assert DECOMPRESS[compression](stored) == data
    if compression is not None:
        assert len(stored) < len(data)


async def test_a_write_that_fails_leaves_no_object_behind(backend: Backend):
    async with backend.open() as storage:
        with pytest.raises(RuntimeError, match="boom"):
            async with storage.writer("objects/big.bin", compress=None) as writer:
                for _ in range(10):  # past s3's first part and gcs's first resumable chunk
                    await writer.write(os.urandom(MIB))
                raise RuntimeError("boom")
        assert not await storage.exists("objects/big.bin")
        assert await storage.list() == []
    assert not backend.has("objects/big.bin")
    if backend.name == "local":
        assert [p for p in Path(backend.path).rglob("*") if p.is_file()] == []
    if backend.name == "s3":
        assert backend.fs.list_multipart_uploads(backend.path.split("/")[0]) == []


async def test_a_compression_level_the_codec_refuses_leaves_no_file_behind(backend: Backend):
    async with backend.open() as storage:
        with pytest.raises(StorageError):
            async with storage.writer("objects/a.json", level=99) as writer:
                await writer.write(b"{}")
        assert await storage.list() == []
    if backend.name == "local":
        assert [p for p in Path(backend.path).rglob("*") if p.is_file()] == []


async def test_a_failed_overwrite_keeps_the_previous_object(backend: Backend):
    async with backend.open() as storage:
        first = await _write(storage, "objects/a.jsonl.zst", b'{"v": 1}\n')
        with pytest.raises(RuntimeError, match="boom"):
            async with storage.writer("objects/a.jsonl.zst") as writer:
                await writer.write(os.urandom(2 * MIB))
                raise RuntimeError("boom")
        reader = storage.reader("objects/a.jsonl.zst", compression="zstd")
        assert [chunk async for chunk in reader] == [b'{"v": 1}\n']  # closed at its end
        await storage.verify(first)


async def test_a_reader_read_to_its_end_stays_closed_and_never_starts_over(backend: Backend):
    async with backend.open() as storage:
        await _write(storage, "objects/a.jsonl.zst", b'{"v": 1}\n')
        reader = storage.reader("objects/a.jsonl.zst", compression="zstd")
        assert [chunk async for chunk in reader] == [b'{"v": 1}\n']
        assert [chunk async for chunk in reader] == []
        with pytest.raises(RuntimeError, match="was read to its end or closed"):
            await reader.read()


async def test_concurrent_writers_in_one_storage_each_commit_their_own_object(backend: Backend):
    async def one(storage: Storage, index: int) -> ObjectInfo | None:
        failing = index % 3 == 0
        with contextlib.suppress(RuntimeError):
            async with storage.writer(f"objects/{index}.jsonl.zst") as writer:
                await writer.write(f"{index}\n".encode() * 50_000)
                if failing:
                    raise RuntimeError("this one fails")
        return writer.info if not failing else None

    async with backend.open() as storage:
        infos = await asyncio.gather(*(one(storage, index) for index in range(12)))
        committed = [info for info in infos if info is not None]
        assert await storage.list() == sorted(info.path for info in committed)
        for info in committed:
            await storage.verify(info)


async def test_a_writer_cancelled_mid_object_leaves_nothing(backend: Backend):
    started = asyncio.Event()

    async def endless(storage: Storage) -> None:
        async with storage.writer("objects/endless.bin", compress=None) as writer:
            while True:
                await writer.write(os.urandom(MIB))
                started.set()

    async with backend.open() as storage:
        task = asyncio.create_task(endless(storage))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not await storage.exists("objects/endless.bin")
    assert not backend.has("objects/endless.bin")


async def test_verify_names_an_object_whose_bytes_changed(backend: Backend):
    async with backend.open() as storage:
        info = await _write(storage, "objects/x.jsonl.zst", _payload(2 * MIB))
        stored = bytearray(backend.stored("objects/x.jsonl.zst"))
        stored[1000] ^= 0x01
        backend.put("objects/x.jsonl.zst", bytes(stored))
        with pytest.raises(ChecksumMismatch, match=r"verify objects/x\.jsonl\.zst under") as err:
            await storage.verify(info)
        assert err.value.code == "CHECKSUM_MISMATCH"
        backend.put("objects/x.jsonl.zst", bytes(stored[:-1]))
        with pytest.raises(ChecksumMismatch, match=f"{info.size - 1} bytes"):
            await storage.verify(info)


async def test_a_corrupt_compressed_object_fails_to_read_with_a_storage_error(
    backend: Backend,
):
    async with backend.open() as storage:
        backend.put("objects/bad.zst", b"this is no zstd frame")
        with pytest.raises(StorageError, match=r"cannot read objects/bad\.zst under"):
            await _read(storage, "objects/bad.zst", "zstd")


async def test_bytes_that_do_not_decompress_are_a_damaged_object_named_by_its_path(
    memory: Backend,
):
    async with memory.open() as storage:
        memory.put("objects/bad.zst", b"this is no zstd frame")
        with pytest.raises(BackupDamaged, match=r"bad\.zst under .*: its bytes do not decompress"):
            await _read(storage, "objects/bad.zst", "zstd")


async def test_a_reader_given_the_object_s_record_checks_its_stored_bytes_on_the_way(
    backend: Backend,
):
    async with backend.open() as storage:
        data = _payload(2 * MIB)
        info = await _write(storage, "objects/x.jsonl.zst", data)
        async with storage.reader(info.path, compression="zstd", expect=info) as reader:
            assert b"".join([chunk async for chunk in reader]) == data
        assert reader.stored == info.size
        stored = bytearray(backend.stored(info.path))
        stored[len(stored) // 2] ^= 0x01
        backend.put(info.path, bytes(stored))
        # the flip is in random bytes zstd stored raw: only the checksum can tell
        with pytest.raises(ChecksumMismatch, match=r"verify objects/x\.jsonl\.zst under"):
            async with storage.reader(info.path, compression="zstd", expect=info) as reader:
                async for _ in reader:
                    pass
        async with storage.reader(info.path, compression="zstd") as reader:  # no record: no check
            assert len(b"".join([chunk async for chunk in reader])) == info.raw_size


async def test_a_damaged_frame_read_with_its_record_is_a_checksum_mismatch(memory: Backend):
    async with memory.open() as storage:
        info = await _write(storage, "objects/x.json.zst", b'{"a": 1}' * 1000)
        memory.put(info.path, memory.stored(info.path)[:-9] + b"garbage!!")
        with pytest.raises(ChecksumMismatch):
            async with storage.reader(info.path, compression="zstd", expect=info) as reader:
                await reader.read()


async def test_two_readers_of_one_object_at_once_each_read_all_of_it(backend: Backend):
    """Two restores of one backup read its objects at once (fsspec's memory filesystem handed
    both the one stored file, so each moved the other's position and one read fewer records)."""
    data = os.urandom(3 * CHUNK_SIZE + 12345)
    async with backend.open() as storage:
        info = await _write(storage, "objects/shared.bin.zst", data)
        async with (
            storage.reader(info.path, compression="zstd", expect=info) as first,
            storage.reader(info.path, compression="zstd", expect=info) as second,
        ):
            one, two = [], []
            async for chunk in first:  # the readers take turns, chunk by chunk
                one.append(chunk)
                two.append(await second.read())
            two += [chunk async for chunk in second]

    assert b"".join(one) == data
    assert b"".join(two) == data


async def test_an_unknown_compression_is_a_storage_error(memory: Backend):
    async with memory.open() as storage:
        with pytest.raises(StorageError, match=r"unknown compression \(known: zstd, gzip, None"):
            storage.reader("objects/a.lz4", compression="lz4")


# --------------------------------------------------------------------------- documents, listing


async def test_json_documents_round_trip_and_task_records_need_the_engine_flag(
    backend: Backend,
):
    manifest = {"module": "demo", "objects": [{"path": "a", "size": 1}], "name": "Grüße ✓"}
    async with backend.open() as storage:
        with pytest.raises(PathError, match=r"is the engine's manifest\.json"):
            await storage.write_json("manifest.json", manifest)
        info = await storage.write_json("manifest.json", manifest, engine=True)
        assert await storage.read_json("manifest.json") == manifest
        assert await storage.size("manifest.json") == info.size
        assert await storage.size("missing.json") is None
        assert info.compression is None
        assert info.sha256 == hashlib.sha256(backend.stored("manifest.json")).hexdigest()

        record = f"{ENGINE_DIR}/tasks/{uuid.uuid4()}.json"
        with pytest.raises(PathError, match=r"is under \.engine/"):
            await storage.write_json(record, {"owner": "me"})
        await storage.write_json(record, {"owner": "me"}, engine=True)
        assert await storage.read_json(record) == {"owner": "me"}

        with pytest.raises(ObjectNotFound, match=r"cannot read missing\.json under .*: not found"):
            await storage.read_json("missing.json")
        backend.put("broken.json", b'{"a": ')
        with pytest.raises(StorageError, match=r"broken\.json under .*: not valid JSON"):
            await storage.read_json("broken.json")


async def test_list_and_remove_tree_touch_everything_under_the_root_and_nothing_beside_it(
    backend: Backend,
):
    parent = backend.path.rsplit("/", 1)[0]
    backend.fs.pipe_file(f"{parent}/task-10/keep.txt", b"sibling with a common prefix")
    backend.fs.pipe_file(f"{parent}/task-1-other/keep.txt", b"sibling")
    async with backend.open() as storage:
        for relative in ["b/deep/er/x.bin", "a.bin", "b/y.bin"]:
            await _write(storage, relative, b"data", compress=None)
        await storage.write_json(f"{ENGINE_DIR}/tasks/t.json", {}, engine=True)
        assert await storage.list() == [
            ".engine/tasks/t.json",
            "a.bin",
            "b/deep/er/x.bin",
            "b/y.bin",
        ]
        assert await storage.list("b") == ["b/deep/er/x.bin", "b/y.bin"]
        assert await storage.sizes("b") == {"b/deep/er/x.bin": 4, "b/y.bin": 4}
        below = storage.below("b")
        assert below.url == f"{backend.url}/b"
        assert await below.list() == ["deep/er/x.bin", "y.bin"]
        assert await storage.list("nothing-here") == []
        assert await storage.exists("b")

        await storage.remove_tree()
        assert await storage.list() == []
        assert not await storage.exists("a.bin")
        await storage.remove_tree()  # cleanup is idempotent
    backend.fs.invalidate_cache()
    assert backend.fs.cat_file(f"{parent}/task-10/keep.txt") == b"sibling with a common prefix"
    assert backend.fs.cat_file(f"{parent}/task-1-other/keep.txt") == b"sibling"


async def test_remove_deletes_one_object_engine_paths_included_and_ignores_a_missing_one(
    backend: Backend,
):
    record = f"{ENGINE_DIR}/tasks/{uuid.uuid4()}.part.json"
    async with backend.open() as storage:
        await storage.write_json(record, {"temporary": True}, engine=True)
        for relative in ["objects/a*.bin", "objects/ab.bin", "objects/b.bin"]:
            await _write(storage, relative, b"data", compress=None)

        await storage.remove(record)
        await storage.remove("objects/a*.bin")  # a literal name, never a glob pattern
        assert await storage.list() == ["objects/ab.bin", "objects/b.bin"]
        assert not await storage.exists(record)
        await storage.remove(record)  # already gone: no error
        await storage.remove("objects/never-written.bin")
        with pytest.raises(PathError, match=r"'\.\.' segment"):
            await storage.remove("../task-10/keep.txt")
    assert not backend.has(record)
    assert backend.has("objects/ab.bin")


# --------------------------------------------------------------------------- path guard

TEMPLATE = "objects/{{ item.id }}.jsonl"


@pytest.mark.parametrize(
    ("rendered", "reason"),
    [
        ("", "is empty"),
        ("objects/VALUE/../../x", "'..' segment"),
        ("../VALUE", "'..' segment"),
        ("objects/./VALUE", "'.' or '..' segment"),
        ("/etc/VALUE", "is absolute"),
        ("objects\\VALUE", "backslash"),
        ("objects//VALUE", "empty segment"),
        ("objects/VALUE/", "empty segment"),
        ("s3://other-bucket/VALUE", "URL scheme"),
        ("objects/file://VALUE", "URL scheme"),
        ("objects/VALUE\x00.jsonl", "control"),
        ("objects/VALUE\n.jsonl", "control"),
        ("objects/VALUE\ud800", "invalid character"),
        ("objects/" + "VALUE" * 300, "over 1024 bytes"),
        (".engine/tasks/VALUE.json", "the engine's"),
        ("manifest.json", "the engine's manifest"),
        (".Engine/VALUE", "the engine's"),  # case-insensitive local filesystems
        ("Manifest.JSON", "the engine's manifest"),
    ],
)
async def test_an_unsafe_rendered_path_is_refused_naming_its_template_not_its_value(
    memory: Backend, rendered: str, reason: str
):
    async with memory.open() as storage:
        with pytest.raises(PathError, match=reason) as err:
            storage.resolve(rendered, template=TEMPLATE)
        assert err.value.template == TEMPLATE
        assert TEMPLATE in err.value.message
        assert "VALUE" not in err.value.message
        assert err.value.status == 400
        with pytest.raises(PathError, match="storage path"):
            storage.writer(rendered)


async def test_a_safe_path_resolves_below_the_root_and_the_engine_may_use_its_folder(
    memory: Backend,
):
    async with memory.open() as storage:
        assert storage.resolve("objects/a b/ü-1.jsonl") == "/backups/task-1/objects/a b/ü-1.jsonl"
        assert storage.resolve("objects/..hidden/x..y") == "/backups/task-1/objects/..hidden/x..y"
        record = storage.resolve(".engine/tasks/t.json", engine=True)
        assert record == "/backups/task-1/.engine/tasks/t.json"
        assert storage.resolve(".engine-not/x") == "/backups/task-1/.engine-not/x"


# --------------------------------------------------------------------------- allow-list, options


def test_a_url_inside_an_allowed_prefix_opens_and_the_default_allows_the_backup_folder(
    tmp_path: Path,
):
    settings = Settings.from_env({"ENGINE_BACKUP_DIR": str(tmp_path / "backups")})
    assert settings.backup_dir == f"file://{tmp_path}/backups"
    assert settings.allowed_storage == (f"file://{tmp_path}/backups", "memory://")
    for url in [
        f"{settings.backup_dir}/task-1",
        str(tmp_path / "backups" / "task-2"),
        "memory://t",
    ]:
        open_storage(url, None, allow=settings.allowed_storage)
    assert open_storage("s3://bucket/backups/t1", None, allow=["s3://bucket/"]).root == (
        "bucket/backups/t1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "memory://elsewhere/task-1",
        "memory://backups-evil/task-1",  # shares the prefix's text, not its folder
        "memory://backups",  # the allowed area itself: cleanup would remove every backup
        "memory://backups/",
        "file:///etc/task-1",
        "s3://bucket/backups/task-1",
        "gs://bucket/backups/task-1",
        "nosuchprotocol://backups/task-1",
    ],
)
def test_a_url_outside_the_allowed_prefixes_is_refused_with_403(url: str):
    with pytest.raises(StorageNotAllowed) as err:
        open_storage(url, None, allow=["memory://backups"])
    assert (err.value.status, err.value.code) == (403, "STORAGE_NOT_ALLOWED")


def test_the_allowed_area_itself_opens_only_when_asked_for_to_look_at_it_whole():
    storage = open_storage("memory://backups", None, allow=["memory://backups"], area_root=True)
    assert storage.root == "/backups"
    with pytest.raises(StorageNotAllowed):
        open_storage("memory://elsewhere", None, allow=["memory://backups"], area_root=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/backups/task-1",
        "https://example.com/backups/task-1",
        "ftp://example.com/backups/task-1",
        "sftp://example.com/backups/task-1",
        "webdav://example.com/backups/task-1",
        "simplecache::http://example.com/backups/task-1",
        "dir://backups/task-1",
    ],
)
def test_protocols_that_reach_arbitrary_hosts_are_never_storage_even_when_listed(url: str):
    with pytest.raises(StorageNotAllowed, match=r"never storage|chain"):
        open_storage(url, None, allow=[url.rsplit("/", 1)[0], "http://", "https://", "dir://"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"s3://AKIA:{SECRET}@bucket/backups/t1", "carries credentials"),
        ("s3://bucket/backups/t1?versionId=3", "query"),
        ("memory://backups/t1#frag", "fragment"),
        ("memory://backups/../t1", "'..' segment"),
        ("memory://backups//t1", "empty"),
        ("memory://backups/*", "glob"),
        ("memory://backups/t[1]", "glob"),
        ("memory://backups/t\n1", "control"),
    ],
)
def test_a_malformed_storage_url_is_a_bad_request_that_never_echoes_credentials(
    url: str, reason: str
):
    with pytest.raises(PathError, match=reason) as err:
        open_storage(url, None, allow=["memory://backups", "s3://bucket/backups"])
    assert err.value.status == 400
    assert SECRET not in err.value.message


def test_options_merge_engine_defaults_then_token_options_then_the_request():
    defaults = {
        "s3": {
            "key": "engine-key",
            "secret": "engine-secret",
            "client_kwargs": {"endpoint_url": "http://engine", "verify": False},
        },
        "gcs": {"project": "engine-project", "endpoint_url": "http://engine-gcs"},
    }
    aws = {"accessKeyId": "sts-key", "secretAccessKey": "sts-secret", "sessionToken": "sts-token"}
    request = {"secret": "request-secret", "client_kwargs": {"endpoint_url": "http://request"}}
    assert merge_options(
        "s3", request, defaults=defaults, aws={**aws, "region": "eu-west-1"}, gc={"x": "y"}
    ) == {
        "default_block_size": 5 * MIB,
        "use_listings_cache": False,
        "key": "sts-key",
        "secret": "request-secret",
        "token": "sts-token",
        "client_kwargs": {
            "endpoint_url": "http://request",
            "verify": False,
            "region_name": "eu-west-1",
        },
        "skip_instance_cache": True,
    }
    gc = {"accessToken": "ya29.token", "projectId": "token-project"}
    assert merge_options("gs", {"asynchronous": True}, defaults=defaults, aws=aws, gc=gc) == {
        "use_listings_cache": False,
        "project": "token-project",
        "endpoint_url": "http://engine-gcs",
        "token": "ya29.token",
        "skip_instance_cache": True,
    }
    assert merge_options("s3", {"default_block_size": 16 * MIB})["default_block_size"] == 16 * MIB
    assert merge_options("memory", None, defaults=defaults, aws=aws) == {
        "skip_instance_cache": True
    }


def test_storage_settings_parse_and_their_errors_never_echo_option_values():
    settings = Settings.from_env(
        {
            "ENGINE_STORAGE_ALLOW": "s3://bucket/backups/, memory://",
            "ENGINE_STORAGE_OPTIONS": json.dumps({"s3": {"secret": SECRET}}),
            "ENGINE_STORAGE_CLASSES": '{"mine": "my.module:MyFileSystem"}',
        }
    )
    assert settings.allowed_storage == ("s3://bucket/backups/", "memory://")
    assert settings.storage_options == {"s3": {"secret": SECRET}}
    assert SECRET not in repr(settings)
    assert settings.storage_classes == {"mine": "my.module:MyFileSystem"}
    for bad in [f'{{"s3": "{SECRET}"}}', f'{{"s3": {{"secret": {SECRET}}}}}', "[1]"]:
        with pytest.raises(ConfigError, match="ENGINE_STORAGE_OPTIONS") as err:
            Settings.from_env({"ENGINE_STORAGE_OPTIONS": bad})
        assert SECRET not in err.value.message
    with pytest.raises(ConfigError, match="ENGINE_STORAGE_CLASSES: mine: must be"):
        Settings.from_env({"ENGINE_STORAGE_CLASSES": '{"mine": "no-colon"}'})


# --------------------------------------------------------------------------- failures, secrets


async def test_a_missing_s3_bucket_is_a_storage_error_without_the_secret(moto: servers.Server):
    options = {"key": "x", "secret": SECRET, "client_kwargs": {"endpoint_url": moto.url}}
    url = "s3://no-such-bucket-here/backups/task-1"
    async with open_storage(url, options, allow=["s3://"]) as storage:
        with pytest.raises(StorageError) as err:
            await storage.write_json("manifest.json", {}, engine=True)
        with pytest.raises(ObjectNotFound) as missing:
            await storage.read_json("manifest.json")
    assert err.value.message == f"cannot write manifest.json under {url}: not found"
    assert missing.value.message == f"cannot read manifest.json under {url}: not found"
    for error in (err.value, missing.value):
        assert (error.status, error.code, error.url) == (503, "STORAGE_ERROR", url)
        assert SECRET not in error.message


async def test_a_wrong_s3_endpoint_is_a_storage_error_without_options(moto: servers.Server):
    endpoint = f"http://127.0.0.1:{servers.free_port()}"
    options = {
        "key": "x",
        "secret": SECRET,
        "client_kwargs": {"endpoint_url": endpoint},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    async with open_storage("s3://bucket/backups/t1", options, allow=["s3://"]) as storage:
        with pytest.raises(StorageError, match=r"cannot look for a under s3://bucket/backups/t1"):
            await storage.exists("a")
        with pytest.raises(StorageError) as err:
            await storage.write_json("manifest.json", {}, engine=True)
    assert err.value.message.startswith("cannot write manifest.json under s3://bucket/backups/t1")
    assert SECRET not in err.value.message
    assert endpoint not in err.value.message


async def test_a_missing_gcs_bucket_is_a_storage_error(fake_gcs: servers.Server):
    options = {"token": "anon", "endpoint_url": fake_gcs.url, "project": SECRET}
    url = "gs://no-such-bucket-here/backups/task-1"
    async with open_storage(url, options, allow=["gs://"]) as storage:
        with pytest.raises(ObjectNotFound) as err:
            await storage.write_json("manifest.json", {}, engine=True)
        assert not await storage.exists("manifest.json")
    assert err.value.message == f"cannot write manifest.json under {url}: not found"


# --------------------------------------------------------------------------- custom classes


class _PrivateMemoryFileSystem(MemoryFileSystem):
    """A memory filesystem with its own protocol and its own store."""

    protocol = ("privmem",)
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        # MemoryFileSystem strips "memory://" only, whatever the class's protocol
        return MemoryFileSystem._strip_protocol(path.replace("privmem://", "memory://", 1))


class _EagerFile(AbstractBufferedFile):
    """Stores each block as it goes, whatever autocommit says: a backend that cannot defer."""

    def _initiate_upload(self) -> None:
        self.fs.store[self.path] = b""

    def _upload_chunk(self, final: bool = False) -> bool:
        self.fs.store[self.path] += self.buffer.getvalue()
        self.fs.uploads.append(len(self.buffer.getvalue()))
        return True


class _EagerFileSystem(AbstractFileSystem):
    """Just enough of a filesystem for _EagerFile; commit() and discard() are no-ops."""

    protocol = ("eager",)
    store: ClassVar[dict[str, bytes]] = {}
    uploads: ClassVar[list[int]] = []  # the bytes of each upload call

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, **kwargs: Any) -> Any:
        return _EagerFile(self, path, mode, block_size=MIB, **kwargs)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        if path not in self.store:
            raise FileNotFoundError(path)
        return {"name": path, "size": len(self.store[path]), "type": "file"}

    def rm_file(self, path: str) -> None:
        del self.store[path]


class _Counted(io.BytesIO):
    """A file read from a _SlowMemoryFileSystem (MemoryFile's close() does nothing)."""


class _SlowMemoryFileSystem(_PrivateMemoryFileSystem):
    """A private memory filesystem whose opening takes 0.3 s; it keeps the files it opened for
    reading."""

    protocol = ("slowmem",)
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    open_files: ClassVar[list[Any]] = []

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return MemoryFileSystem._strip_protocol(path.replace("slowmem://", "memory://", 1))

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode == "rb":
            time.sleep(0.3)  # in the reader's worker thread
        file = super()._open(path, mode, **kwargs)
        if mode != "rb":
            return file
        counted = _Counted(file.getvalue())
        self.open_files.append(counted)
        return counted


async def test_a_reader_cancelled_while_opening_closes_what_it_opened():
    register_classes({"slowmem": f"{__name__}:_SlowMemoryFileSystem"})
    async with open_storage("slowmem://b/task-1", None, allow=["slowmem://b"]) as storage:
        await _write(storage, "a.bin", b"data", compress=None)
        reader = storage.reader("a.bin", compression=None)
        reading = asyncio.ensure_future(reader.read())
        await asyncio.sleep(0.1)  # the open is under way in its thread
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
    [opened] = _SlowMemoryFileSystem.open_files
    assert opened.closed


async def test_a_custom_filesystem_class_named_in_the_settings_serves_its_protocol():
    register_classes({"privmem": f"{__name__}:_PrivateMemoryFileSystem"})
    MemoryFileSystem.store.clear()
    url = "privmem://backups/task-1"
    async with open_storage(url, None, allow=["privmem://backups"]) as storage:
        info = await _write(storage, "objects/a.jsonl.zst", b'{"id": 1}\n' * 1000)
        await storage.verify(info)
        assert await storage.list() == ["objects/a.jsonl.zst"]
    assert list(_PrivateMemoryFileSystem.store) == ["/backups/task-1/objects/a.jsonl.zst"]
    assert MemoryFileSystem.store == {}


async def test_a_backend_that_cannot_defer_a_write_still_loses_a_failed_object():
    register_classes({"eager": f"{__name__}:_EagerFileSystem"})
    async with open_storage("eager://b/task-1", None, allow=["eager://b"]) as storage:
        await _write(storage, "kept.bin", b"kept", compress=None)
        with pytest.raises(RuntimeError, match="boom"):
            async with storage.writer("lost.bin", compress=None) as writer:
                await writer.write(os.urandom(3 * MIB))
                raise RuntimeError("boom")
        assert await storage.exists("kept.bin")
        assert not await storage.exists("lost.bin")
    assert _EagerFileSystem.store == {"b/task-1/kept.bin": b"kept"}


async def test_a_buffered_backend_is_handed_whole_parts_that_grow_with_the_object(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(multipart, "PARTS_PER_STEP", 2)  # parts double every 2 (1 MiB blocks)
    register_classes({"eager": f"{__name__}:_EagerFileSystem"})
    _EagerFileSystem.uploads.clear()
    data = os.urandom(11 * MIB)
    async with (
        open_storage("eager://b/task-2", None, allow=["eager://b"]) as storage,
        storage.writer("big.bin", compress=None) as writer,
    ):
        for start in range(0, len(data), MIB // 2):
            await writer.write(data[start : start + MIB // 2])
    sent = [size for size in _EagerFileSystem.uploads if size]  # close() flushes an empty one
    assert sent == [MIB, MIB, 2 * MIB, 2 * MIB, 4 * MIB, MIB]
    assert _EagerFileSystem.store["b/task-2/big.bin"] == data
    assert multipart.PARTS.held == 0  # every part let go


@pytest.mark.parametrize(
    ("name", "reason"),
    [("no_such_module_here:Thing", "cannot import"), ("pathlib:Path", "no fsspec filesystem")],
)
def test_a_custom_class_that_is_no_filesystem_is_a_config_error(name: str, reason: str):
    with pytest.raises(ConfigError, match=f"ENGINE_STORAGE_CLASSES: x: .*{reason}"):
        register_classes({"x": name})


# --------------------------------------------------------------------------- S3 parts in budget


def test_a_byte_budget_makes_a_holder_wait_until_its_bytes_fit():
    budget = multipart.ByteBudget(10)
    order: list[str] = []
    with budget.hold(6):
        second = threading.Thread(target=lambda: _held(budget, 6, order))
        second.start()
        while budget.waiting == 0:  # the second holder is waiting for room: 6 + 6 > 10
            time.sleep(0.01)
        order.append("first done")
    second.join(10)
    assert order == ["first done", "second held"]
    with budget.hold(25):  # more than the whole budget: it goes alone
        assert budget.held == 25
    assert budget.held == 0 and budget.peak == 25


def _held(budget: multipart.ByteBudget, size: int, order: list[str]) -> None:
    with budget.hold(size):
        order.append("second held")


@pytest.fixture
def s3_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with _s3(request) as made:
        yield made


async def test_s3_objects_written_at_once_keep_their_parts_in_flight_within_the_budget(
    s3_backend: Backend, monkeypatch: pytest.MonkeyPatch
):
    budget = multipart.ByteBudget(6 * MIB)  # one 5 MiB part at a time, however many objects
    monkeypatch.setattr(multipart, "PARTS", budget)
    data = {f"objects/{n}.bin": os.urandom(12 * MIB + n) for n in range(4)}
    async with s3_backend.open() as storage:
        infos = await asyncio.gather(
            *(_write(storage, name, body, compress=None) for name, body in data.items())
        )
    assert budget.peak == 5 * MIB  # full parts went one at a time: the others waited
    assert budget.held == 0
    for info in infos:
        assert s3_backend.stored(info.path) == data[info.path]


def test_an_s3_object_is_sent_from_one_buffer_and_is_invisible_until_committed(
    s3_backend: Backend,
):
    fs, path = s3_backend.fs, f"{s3_backend.path}/big.bin"
    bucket = s3_backend.path.split("/")[0]
    data = os.urandom(11 * MIB + 3)
    file = multipart.MultipartFile(fs, path, 5 * MIB)
    file.write(data[: 5 * MIB + 1])  # the first part goes; one byte waits in the buffer
    buffer = file.buffer
    file.write(data[5 * MIB + 1 :])
    assert file.buffer is buffer and len(buffer) == 5 * MIB  # reused, never regrown
    assert not s3_backend.has("big.bin")
    assert len(fs.list_multipart_uploads(bucket)) == 1
    file.commit()
    assert s3_backend.stored("big.bin") == data
    assert fs.list_multipart_uploads(bucket) == []

    dropped = multipart.MultipartFile(fs, f"{s3_backend.path}/dropped.bin", 5 * MIB)
    dropped.write(data)
    dropped.discard()
    assert not s3_backend.has("dropped.bin") and fs.list_multipart_uploads(bucket) == []


def test_the_malloc_arenas_are_capped_unless_the_operator_set_them(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert workers.fewer_arenas() is False  # the operator's setting stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert workers.fewer_arenas() is (platform.libc_ver()[0] == "glibc")

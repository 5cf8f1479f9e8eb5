"""Binary content both ways, end to end through the module API (in process) against a real file
server (tests/files_server.py, module tests/modules/binfiles): downloads stored byte-exact as they
came, decoded from base64 text and picked out of JSON as base64; written back by a raw PUT, a
multipart POST and base64 inside a JSON PUT, streamed from storage; checksums checked both ways;
and the pieces (uploads read in chunks, a damaged object cut short, the stream decoders)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.errors import BackupDamaged, ChecksumMismatch, SaasError
from engine.language.model import RestoreStep, build
from engine.storage import CHUNK_SIZE, ObjectInfo
from engine.tasks import decoding, uploads
from tests.files_server import File, FilesServer
from tests.taskflow import Backend, Place, module_api, new_uuid, run_module_task
from tests.taskparts import entry, memory_storage, write_object

pytestmark = pytest.mark.anyio
MODULE = Path(__file__).resolve().parent / "modules" / "binfiles"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value, and a PNG's signature
BIG = random.Random(12).randbytes(3 * CHUNK_SIZE + 12345)
TEXT = "caf\u00e9 \u2713\n".encode()
FILES = {
    "pic.png": File(PNG, "image/png"),
    "empty.bin": File(b"", "application/octet-stream"),
    "big.dat": File(BIG, "application/x-big"),
    "notes.txt": File(TEXT, "text/plain; charset=utf-8"),
}


@pytest.fixture(scope="module")
def server() -> Iterator[FilesServer]:
    served = FilesServer().start()
    yield served
    served.stop()


@pytest.fixture
def files(server: FilesServer) -> Iterator[FilesServer]:
    server.drives = {"d1": dict(FILES)}
    server.damaged = set()
    server.clear()
    yield server


@pytest.fixture(scope="module")
def api(area: Backend) -> Iterator[TestClient]:
    with module_api(MODULE, area.allow) as client:
        yield client


def run(api: TestClient, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    return run_module_task(api, path, {"taskUuid": new_uuid()} | body, "binfiles")


def auth(server: FilesServer) -> dict[str, Any]:
    return {"settings": {"server_url": server.url}}


def drive(name: str) -> dict[str, Any]:
    return {"kind": "root@binfiles", "type": "drive", "values": {"drive": name}}


def backup(api: TestClient, files: FilesServer, place: Place) -> dict[str, Any]:
    status, answer = run(
        api, "/api/backup", {"auth": auth(files), "storage": place.storage(), "ctx": drive("d1")}
    )
    assert status == 200 and answer["status"] == "DONE" and answer["errors"] == [], answer
    return place.manifest()


def restore(
    api: TestClient, files: FilesServer, place: Place, way: str, into: str, **more: Any
) -> dict[str, Any]:
    body = {"auth": auth(files), "storage": place.storage(), "ctx": drive("d1")}
    body |= {"scenario": "AS_NEW", "options": {"way": way, "drive": into}} | more
    status, answer = run(api, "/api/restore", body)
    assert status == 200 and answer["status"] == "DONE", answer
    return dict(answer)


@pytest.fixture
def backed_up(api: TestClient, files: FilesServer, area: Backend) -> tuple[Place, dict[str, Any]]:
    place = area.place(new_uuid())
    return place, backup(api, files, place)


# --------------------------------------------------------------------------- backup


def test_each_way_in_stores_every_file_byte_exact_with_its_type_and_size(
    backed_up: tuple[Place, dict[str, Any]],
):
    place, manifest = backed_up
    objects = {obj["path"]: obj for obj in manifest["objects"]}
    for name, file in FILES.items():
        for way in ("raw", "text", "json"):
            path = f"d1/{way}/{name}.zst"
            assert place.contents(path, "zstd") == file.data, path
            assert objects[path]["format"] == "raw"
            assert objects[path]["rawSize"] == len(file.data)
        raw = objects[f"d1/raw/{name}.zst"]["meta"]
        assert raw["contentType"] == file.content_type  # the answer's, recorded
        assert raw["size"] == len(file.data)
        assert raw["filename"] == name
        # the step's own meta wins over the answer's Content-Type (text/plain for base64)
        assert objects[f"d1/text/{name}.zst"]["meta"]["contentType"] == file.content_type


def test_a_download_whose_bytes_differ_from_the_checksum_the_saas_reports_is_an_error_naming_it(
    api: TestClient, files: FilesServer, area: Backend
):
    files.damaged = {"pic.png"}
    place = area.place(new_uuid())
    body = {"auth": auth(files), "storage": place.storage(), "ctx": drive("d1")}

    status, answer = run(api, "/api/backup", body)

    assert status == 502, answer  # a required step failed: the backup is incomplete
    errors = answer["error"]["payload"]["errors"]
    assert any(
        "sha256" in error["description"] and "pic.png" in error["description"] for error in errors
    ), errors
    assert "d1/raw/pic.png.zst" not in place.files()  # the object was never committed
    assert "manifest.json" not in place.files()


# --------------------------------------------------------------------------- restore


def test_a_raw_put_writes_every_file_back_byte_exact_with_its_content_type(
    api: TestClient, files: FilesServer, backed_up: tuple[Place, dict[str, Any]]
):
    answer = restore(api, files, backed_up[0], "raw", "copy")

    assert answer["errors"] == []
    assert files.drives["copy"] == FILES
    puts = [r for r in files.requests if r.method == "PUT"]
    assert sorted(r.headers["content-length"] for r in puts) == sorted(
        str(len(file.data)) for file in FILES.values()
    )
    assert all("transfer-encoding" not in r.headers for r in puts)


def test_a_multipart_post_carries_the_bytes_filename_type_and_the_other_fields(
    api: TestClient, files: FilesServer, backed_up: tuple[Place, dict[str, Any]]
):
    answer = restore(api, files, backed_up[0], "multipart", "copy")

    assert answer["errors"] == []
    got = files.drives["copy"]
    assert {name: (file.data, file.content_type) for name, file in got.items()} == {
        name: (file.data, file.content_type) for name, file in FILES.items()
    }
    fields = dict(got["big.dat"].fields)
    assert fields["origin"] == "d1"
    assert json.loads(fields["about"]) == {"size": len(BIG)}


def test_base64_in_a_json_body_is_written_back_byte_exact(
    api: TestClient, files: FilesServer, backed_up: tuple[Place, dict[str, Any]]
):
    answer = restore(api, files, backed_up[0], "base64", "copy")

    assert answer["errors"] == []
    assert files.drives["copy"] == FILES
    sent = next(r for r in files.requests if r.method == "PUT" and r.path.endswith("/pic.png"))
    assert sent.json()["data"] == {
        "name": "pic.png",
        "type": "image/png",
        "content": base64.b64encode(PNG).decode(),
    }


def test_a_binary_written_back_as_text_is_an_error_naming_it_and_the_task_goes_on(
    api: TestClient, files: FilesServer, backed_up: tuple[Place, dict[str, Any]]
):
    answer = restore(api, files, backed_up[0], "text", "copy")

    failed = answer["errors"]
    # each names its resource (the drive) and, in its description, the object
    assert {(e["code"], e["resourceType"], e["resource"]) for e in failed} == {
        ("NOT_TEXT", "drive", "d1")
    }
    assert sorted(error["description"].split(" ", 1)[0] for error in failed) == [
        "d1/raw/big.dat.zst",
        "d1/raw/pic.png.zst",
    ]
    # the text file and the empty one went through; nothing of the binaries was written
    assert {name: file.data for name, file in files.drives["copy"].items()} == {
        "notes.txt": TEXT,
        "empty.bin": b"",
    }


def test_a_dry_run_lists_the_uploads_and_sends_nothing(
    api: TestClient, files: FilesServer, backed_up: tuple[Place, dict[str, Any]]
):
    answer = restore(api, files, backed_up[0], "raw", "copy", dryRun=True)

    assert answer["dryRun"]["writes"] == len(FILES)
    assert {request["path"] for request in answer["dryRun"]["requests"]} == {
        f"/drives/copy/files/{name}" for name in FILES
    }
    assert [r for r in files.requests if r.method != "GET"] == []


def test_a_stored_object_changed_after_the_backup_stops_the_restore_before_any_write(
    api: TestClient, files: FilesServer, area: Backend
):
    place = area.place(new_uuid())
    backup(api, files, place)
    stored = bytearray(place.read("d1/raw/big.dat.zst"))
    stored[len(stored) // 2] ^= 0xFF
    place.write("d1/raw/big.dat.zst", bytes(stored))
    files.clear()
    body = {"auth": auth(files), "storage": place.storage(), "ctx": drive("d1")}
    body |= {"scenario": "AS_NEW", "options": {"way": "raw", "drive": "copy"}}

    status, answer = run(api, "/api/restore", body)

    assert status == 400 and answer["error"]["code"] == "CHECKSUM_MISMATCH", answer
    assert [r for r in files.requests if r.method != "GET"] == []


# --------------------------------------------------------------------------- the pieces


async def test_an_upload_reads_the_object_in_storage_chunks_never_whole():
    with memory_storage() as storage:
        info = await write_object(storage, "d1/raw/big.dat.zst", BIG)
        object_entry = entry("drive", "raw", {"drive": "d1"}, info=info, data_format="raw")
        body = uploads.body(storage, object_entry, _put_raw(), {}, "/p")
        pieces = [len(piece) async for piece in body.open()]

    assert sum(pieces) == body.length == len(BIG)
    assert len(pieces) >= 4 and max(pieces) <= CHUNK_SIZE


async def test_a_damaged_object_is_cut_short_before_its_last_chunk_goes_out():
    with memory_storage() as storage:
        info = await write_object(storage, "d1/raw/big.dat.zst", BIG)
        wrong = ObjectInfo(info.path, info.size, "0" * 64, info.raw_size, info.compression, 1)
        object_entry = entry("drive", "raw", {"drive": "d1"}, info=wrong, data_format="raw")
        sent = 0
        with pytest.raises(ChecksumMismatch):
            async for piece in uploads.chunks(storage, object_entry):
                sent += len(piece)

    assert 0 < sent < len(BIG)


async def test_an_object_whose_size_differs_from_its_entry_is_cut_short_too():
    with memory_storage() as storage:
        info = await write_object(storage, "d1/raw/pic.png.zst", PNG)
        longer = ObjectInfo(info.path, info.size, info.sha256, info.raw_size + 1, "zstd", 1)
        object_entry = entry("drive", "raw", {"drive": "d1"}, info=longer, data_format="raw")
        with pytest.raises(BackupDamaged, match="holds 776 bytes"):
            _ = [piece async for piece in uploads.chunks(storage, object_entry)]


def _put_raw() -> RestoreStep:
    request = {"method": "PUT", "path": "/x"}
    return build(RestoreStep, {"from": "raw", "request": request, "upload": "raw"})


async def _decoded(sink_of: Any, data: bytes, size: int) -> bytes:
    out = bytearray()

    async def sink(chunk: bytes) -> None:
        out.extend(chunk)

    decoder = sink_of(sink)
    for start in range(0, len(data), size):
        await decoder(data[start : start + size])
    decoder.close()
    return bytes(out)


@pytest.mark.parametrize("size", [1, 3, 5, 4096])
async def test_base64_text_decodes_chunk_by_chunk_whatever_the_cuts_and_line_breaks(size: int):
    text = base64.encodebytes(PNG)

    assert await _decoded(lambda sink: decoding.Base64(sink, "GET /x"), text, size) == PNG


@pytest.mark.parametrize("text", [b"QUJD=", b"QUJ*", b"QQ==QUJD"])
async def test_text_that_is_not_whole_base64_is_a_saas_error(text: bytes):
    with pytest.raises(SaasError, match="GET /x"):
        await _decoded(lambda sink: decoding.Base64(sink, "GET /x"), text, 2)


@pytest.mark.parametrize("size", [1, 2, 7, 100000])
async def test_a_string_field_is_picked_from_json_as_it_streams_escapes_and_all(size: int):
    value = 'a"b\\c/\u00e9\u2713' + "x" * 300
    document = {"skip": ['\\"', {"file": 1}], "n": -1.5e3, "file": {"z": None, "content": value}}
    text = json.dumps(document).replace("/", "\\/").encode()

    def picked(sink: Any) -> decoding.StringField:
        return decoding.StringField(["file", "content"], sink, "GET /x")

    assert (await _decoded(picked, text, size)).decode() == value


@pytest.mark.parametrize(
    ("select", "path"),
    [("@", []), ("data.content", ["data", "content"]), ("files[2].blob", ["files", 2, "blob"])],
)
def test_plain_paths_are_understood_and_other_selectors_are_not(select: str, path: list[Any]):
    assert decoding.field_path(select) == path
    assert decoding.field_path("files[?x].blob") is None
    assert decoding.field_path("[0]") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [({"file": {"content": 5}}, "is not a string"), ({"file": {}}, "no complete string")],
)
async def test_a_json_answer_without_the_string_is_a_saas_error(document: Any, message: str):
    def picked(sink: Any) -> decoding.StringField:
        return decoding.StringField(["file", "content"], sink, "GET /x")

    with pytest.raises(SaasError, match=message):
        await _decoded(picked, json.dumps(document).encode(), 3)


def test_a_checksum_the_saas_reports_that_differs_is_a_saas_error_naming_it():
    digests = decoding.Digests({"sha256": "AB"}, "GET /x")
    asyncio.run(digests.wrap(_nothing)(b"x"))
    with pytest.raises(SaasError, match="sha256"):
        digests.check()


async def _nothing(chunk: bytes) -> None:
    return None

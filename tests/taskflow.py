"""Helpers for the task end-to-end tests: driving a task through /api/status to its end, Kinto
data made and read back for comparison, and backup places on four storage backends with a direct
fsspec client to look at (and damage) what the engine wrote."""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import fsspec.asyn
import gcsfs
import httpx
import s3fs
import zstandard
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from scripts import servers

ROOT = Path(__file__).resolve().parents[1]
KINTO_MODULE = ROOT / "modules" / "kinto"
TASK_STATES = {"PENDING", "RUNNING", "DONE"}
S3_SECRET = "s3-Secret-Value-7Qx-never-shown"  # moto takes any key and secret
POLL_SECONDS = 0.05
READERS = 53  # distinct read principals among the seeded records

# --------------------------------------------------------------------------- driving tasks


class Poster(Protocol):
    """An HTTP client of the module API: a TestClient or an httpx.Client with a base_url."""

    def post(self, url: str, *, json: Any) -> Any: ...


def auth_of(kinto: servers.KintoServer) -> dict[str, Any]:
    """The module's auth for a Kinto's admin account."""
    user, password = kinto.admin
    return {"settings": {"server_url": kinto.url, "username": user, "password_secret": password}}


def new_uuid() -> str:
    return str(uuid.uuid4())


def status_body(start: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """The /api/status request for the task ``start`` began, given its last answer."""
    return {
        "auth": start["auth"],
        "taskUuid": start["taskUuid"],
        "ctx": answer["ctx"],
        "storage": start["storage"],
    }


def check_answer(start: Mapping[str, Any], status: int, answer: Any, *, polled: bool) -> None:
    """Fail unless an answer has the task shape (200) or the error shape (anything else)."""
    assert isinstance(answer, dict), answer
    if status != 200:
        error = answer.get("error")
        assert isinstance(error, dict), answer
        assert {"code", "description"} <= error.keys(), answer
        if polled:  # a failed task names itself in every later status answer
            assert error.get("payload", {}).get("taskUuid") == start["taskUuid"], answer
        return
    assert answer.get("status") in TASK_STATES, answer
    assert answer.get("taskUuid") == start["taskUuid"], answer
    assert isinstance(answer.get("errors"), list), answer
    ctx = answer.get("ctx")
    assert isinstance(ctx, dict), answer
    assert ctx.get("taskUuid") == start["taskUuid"], answer
    assert str(ctx.get("kind", "")).endswith("@kinto"), answer


def post(client: Poster, path: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """POST body; the answer's HTTP status and its JSON (or its text when not JSON)."""
    answer = client.post(path, json=dict(body))
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, answer.text


@dataclass
class Running:
    """A started task: what it was started with and its last answer."""

    path: str
    start: dict[str, Any]
    status: int
    answer: Any
    answers: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status != 200 or self.answer.get("status") == "DONE"

    def poll(self, client: Poster) -> None:
        self.status, self.answer = post(client, "/api/status", status_body(self.start, self.answer))
        check_answer(self.start, self.status, self.answer, polled=True)
        self.answers.append((self.status, self.answer))


def start_task(client: Poster, path: str, body: Mapping[str, Any]) -> Running:
    """POST a task's start call and check its answer's shape."""
    status, answer = post(client, path, body)
    check_answer(body, status, answer, polled=False)
    return Running(path, dict(body), status, answer, [(status, answer)])


def finish(client: Poster, tasks: list[Running], *, timeout: float = 60.0) -> None:
    """Poll each task with its last ctx until every one is DONE or answered an error."""
    deadline = time.monotonic() + timeout
    while not all(task.finished for task in tasks):
        if time.monotonic() > deadline:
            late = [(task.path, task.status, task.answer) for task in tasks if not task.finished]
            raise AssertionError(f"tasks not finished within {timeout:.0f} s: {late}")
        time.sleep(POLL_SECONDS)
        for task in tasks:
            if not task.finished:
                task.poll(client)


def run_tasks(
    client: Poster,
    calls: list[tuple[str, dict[str, Any]]],
    *,
    timeout: float = 60.0,
    trail: list[Any] | None = None,
) -> list[tuple[int, Any]]:
    """Start every task at once, then poll them all until each is DONE or an error; the last
    (HTTP status, body) of each. ``trail`` collects every answer on the way."""
    tasks = [start_task(client, path, body) for path, body in calls]
    try:
        finish(client, tasks, timeout=timeout)
    finally:
        if trail is not None:
            trail += [answer for task in tasks for _, answer in task.answers]
    return [(task.status, task.answer) for task in tasks]


def run_task(
    client: Poster,
    path: str,
    body: dict[str, Any],
    *,
    timeout: float = 60.0,
    trail: list[Any] | None = None,
) -> tuple[int, Any]:
    """Start a task and poll /api/status until DONE or an error; (HTTP status, last body).
    An error may come from the start call or from any later status call."""
    return run_tasks(client, [(path, body)], timeout=timeout, trail=trail)[0]


def assert_done(result: tuple[int, Any]) -> dict[str, Any]:
    """The final answer of a task that must have finished without any error."""
    status, answer = result
    assert status == 200, answer
    assert answer["status"] == "DONE", answer
    assert answer["errors"] == [], answer["errors"]
    return dict(answer)


def assert_error(result: tuple[int, Any], status: int | None, code: str) -> str:
    """The description of a task's fatal error, which must have this code (and status)."""
    got, answer = result
    assert got != 200, answer
    if status is not None:
        assert got == status, answer
    assert answer["error"]["code"] == code, answer
    return str(answer["error"]["description"])


def root_ctxs(client: Poster, auth: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every root's ctx by its id, from /api/roots (following paginationCtx)."""
    found: dict[str, dict[str, Any]] = {}
    pagination: Any = None
    for _ in range(1000):
        status, page = post(client, "/api/roots", {"auth": auth, "paginationCtx": pagination})
        assert status == 200, page
        found |= {root["id"]: root["ctx"] for root in page["resources"]}
        pagination = page.get("paginationCtx")
        if pagination is None:
            return found
    raise AssertionError("the roots listing never ended")


# --------------------------------------------------------------------------- Kinto data


@dataclass(frozen=True)
class Shape:
    """What to seed: bucket id -> record count of each of its collections, and group counts."""

    collections: dict[str, list[int]]
    groups: dict[str, int]

    @property
    def buckets(self) -> list[str]:
        return list(self.collections)

    @property
    def record_count(self) -> int:
        return sum(sum(sizes) for sizes in self.collections.values())

    def record_ids(self) -> list[str]:
        return [
            record_id(bucket, c, n)
            for bucket, sizes in self.collections.items()
            for c, size in enumerate(sizes)
            for n in range(size)
        ]


def collection_id(index: int) -> str:
    return f"c{index:02d}"


def record_id(bucket: str, collection: int, index: int) -> str:
    """Unique in the whole Kinto, and found nowhere else in a backup (see record_counts)."""
    return f"rec-{bucket}-{collection:02d}-{index:05d}"


def _record(bucket: str, collection: int, index: int, groups: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "data": {
            "title": f"Record {index} — ünïcode ✓ 🗂",
            "count": index,
            "big": 2**53 - index,
            "ratio": index / 7,
            "done": index % 2 == 0,
            "note": None,
            "empty": {"list": [], "map": {}, "text": ""},
            "tags": [f"t{index % 3}", f"t{index % 5}"],
            "nested": {"level": {"deep": [index, {"x": str(index)}]}},
        }
    }
    if index % 97 == 0:
        body["data"]["long"] = "lorem ipsum " * 200
    if index % 7 != 6:  # most records grant read, to one of many principals; some grant nothing
        # (a principal per record would be truer still, but Kinto's memory permission backend
        # then spends twice the time on every request)
        readers = [f"account:reader-{(index + collection) % READERS}"]
        if index % 11 == 0:
            readers.append("system.Authenticated")
        body["permissions"] = {"read": readers}
    if index % 5 == 1 and groups:
        body.setdefault("permissions", {})["write"] = [f"/buckets/{bucket}/groups/g00"]
    return body


def _bucket_requests(bucket: str, sizes: list[int], groups: int) -> list[dict[str, Any]]:
    base = f"/buckets/{bucket}"
    bucket_body = {
        "data": {"title": f"Bucket {bucket}", "tier": 3},
        "permissions": {"read": ["account:admin", f"account:viewer-{bucket}"]},
    }
    requests = [{"method": "PUT", "path": base, "body": bucket_body}]
    for g in range(groups):
        members = ["account:admin", f"account:member-{bucket}-{g}"]
        body: dict[str, Any] = {"data": {"members": members, "label": f"Group {g} ✓"}}
        requests.append({"method": "PUT", "path": f"{base}/groups/g{g:02d}", "body": body})
    for c, size in enumerate(sizes):
        cid = collection_id(c)
        body = {
            "data": {"title": f"Collection {cid} of {bucket}", "order": c},
            "permissions": {"record:create": [f"account:writer-{bucket}"]},
        }
        requests.append({"method": "PUT", "path": f"{base}/collections/{cid}", "body": body})
        for n in range(size):
            path = f"{base}/collections/{cid}/records/{record_id(bucket, c, n)}"
            body = _record(bucket, c, n, groups)
            requests.append({"method": "PUT", "path": path, "body": body})
    return requests


def kinto_client(url: str, auth: servers.Auth) -> httpx.Client:
    return httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=60, trust_env=False)


def seed(kinto: servers.KintoServer, shape: Shape) -> dict[str, Any]:
    """Create the buckets of shape (with collections, groups and records) through /batch; the
    Kinto's content as dump_all reads it, from the PUT answers (each carries what was stored,
    last_modified included), which spares a whole dump."""
    requests: list[dict[str, Any]] = []
    for bucket, sizes in shape.collections.items():
        requests += _bucket_requests(bucket, sizes, shape.groups.get(bucket, 0))
    with kinto_client(kinto.url, kinto.admin) as client:
        answers = servers.kinto_batch(client, requests)
    dump: dict[str, Any] = {"buckets": {}}
    for request, answer in zip(requests, answers, strict=True):
        _place(dump, request["path"].strip("/").split("/"), answer["body"])
    return dict(normalized(dump))


def _place(dump: dict[str, Any], path: list[str], body: Mapping[str, Any]) -> None:
    """Put an object's answer where kinto_dump puts it (path: buckets/b/collections/c/...)."""
    node = {"data": body["data"], "permissions": body.get("permissions", {})}
    if len(path) == 2:
        node |= {"groups": {}, "collections": {}}
    elif path[-2] == "collections":
        node["records"] = {}
    parent = dump
    for index in range(0, len(path) - 2, 2):
        parent = parent[path[index]][path[index + 1]]
    parent[path[-2]][path[-1]] = node


def _read_all(client: httpx.Client, list_path: str) -> dict[str, dict[str, Any]]:
    ids = [item["id"] for page in servers.kinto_list(client, list_path) for item in page]
    gets = [{"method": "GET", "path": f"{list_path}/{oid}"} for oid in ids]
    bodies = [answer["body"] for answer in servers.kinto_batch(client, gets)]
    assert len(set(ids)) == len(ids), f"{list_path} lists an id twice"
    return {
        oid: {"data": body["data"], "permissions": body.get("permissions", {})}
        for oid, body in zip(ids, bodies, strict=True)
    }


def dump_buckets(kinto: servers.KintoServer, buckets: list[str]) -> dict[str, Any]:
    """What servers.kinto_dump returns, for the named buckets only (absent ones left out)."""
    dump: dict[str, Any] = {"buckets": {}}
    with kinto_client(kinto.url, kinto.admin) as client:
        for bid in buckets:
            answer = client.get(f"/buckets/{bid}")
            if answer.status_code in {403, 404}:  # Kinto hides a missing bucket behind 403
                continue
            answer.raise_for_status()
            body = answer.json()
            bucket = {"data": body["data"], "permissions": body.get("permissions", {})}
            bucket["groups"] = _read_all(client, f"/buckets/{bid}/groups")
            bucket["collections"] = _read_all(client, f"/buckets/{bid}/collections")
            for cid, collection in bucket["collections"].items():
                path = f"/buckets/{bid}/collections/{cid}/records"
                collection["records"] = _read_all(client, path)
            dump["buckets"][bid] = bucket
    return dict(normalized(dump))


def dump_all(kinto: servers.KintoServer) -> dict[str, Any]:
    """servers.kinto_dump of a whole Kinto, normalized."""
    return dict(normalized(servers.kinto_dump(kinto.url, kinto.admin)))


def normalized(value: Any) -> Any:
    """A dump with each permission's principals sorted (Kinto keeps them as sets, so their
    order differs between processes) and empty permissions left out."""
    if isinstance(value, dict):
        return {
            key: _principals(item) if key == "permissions" else normalized(item)
            for key, item in value.items()
        }
    return value


def _principals(permissions: Mapping[str, list[str]]) -> dict[str, list[str]]:
    return {name: sorted(principals) for name, principals in permissions.items() if principals}


def differences(got: Any, want: Any, path: str = "", limit: int = 20) -> list[str]:
    """Where two dumps differ, as short lines (pytest's own diff of 5,000 records takes ages)."""
    found: list[str] = []
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want), key=str):
            if key not in got:
                found.append(f"{path}/{key}: missing")
            elif key not in want:
                found.append(f"{path}/{key}: unexpected")
            else:
                found += differences(got[key], want[key], f"{path}/{key}", limit - len(found))
            if len(found) >= limit:
                break
    elif got != want:
        found.append(f"{path}: {str(got)[:200]} != {str(want)[:200]}")
    return found[:limit]


def assert_same(got: Any, want: Any) -> None:
    diff = differences(got, want)
    assert not diff, "dumps differ:\n" + "\n".join(diff)


def without_last_modified(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_last_modified(v) for k, v in value.items() if k != "last_modified"}
    return value


def delete_buckets(kinto: servers.KintoServer, buckets: list[str]) -> None:
    with kinto_client(kinto.url, kinto.admin) as client:
        for bucket in buckets:
            client.delete(f"/buckets/{bucket}").raise_for_status()


def count_records(dump: Mapping[str, Any]) -> int:
    return sum(
        len(collection["records"])
        for bucket in dump["buckets"].values()
        for collection in bucket["collections"].values()
    )


# --------------------------------------------------------------------------- storage


@dataclass
class Place:
    """One backup's root (the request's storage) and a direct client that looks at it."""

    url: str
    options: dict[str, Any]
    fs: Any  # an fsspec filesystem, independent of the engine's own
    root: str  # the root as fs names it

    def storage(self) -> dict[str, Any]:
        """The request's ``storage`` field."""
        return {"url": self.url} | ({"options": self.options} if self.options else {})

    def files(self) -> list[str]:
        """Every object's path below the root, sorted."""
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self.root, withdirs=False)
        except FileNotFoundError:
            return []
        return sorted(str(path).removeprefix(f"{self.root}/") for path in found)

    def read(self, relative: str) -> bytes:
        self.fs.invalidate_cache()
        return bytes(self.fs.cat_file(f"{self.root}/{relative}"))

    def write(self, relative: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{relative}", data)

    def remove(self, relative: str) -> None:
        self.fs.rm(f"{self.root}/{relative}")

    def manifest(self) -> dict[str, Any]:
        data = json.loads(self.read("manifest.json"))
        assert isinstance(data, dict)
        return data

    def contents(self, relative: str, compression: str | None) -> bytes:
        """An object's bytes as the module wrote them (decompressed)."""
        stored = self.read(relative)
        if compression is None:
            return stored
        assert compression == "zstd", compression
        return bytes(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored)).read())


def json_documents(text: bytes, path: str) -> list[Any]:
    """The JSON values of a .json object (one) or a .jsonl object (one per line)."""
    if path.removesuffix(".zst").endswith(".jsonl"):
        return [json.loads(line) for line in text.decode().splitlines() if line.strip()]
    return [json.loads(text)]


def check_manifest(place: Place) -> dict[str, Any]:
    """The manifest, after checking that it names every data object with its size and SHA-256
    and that its paths are relative and outside the engine's own places."""
    manifest = place.manifest()
    listed = [entry["path"] for entry in manifest["objects"]]
    assert len(set(listed)) == len(listed), "an object is listed twice"
    for entry in manifest["objects"]:
        path = entry["path"]
        assert not path.startswith(("/", ".engine")) and path != "manifest.json", path
        stored = place.read(path)
        assert len(stored) == entry["size"], path
        assert hashlib.sha256(stored).hexdigest() == entry["sha256"], path
    return manifest


def unlisted(place: Place) -> list[str]:
    """Files under a backup's root that neither its manifest nor the engine's folder explain
    (a half-written object left behind, say)."""
    listed = {entry["path"] for entry in place.manifest()["objects"]} | {"manifest.json"}
    files = [path for path in place.files() if not path.startswith(".engine/")]
    return [path for path in files if path not in listed]


def count_ids(documents: list[Any], ids: list[str]) -> dict[str, int]:
    """How often each id is the ``id`` of a JSON object anywhere in documents."""
    wanted = set(ids)
    counts = dict.fromkeys(ids, 0)
    stack = list(documents)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("id") in wanted:
                counts[node["id"]] += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return counts


def backup_documents(place: Place) -> list[Any]:
    """Every JSON value of every data object the manifest lists, decompressed."""
    documents: list[Any] = []
    for entry in place.manifest()["objects"]:
        text = place.contents(entry["path"], entry.get("compression"))
        documents += json_documents(text, entry["path"])
    return documents


def flip_a_byte(place: Place, relative: str) -> None:
    """Corrupt one stored object in place (same size, one bit differs)."""
    data = bytearray(place.read(relative))
    data[len(data) // 2] ^= 0x01
    place.write(relative, bytes(data))


def readable(name: str, data: bytes) -> str:
    """A stored object's text (for secret scans), decompressed when it is zstd."""
    if name.endswith(".zst"):
        with suppress(zstandard.ZstdError):  # a test corrupted it: scan its raw bytes
            data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data.decode(errors="replace")


def files_under(fs: Any, path: str) -> dict[str, bytes]:
    """Every file below path with its bytes (for secret scans)."""
    fs.invalidate_cache()
    try:
        found = fs.find(path, withdirs=False)
    except FileNotFoundError:
        return {}
    return {str(name): bytes(fs.cat_file(name)) for name in found}


@dataclass
class Backend:
    """A storage area of one backend for one test: the prefix to allow and its places."""

    name: str
    allow: str  # an ENGINE_STORAGE_ALLOW prefix
    fs: Any
    base: str  # the allowed prefix as fs names it
    options: dict[str, Any]

    def place(self, name: str) -> Place:
        """A fresh backup root (one per backup, as the platform gives)."""
        return Place(f"{self.allow}/{name}", self.options, self.fs, f"{self.base}/{name}")

    def everything(self) -> dict[str, bytes]:
        return files_under(self.fs, self.base)


@contextmanager
def local_backend(folder: Path) -> Iterator[Backend]:
    fs = LocalFileSystem(auto_mkdir=True)
    yield Backend("local", f"file://{folder}", fs, str(folder), {})


@contextmanager
def memory_backend() -> Iterator[Backend]:
    fs = MemoryFileSystem()
    area = f"tasks-{uuid.uuid4().hex[:12]}"  # one store per process: a name of our own
    yield Backend("memory", f"memory://{area}", fs, f"/{area}", {})
    if fs.exists(f"/{area}"):
        fs.rm(f"/{area}", recursive=True)


@contextmanager
def s3_backend(moto: servers.Server) -> Iterator[Backend]:
    options = {
        "key": "test-key-id",
        "secret": S3_SECRET,
        "client_kwargs": {"endpoint_url": moto.url},
    }
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True, use_listings_cache=False)
    with _bucket_backend("s3", "s3", fs, options) as backend:
        yield backend


@contextmanager
def gcs_backend(fake_gcs: servers.Server) -> Iterator[Backend]:
    options = {"token": "anon", "endpoint_url": fake_gcs.url}
    fs = gcsfs.GCSFileSystem(**options, skip_instance_cache=True, use_listings_cache=False)
    with _bucket_backend("gcs", "gs", fs, options) as backend:
        yield backend


@contextmanager
def _bucket_backend(name: str, scheme: str, fs: Any, options: dict[str, Any]) -> Iterator[Backend]:
    """A fresh bucket on S3 or GCS, removed afterwards."""
    bucket = f"tasks-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    try:
        yield Backend(name, f"{scheme}://{bucket}", fs, bucket, options)
    finally:
        fs.rm(bucket, recursive=True)
        close_client(fs)


def close_client(fs: Any) -> None:
    """Close a direct s3fs/gcsfs client's aiohttp session on fsspec's loop (no ResourceWarning)."""
    if isinstance(fs, s3fs.S3FileSystem) and getattr(fs, "_s3creator", None) is not None:
        fsspec.asyn.sync(fs.loop, fs._s3creator.__aexit__, None, None, None)
        fs._s3creator = None
    elif isinstance(fs, gcsfs.GCSFileSystem) and fs._session is not None:
        fsspec.asyn.sync(fs.loop, fs._session.close)


# --------------------------------------------------------------------------- any module's tasks
# run_task checks every answer against the Kinto module (a ctx kind ending in @kinto); this one
# drives a task of the module it is told.


@contextmanager
def module_api(folder: Path, allow: str) -> Iterator[Any]:
    """An engine serving the module in folder in process (a TestClient, its lifespan running
    the tasks), storage allowed under allow."""
    # imported here: a broken engine module then fails these tests, not the helpers' import
    from starlette.testclient import TestClient

    from engine.api.app import create_app
    from engine.language.loader import load_module
    from engine.settings import Settings

    app = create_app(load_module(folder), Settings(storage_allow=(allow,)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def run_module_task(
    client: Poster, path: str, body: dict[str, Any], module: str, *, timeout: float = 60.0
) -> tuple[int, Any]:
    """Start a task of module ``module`` and poll /api/status until DONE or an error; the last
    (HTTP status, body). Every running answer must name the task and the module."""
    status, answer = post(client, path, body)
    deadline = time.monotonic() + timeout
    while status == 200 and answer.get("status") != "DONE":
        assert answer.get("taskUuid") == body["taskUuid"], answer
        assert answer["ctx"]["kind"].endswith(f"@{module}"), answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not finish within {timeout:.0f} s: {answer}")
        time.sleep(POLL_SECONDS)
        status, answer = post(client, "/api/status", status_body(body, answer))
    return status, answer

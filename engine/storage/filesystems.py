"""What the storage layer asks of an fsspec filesystem: protocol lookups, custom classes, files
that nobody sees until they are committed, and the blocking calls behind Storage's methods.

The only module that imports fsspec. Its callers run these calls in worker threads, which serves
sync backends (local, memory, custom classes) and s3fs/gcsfs (whose sync API runs on fsspec's own
event-loop thread) alike.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib
import io
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias, cast
from urllib.parse import quote

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
import fsspec.asyn  # type: ignore[import-untyped]  # as above
from fsspec.implementations.local import (  # type: ignore[import-untyped]  # as above
    LocalFileSystem,
)
from fsspec.implementations.memory import (  # type: ignore[import-untyped]  # as above
    MemoryFile,
    MemoryFileSystem,
)
from fsspec.spec import (  # type: ignore[import-untyped]  # as above
    AbstractBufferedFile,
    AbstractFileSystem,
)

from engine.errors import ConfigError, LinkEscape, StorageError, StorageNotAllowed
from engine.storage.multipart import MultipartFile

FileSystem: TypeAlias = Any  # an fsspec filesystem (fsspec is untyped)


# --------------------------------------------------------------------------- protocols, classes


def protocol_of(url: str) -> str | None:
    """The protocol the URL names, as written (None for a plain path)."""
    return cast("str | None", fsspec.core.split_protocol(url)[0])


def strip_protocol(protocol: str, url: str) -> str:
    """The URL's path, normalised by the rules of protocol's filesystem."""
    return cast(str, _filesystem_class(protocol, url)._strip_protocol(url))


def _filesystem_class(protocol: str, url: str) -> Any:
    try:
        return fsspec.get_filesystem_class(protocol)
    except ValueError as exc:
        raise StorageNotAllowed(f"unknown storage protocol {protocol}://") from exc
    except ImportError as exc:
        raise StorageError(f"{protocol}:// storage is not installed: {exc}", url=url) from exc


def register_classes(classes: Mapping[str, str]) -> None:
    """Register custom fsspec filesystems (ENGINE_STORAGE_CLASSES: protocol -> "module:Class").

    The class's own ``protocol`` should include the registered name, so it strips it from paths.
    """
    for protocol, name in classes.items():
        fsspec.register_implementation(protocol, _import_class(protocol, name), clobber=True)


def _import_class(protocol: str, name: str) -> type:
    module, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ENGINE_STORAGE_CLASSES: {protocol}: cannot import {name}") from exc
    if not (isinstance(found, type) and issubclass(found, AbstractFileSystem)):
        raise ConfigError(f"ENGINE_STORAGE_CLASSES: {protocol}: {name} is no fsspec filesystem")
    return found


def open_url(url: str, options: Mapping[str, Any]) -> tuple[FileSystem, str]:
    """A new filesystem for the URL, built with options, and the URL's path on it."""
    extra = _SHARED.get(protocol_of(url) or "", dict)()
    fs, root = fsspec.core.url_to_fs(url, **{**extra, **options})
    return fs, str(root)


@functools.cache
def _aws_session() -> Any:
    """The process's one aiobotocore session. Each S3 filesystem makes its own client from it
    (credentials are the client's), but the service models the session loads are parsed once:
    a session per filesystem costs 11-16 MiB of parsed models each, and a task opens several."""
    import aiobotocore.session  # type: ignore[import-untyped]  # noqa: PLC0415  # only for S3

    return aiobotocore.session.AioSession()


# Options every filesystem of a protocol gets unless its own options say otherwise.
_SHARED: dict[str, Callable[[], dict[str, Any]]] = {"s3": lambda: {"session": _aws_session()}}


# --------------------------------------------------------------------------- the allowed area


@dataclass(frozen=True)
class Area:
    """The real folder a local storage stays inside, symbolic links followed (real is None for
    the other backends: they have no links to follow)."""

    real: str | None = None

    def reach(self, path: str) -> None:
        """LinkEscape unless path, read through every link on its way, lies inside the area."""
        if self.real is not None and not _inside(os.path.realpath(path), self.real):
            raise LinkEscape(path)

    def hold(self, path: str) -> None:
        """LinkEscape unless path's folder lies inside the area: writing or removing path
        replaces or unlinks a link there, never its target."""
        self.reach(str(Path(path).parent))


def _inside(real: str, area: str) -> bool:
    return os.path.commonpath([real, area]) == area


def area_of(fs: FileSystem, folder: str) -> Area:
    """The area of the allowed folder (a local path) on fs."""
    # "" is the allowed prefix file:// (the whole filesystem)
    return Area(os.path.realpath(folder or "/")) if isinstance(fs, LocalFileSystem) else Area()


# --------------------------------------------------------------------------- deferred files


class DeferredFile(Protocol):
    """A file being written that nobody sees until commit(); discard() drops it."""

    def write(self, data: bytes | bytearray, /) -> int: ...
    def close(self) -> None: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...


class _SiblingFile:
    """A local file written under a hidden name beside its final one, renamed on commit.

    fsspec's own local autocommit=False writes to the system temp folder and moves the file at
    commit: a copy, not an atomic rename, when that folder is on another device.
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(
            dir=self._path.parent, prefix=f".{self._path.name}.", suffix=".part"
        )
        self._temp = Path(temp)
        self._file = os.fdopen(handle, "wb")

    def write(self, data: bytes | bytearray, /) -> int:
        return self._file.write(data)

    def close(self) -> None:
        """Flush to the disk: the rename must never expose a file whose data is still cached."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def commit(self) -> None:
        self.close()
        self._temp.replace(self._path)

    def discard(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


_SIBLING = re.compile(r"\..+\.[A-Za-z0-9_]+\.part")


def sweep_leftovers(fs: FileSystem, root: str, area: Area) -> int:
    """Remove the hidden files of writes a killed process never committed (local storage: the
    other backends make nothing visible before commit); answers how many there were."""
    if not isinstance(fs, LocalFileSystem):
        return 0
    area.reach(root)
    removed = 0
    for folder, _, names in os.walk(root):
        for name in filter(_SIBLING.fullmatch, names):
            with suppress(FileNotFoundError):
                (Path(folder) / name).unlink()
                removed += 1
    return removed


def _memory_file(fs: FileSystem, path: str) -> DeferredFile:
    # MemoryFileSystem._open ignores autocommit (it commits at open unless in a transaction)
    return cast(DeferredFile, MemoryFile(fs, path))


_DEFERRED_OPENERS: tuple[tuple[type, Callable[[FileSystem, str], DeferredFile]], ...] = (
    (LocalFileSystem, lambda fs, path: _SiblingFile(path)),
    (MemoryFileSystem, _memory_file),
)


def open_deferred(fs: FileSystem, path: str) -> DeferredFile:
    """path opened for writing, invisible until commit()."""
    for kind, opener in _DEFERRED_OPENERS:
        if isinstance(fs, kind):
            return opener(fs, path)
    if "s3" in _protocols(fs):  # our own multipart upload: one reused buffer, a byte budget
        return MultipartFile(fs, path, int(fs.default_block_size))
    # _open, not open: open() also queues the file on the instance's shared transaction
    return cast(DeferredFile, fs._open(path, "wb", autocommit=False))


def defers(file: object) -> bool:
    """False for a buffered fsspec file whose commit/discard are the base class's no-ops."""
    return not (
        isinstance(file, AbstractBufferedFile)
        and type(file).discard is AbstractBufferedFile.discard
    )


def part_size(file: object) -> int | None:
    """The bytes a buffered fsspec file (S3, GCS) sends per upload call, its block size; None
    for a file written straight through (local, memory)."""
    return file.blocksize if isinstance(file, AbstractBufferedFile) else None


# --------------------------------------------------------------------------- blocking calls


def open_read(fs: FileSystem, path: str) -> IO[bytes]:
    """path opened for reading, at its start, with a position of its own: fsspec's memory
    filesystem hands every reader of a path the one stored file, so two readers at once (two
    restores of one backup) moved each other's position, and one met the end early and read
    fewer records with no error; such a reader gets a copy."""
    file = fs.open(path, "rb")
    return io.BytesIO(file.getvalue()) if isinstance(file, MemoryFile) else cast(IO[bytes], file)


def read_prefix(fs: FileSystem, path: str, limit: int, area: Area) -> bytes:
    """The first limit bytes of the file at path (all of it, when shorter)."""
    area.reach(path)
    with open_read(fs, path) as file:
        return file.read(limit)


def exists(fs: FileSystem, path: str, area: Area) -> bool:
    """Whether a file or a folder is at path."""
    area.reach(path)
    # fs.exists() answers False for any error (a wrong endpoint, a refused key): ask info()
    try:
        fs.info(path)
    except FileNotFoundError:
        return False
    return True


def size(fs: FileSystem, path: str, area: Area) -> int | None:
    """The size of the file at path; None when there is no file there."""
    area.reach(path)
    try:
        details = fs.info(path)
    except FileNotFoundError:
        return None
    return int(details["size"]) if details.get("type") == "file" else None


def find(fs: FileSystem, path: str, area: Area) -> dict[str, int]:
    """The path and size of every file below path (none when it is missing)."""
    area.reach(path)
    try:
        found = fs.find(path, withdirs=False, detail=True)
    except FileNotFoundError:
        return {}
    return {str(name): int(info.get("size") or 0) for name, info in found.items()}


def remove_file(fs: FileSystem, path: str, area: Area) -> None:
    """Remove the file at path, if there is one (a link: the link, not its target)."""
    area.hold(path)
    # rm_file, not rm: rm() expands glob characters, which relative paths may hold
    with suppress(FileNotFoundError):
        fs.rm_file(path)


def remove_tree(fs: FileSystem, path: str, area: Area) -> None:
    """Remove path and everything below it, if it is there; a link at path is unlinked, and
    links below it too (shutil.rmtree never follows them), never their targets."""
    area.hold(path)
    if isinstance(fs, LocalFileSystem) and Path(path).is_symlink():
        Path(path).unlink()
        return
    area.reach(path)
    with suppress(FileNotFoundError):
        fs.rm(path, recursive=True)


def close_sessions(fs: FileSystem) -> None:
    """Close s3fs's or gcsfs's aiohttp session now, on fsspec's loop: left to the garbage
    collector, they close at interpreter exit from the wrong thread (ResourceWarnings)."""
    creator = getattr(fs, "_s3creator", None)
    if creator is not None:
        fs._s3creator = None
        fsspec.asyn.sync(fs.loop, creator.__aexit__, None, None, None)
    session = getattr(fs, "_session", None)
    if session is not None and not getattr(session, "closed", True):
        fsspec.asyn.sync(fs.loop, session.close)


# --------------------------------------------------------------------------- versioned objects
# A version names one stored state of an object, so that a write can say "only if it is still
# the state I read" (a compare-and-swap): an ETag on S3, a generation on GCS, and elsewhere the
# SHA-256 of the content, compared and replaced under a lock.

_PROCESS_LOCK = threading.Lock()  # exact for memory://, which lives in this process only


def read_versioned(fs: FileSystem, path: str, area: Area) -> tuple[bytes, str]:
    """The whole file at path (one read, so it never mixes two states) and its version."""
    area.reach(path)
    return _versioning(fs).read(fs, path)


def write_if(fs: FileSystem, path: str, data: bytes, version: str | None, area: Area) -> str | None:
    """Replace the file at path by data only if it is still at version (None: only if there is
    no file): its new version, or None when another writer came first."""
    area.hold(path)
    return _versioning(fs).write(fs, path, data, version)


def versions_exactly(fs: FileSystem) -> bool:
    """Whether write_if is an atomic compare-and-swap on fs (else it is read, compare, write)."""
    return _versioning(fs).exact


@dataclass(frozen=True)
class _Versioning:
    read: Callable[[FileSystem, str], tuple[bytes, str]]
    write: Callable[[FileSystem, str, bytes, str | None], str | None]
    exact: bool


def _protocols(fs: FileSystem) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hashed_read(fs: FileSystem, path: str) -> tuple[bytes, str]:
    data = bytes(fs.cat_file(path))
    return data, _digest(data)


def _current(fs: FileSystem, path: str) -> str | None:
    try:
        return _hashed_read(fs, path)[1]
    except FileNotFoundError:
        return None


def _locked_write(fs: FileSystem, path: str, data: bytes, version: str | None) -> str | None:
    """Compare and replace under this process's lock: exact for memory://, best effort for a
    backend other processes reach (their writes can land between the read and the write)."""
    with _PROCESS_LOCK:
        if _current(fs, path) != version:
            return None
        file = open_deferred(fs, path)
        file.write(data)
        file.commit()
    return _digest(data)


def _local_write(fs: FileSystem, path: str, data: bytes, version: str | None) -> str | None:
    """Compare and replace under an exclusive lock on the file's folder, which every process
    of this host (and each thread, holding its own descriptor) takes in turn."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the descriptor closes
        if _current(fs, path) != version:
            return None
        file = _SiblingFile(path)
        file.write(data)
        file.commit()
    finally:
        os.close(handle)
    return _digest(data)


def _refused(exc: BaseException) -> bool:
    """Whether a backend error says that a write's precondition failed (HTTP 409 or 412)."""
    if isinstance(exc, FileExistsError):  # how s3fs and gcsfs name a failed If-None-Match
        return True
    response = getattr(exc.__cause__, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status in (409, 412)


def _sent_if(fs: FileSystem, path: str, send: Callable[[], Any]) -> Any:
    """What a conditional write answered; None when its precondition failed."""
    try:
        answer = send()
    except OSError as exc:
        if _refused(exc):
            return None
        raise
    fs.invalidate_cache(path)
    return answer


def _s3_read(fs: FileSystem, path: str) -> tuple[bytes, str]:
    bucket, key, _ = fs.split_path(path)
    return cast(tuple[bytes, str], fsspec.asyn.sync(fs.loop, _s3_get, fs, bucket, key))


async def _s3_get(fs: FileSystem, bucket: str, key: str) -> tuple[bytes, str]:
    answer = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    try:
        data = await answer["Body"].read()
    finally:
        answer["Body"].close()
    return data, str(answer["ETag"])


def _s3_write(fs: FileSystem, path: str, data: bytes, version: str | None) -> str | None:
    bucket, key, _ = fs.split_path(path)
    condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
    answer = _sent_if(
        fs, path, lambda: fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
    )
    return None if answer is None else str(answer["ETag"])


def _gcs_read(fs: FileSystem, path: str) -> tuple[bytes, str]:
    bucket, key, _ = fs.split_path(path)
    headers, data = fs.call("GET", "b/{}/o/{}", bucket, key, alt="media")
    return bytes(data), str(headers["X-Goog-Generation"])


_BOUNDARY = "==engine-part=="


def _gcs_write(fs: FileSystem, path: str, data: bytes, version: str | None) -> str | None:
    bucket, key, _ = fs.split_path(path)
    # a multipart upload: the emulator honours ifGenerationMatch there (not on uploadType=media)
    head = f"--{_BOUNDARY}\nContent-Type: application/json; charset=UTF-8\n\n"
    head += json.dumps({"name": key}) + f"\n--{_BOUNDARY}\nContent-Type: application/json\n\n"
    body = head.encode() + data + f"\n--{_BOUNDARY}--".encode()
    answer = _sent_if(
        fs,
        path,
        lambda: fs.call(
            "POST",
            f"{fs._location}/upload/storage/v1/b/{quote(bucket)}/o",  # gcsfs's endpoint base
            uploadType="multipart",
            ifGenerationMatch=version or "0",  # 0: only if there is no object yet
            headers={"Content-Type": f'multipart/related; boundary="{_BOUNDARY}"'},
            data=body,
            json_out=True,
        ),
    )
    return None if answer is None else str(answer["generation"])


_VERSIONINGS: tuple[tuple[Callable[[FileSystem], bool], _Versioning], ...] = (
    (lambda fs: "s3" in _protocols(fs), _Versioning(_s3_read, _s3_write, exact=True)),
    (lambda fs: "gs" in _protocols(fs), _Versioning(_gcs_read, _gcs_write, exact=True)),
    (lambda fs: isinstance(fs, LocalFileSystem), _Versioning(_hashed_read, _local_write, True)),
    (lambda fs: isinstance(fs, MemoryFileSystem), _Versioning(_hashed_read, _locked_write, True)),
)
_BEST_EFFORT = _Versioning(_hashed_read, _locked_write, exact=False)


def _versioning(fs: FileSystem) -> _Versioning:
    return next((found for fits, found in _VERSIONINGS if fits(fs)), _BEST_EFFORT)

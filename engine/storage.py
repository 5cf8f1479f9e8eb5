"""Backup storage on any fsspec backend: one root per backup, paths that cannot leave it, and
objects streamed in compressed, hashed and committed whole (or not at all).

The only module that imports fsspec and zstandard. Every call is async: blocking fsspec calls run
in worker threads, which serves sync backends (local, memory, custom classes) and s3fs/gcsfs
(whose sync API runs on fsspec's own event-loop thread) alike.
"""

from __future__ import annotations

import asyncio
import builtins
import gzip
import hashlib
import importlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ParamSpec, Protocol, Self, TypeAlias, TypeVar, cast

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
import fsspec.asyn  # type: ignore[import-untyped]  # as above
import zstandard
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

from engine.errors import (
    ChecksumMismatch,
    ConfigError,
    EngineError,
    ObjectNotFound,
    PathError,
    StorageError,
    StorageNotAllowed,
)

FileSystem: TypeAlias = Any  # an fsspec filesystem (fsspec is untyped)

CHUNK_SIZE = 1 << 20  # bytes per worker-thread call, read or write: bounds memory per object
JSON_LIMIT = 64 << 20  # read_json reads whole documents: refuse anything larger
ENGINE_DIR = ".engine"  # reserved for the engine (task records): module paths never land there
MANIFEST = "manifest.json"  # the engine's too, written last: a backup without one is incomplete
MAX_PATH_BYTES = 1024  # S3's key limit, the tightest of the backends

_P = ParamSpec("_P")
_T = TypeVar("_T")


# --------------------------------------------------------------------------- URLs and allow-list

_ALIASES = {"local": "file", "gcs": "gs", "s3a": "s3"}

# Protocols whose URL names a host, or that wrap another filesystem named by the URL or the
# options: a request could aim them anywhere, so they are never storage.
_NEVER_STORAGE = frozenset(
    {
        *("http", "https", "ftp", "sftp", "ssh", "smb", "webdav", "webhdfs", "hdfs"),
        *("arrow_hdfs", "jupyter", "jlab", "git", "github", "gist", "root", "dask", "pyscript"),
        *("data", "async_wrapper", "asyncwrapper", "blockcache", "cached", "filecache"),
        *("simplecache", "dir", "generic", "reference", "zip", "tar", "libarchive"),
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")  # fsspec's rm() expands these: a root must never hold one

_URL_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda url: bool(_CONTROL.search(url)), "has a control character"),
    (lambda url: "?" in url or "#" in url, "has a query or a fragment"),
    (lambda url: "@" in url.partition("://")[2].split("/")[0], "carries credentials"),
    (lambda url: bool(_GLOB.search(url)), "has a glob character (*, ? or [)"),
)


def canonical_protocol(url: str) -> str:
    """The URL's protocol under one name per backend ("file" for a plain path)."""
    name = (fsspec.core.split_protocol(url)[0] or "file").lower()
    return _ALIASES.get(name, name)


def check_allowed(url: str, allow: Sequence[str]) -> str:
    """The URL's protocol, if url lies strictly below one of the allowed prefixes."""
    protocol, path = _location(url)
    for prefix in allow:
        if canonical_protocol(prefix) != protocol:
            continue
        base = _prefix_path(prefix)
        if (not base and path) or path.startswith(f"{base}/"):
            return protocol
    raise StorageNotAllowed(
        f"storage url {url} is not inside an allowed storage area (ENGINE_STORAGE_ALLOW)"
    )


def _location(url: str) -> tuple[str, str]:
    """(protocol, path) of a storage URL, the path normalised by its filesystem's own rules."""
    if "::" in url:
        raise StorageNotAllowed("a storage url may not chain filesystems (::)")
    protocol = canonical_protocol(url)
    if protocol in _NEVER_STORAGE:
        raise StorageNotAllowed(f"{protocol}:// reaches arbitrary hosts and is never storage")
    for test, reason in _URL_RULES:
        if test(url):
            raise PathError(f"the storage url {reason}")
    path = _filesystem_class(protocol, url)._strip_protocol(url).rstrip("/")
    segments = path.strip("/").split("/")
    if path.strip("/") and {"", ".", ".."} & set(segments):
        raise PathError(f"storage url {url} has an empty, '.' or '..' segment")
    return protocol, str(path)


def _filesystem_class(protocol: str, url: str) -> Any:
    try:
        return fsspec.get_filesystem_class(protocol)
    except ValueError as exc:
        raise StorageNotAllowed(f"unknown storage protocol {protocol}://") from exc
    except ImportError as exc:
        raise StorageError(f"{protocol}:// storage is not installed: {exc}", url=url) from exc


@lru_cache(maxsize=256)
def _prefix_path(prefix: str) -> str:
    try:
        return _location(prefix)[1]
    except EngineError as exc:
        raise ConfigError(f"ENGINE_STORAGE_ALLOW: {prefix}: {exc.message}") from exc


# --------------------------------------------------------------------------- options

# The storage layer's own defaults, below the engine's: 8 MiB parts keep s3fs's memory bounded
# (50 MiB per open file otherwise); no listings cache, as other engine processes write task
# records under the same root.
_BUILTIN_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"default_block_size": 8 << 20, "use_listings_cache": False},
    "gs": {"use_listings_cache": False},
}
# Each Storage owns its filesystem instance and closes its sessions (aclose): fsspec's instance
# cache would keep one instance, and its connections, per set of credentials for ever.
_MANAGED = {"skip_instance_cache": True}
_DROPPED = ("asynchronous", "loop")  # the storage layer calls the sync API from threads
_MIN_SECRET = 4  # shorter option values are not scrubbed from messages (they would maim them)


def _aws_options(aws: Mapping[str, Any]) -> dict[str, Any]:
    """s3fs options from an awsSessionToken."""
    options: dict[str, Any] = {
        "key": aws.get("accessKeyId"),
        "secret": aws.get("secretAccessKey"),
        "token": aws.get("sessionToken"),
    }
    if aws.get("region"):
        options["client_kwargs"] = {"region_name": aws["region"]}
    return {key: value for key, value in options.items() if value}


def _gc_options(gc: Mapping[str, Any]) -> dict[str, Any]:
    """gcsfs options from a gcAccessToken."""
    options = {"token": gc.get("accessToken"), "project": gc.get("projectId")}
    return {key: value for key, value in options.items() if value}


def _no_token_options(aws: Mapping[str, Any], gc: Mapping[str, Any]) -> dict[str, Any]:
    return {}


_TOKEN_OPTIONS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]] = {
    "s3": lambda aws, gc: _aws_options(aws),
    "gs": lambda aws, gc: _gc_options(gc),
}


def merge_options(
    protocol: str,
    request: Mapping[str, Any] | None,
    *,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    aws: Mapping[str, Any] | None = None,
    gc: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The options for protocol, later layers winning: engine defaults, options derived from
    awsSessionToken/gcAccessToken, the request's; nested objects merge key by key."""
    protocol = _ALIASES.get(protocol, protocol)
    engine = {_ALIASES.get(name, name): options for name, options in (defaults or {}).items()}
    tokens = _TOKEN_OPTIONS.get(protocol, _no_token_options)(aws or {}, gc or {})
    merged: dict[str, Any] = {}
    for layer in (_BUILTIN_OPTIONS.get(protocol, {}), engine.get(protocol, {}), tokens, request):
        merged = _deep_merge(merged, layer or {})
    for key in _DROPPED:
        merged.pop(key, None)
    return {**merged, **_MANAGED}


def _deep_merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping):
            below = merged.get(key)
            merged[key] = _deep_merge(below if isinstance(below, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


def _secret_strings(value: Any) -> frozenset[str]:
    """Every string in the options (the spec treats all of them as secret)."""
    if isinstance(value, str):
        return frozenset({value}) if len(value) >= _MIN_SECRET else frozenset()
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return frozenset().union(*(_secret_strings(item) for item in value))
    return frozenset()


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


# --------------------------------------------------------------------------- errors and paths

_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (FileNotFoundError, "not found"),
    (PermissionError, "access denied"),
    (IsADirectoryError, "it is a folder"),
    (TimeoutError, "timed out"),
)


@dataclass(frozen=True)
class _Boundary:
    """Where foreign errors become StorageError: it names the URL and the action, and scrubs
    every option value from the backend's message."""

    url: str
    secrets: frozenset[str]

    @contextmanager
    def guard(self, action: str, relative: str | None = None) -> Iterator[None]:
        """Translate what the block raises, unless it is the engine's own error."""
        try:
            yield
        except EngineError:
            raise
        # the storage boundary: backends raise anything (OSError, botocore, aiohttp,
        # google-auth, zstandard, custom classes), and all of it means storage failed
        except Exception as exc:
            kind = ObjectNotFound if isinstance(exc, FileNotFoundError) else StorageError
            raise self.error(action, relative, self._reason(exc), kind) from exc

    def error(
        self,
        action: str,
        relative: str | None,
        reason: str,
        kind: type[StorageError] = StorageError,
    ) -> StorageError:
        """A StorageError: "cannot <action> <relative> under <url>: <reason>"."""
        place = f"{relative} under {self.url}" if relative else self.url
        return kind(f"cannot {action} {place}: {reason}", url=self.url, path=relative)

    def _reason(self, exc: Exception) -> str:
        for kind, reason in _REASONS:
            if isinstance(exc, kind):
                return reason
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text[:300]


_PATH_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda path: not path, "is empty"),
    (lambda path: bool(_CONTROL.search(path)), "has a control or invalid character"),
    (lambda path: "\\" in path, "has a backslash"),
    (lambda path: bool(_SCHEME.search(path)), "names a URL scheme"),
    (lambda path: path.startswith("/"), "is absolute"),
    (lambda path: bool({".", ".."} & set(path.split("/"))), "has a '.' or '..' segment"),
    (lambda path: "" in path.split("/"), "has an empty segment"),
    (lambda path: len(path.encode()) > MAX_PATH_BYTES, f"is over {MAX_PATH_BYTES} bytes long"),
)
# Places only the engine writes (resolve(..., engine=True)); module paths may not.
_ENGINE_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (
        lambda path: path.split("/")[0].lower() == ENGINE_DIR,
        f"is under {ENGINE_DIR}/ (the engine's)",
    ),
    (lambda path: path.lower() == MANIFEST, f"is the engine's {MANIFEST}"),
)


def check_path(relative: str, *, template: str | None = None, engine: bool = False) -> str:
    """relative, if it is a safe path below a root; PathError names the template, not values."""
    rules = _PATH_RULES if engine else _PATH_RULES + _ENGINE_RULES
    reason = next((why for test, why in rules if test(relative)), None)
    if reason is None:
        return relative
    subject = f"storage path {relative[:200]!r}"
    if template is not None:
        subject = f"path template {template!r} renders a path that"
    raise PathError(f"{subject} {reason}", template=template)


# --------------------------------------------------------------------------- blocking I/O


class _DeferredFile(Protocol):
    """A file being written that nobody sees until commit(); discard() drops it."""

    def write(self, data: bytes, /) -> int: ...
    def close(self) -> None: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...


class _Stream(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def close(self) -> None: ...


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


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

    def write(self, data: bytes, /) -> int:
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


def _memory_file(fs: FileSystem, path: str) -> _DeferredFile:
    # MemoryFileSystem._open ignores autocommit (it commits at open unless in a transaction)
    return cast(_DeferredFile, MemoryFile(fs, path))


_DEFERRED_OPENERS: tuple[tuple[type, Callable[[FileSystem, str], _DeferredFile]], ...] = (
    (LocalFileSystem, lambda fs, path: _SiblingFile(path)),
    (MemoryFileSystem, _memory_file),
)


def _open_deferred(fs: FileSystem, path: str) -> _DeferredFile:
    """path opened for writing, invisible until commit()."""
    for kind, opener in _DEFERRED_OPENERS:
        if isinstance(fs, kind):
            return opener(fs, path)
    # _open, not open: open() also queues the file on the instance's shared transaction
    return cast(_DeferredFile, fs._open(path, "wb", autocommit=False))


def _defers(file: object) -> bool:
    """False for a buffered fsspec file whose commit/discard are the base class's no-ops."""
    return not (
        isinstance(file, AbstractBufferedFile)
        and type(file).discard is AbstractBufferedFile.discard
    )


class _Counter:
    """Hashes and counts the stored bytes on their way into the file."""

    def __init__(self, file: _DeferredFile) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.file.write(data)
        return len(data)

    def flush(self) -> None:
        """The file flushes itself at close."""

    def close(self) -> None:
        """The upload closes the file."""


@dataclass(frozen=True)
class _Codec:
    """A compression: its default level, its writing and its reading wrapper."""

    level: int
    writer: Callable[[_Counter, int], _Stream]
    reader: Callable[[IO[bytes]], _Source]


def _zstd_writer(sink: _Counter, level: int) -> _Stream:
    compressor = zstandard.ZstdCompressor(level=level)
    return compressor.stream_writer(cast(IO[bytes], sink), closefd=False)


def _zstd_reader(file: IO[bytes]) -> _Source:
    decompressor = zstandard.ZstdDecompressor()
    return decompressor.stream_reader(file, read_size=CHUNK_SIZE, read_across_frames=True)


def _gzip_writer(sink: _Counter, level: int) -> _Stream:
    return gzip.GzipFile(fileobj=cast(IO[bytes], sink), mode="wb", compresslevel=level, mtime=0)


CODECS: dict[str | None, _Codec] = {
    "zstd": _Codec(3, _zstd_writer, _zstd_reader),
    "gzip": _Codec(6, _gzip_writer, lambda file: gzip.GzipFile(fileobj=file, mode="rb")),
    None: _Codec(0, lambda sink, level: sink, lambda file: file),
}


class _Upload:
    """One object on its way into storage, compressed, hashed and counted as it is written."""

    def __init__(self, fs: FileSystem, path: str, codec: _Codec, level: int | None) -> None:
        self._fs = fs
        self._path = path
        self._file = _open_deferred(fs, path)
        self._stored = _Counter(self._file)
        self._stream = codec.writer(self._stored, codec.level if level is None else level)
        self.raw_size = 0

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self.raw_size += len(data)

    def commit(self) -> tuple[int, str]:
        """Make the object visible; its stored size and SHA-256."""
        self._stream.close()
        self._file.close()
        self._file.commit()
        return self._stored.size, self._stored.sha256.hexdigest()

    def discard(self) -> None:
        """Leave no object behind (best effort: another error is on its way up)."""
        steps = [self._stream.close, self._file.close, self._file.discard]
        if not _defers(self._file):
            steps.append(lambda: self._fs.rm_file(self._path))
        for step in steps:
            with suppress(Exception):
                step()


class _Download:
    """One object on its way out of storage, decompressed in bounded pieces."""

    def __init__(self, fs: FileSystem, path: str, codec: _Codec) -> None:
        self._file = fs.open(path, "rb")
        self._stream = codec.reader(self._file)

    def read(self, size: int) -> bytes:
        return self._stream.read(size)

    def digest(self, sha256: hashlib._Hash) -> int:
        """Hash the next chunk; its length (0 at the end)."""
        chunk = self._stream.read(CHUNK_SIZE)
        sha256.update(chunk)
        return len(chunk)

    def close(self) -> None:
        self._stream.close()
        self._file.close()


def _read_prefix(fs: FileSystem, path: str, limit: int) -> bytes:
    with fs.open(path, "rb") as file:
        return cast(bytes, file.read(limit))


def _exists(fs: FileSystem, path: str) -> bool:
    # fs.exists() answers False for any error (a wrong endpoint, a refused key): ask info()
    try:
        fs.info(path)
    except FileNotFoundError:
        return False
    return True


def _size(fs: FileSystem, path: str) -> int | None:
    try:
        details = fs.info(path)
    except FileNotFoundError:
        return None
    return int(details["size"]) if details.get("type") == "file" else None


def _find(fs: FileSystem, path: str) -> builtins.list[str]:
    try:
        return cast(builtins.list[str], fs.find(path, withdirs=False))
    except FileNotFoundError:
        return []


def _remove(fs: FileSystem, path: str) -> None:
    with suppress(FileNotFoundError):
        fs.rm(path, recursive=True)


def _close_sessions(fs: FileSystem) -> None:
    """Close s3fs's or gcsfs's aiohttp session now, on fsspec's loop: left to the garbage
    collector, they close at interpreter exit from the wrong thread (ResourceWarnings)."""
    creator = getattr(fs, "_s3creator", None)
    if creator is not None:
        fs._s3creator = None
        fsspec.asyn.sync(fs.loop, creator.__aexit__, None, None, None)
    session = getattr(fs, "_session", None)
    if session is not None and not getattr(session, "closed", True):
        fsspec.asyn.sync(fs.loop, session.close)


# --------------------------------------------------------------------------- async objects


class _Lane:
    """Runs one object's blocking calls in worker threads, one at a time.

    A cancelled await leaves its thread running; the next call (a discard, say) waits for it,
    so two threads never touch one fsspec file at once.
    """

    def __init__(self) -> None:
        self._last: asyncio.Future[Any] | None = None

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        await self.settle()
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._last = task
        return await asyncio.shield(task)

    async def settle(self) -> Any:
        """The last call's result once its thread is done (None if it failed)."""
        last = self._last
        if last is None:
            return None
        await asyncio.wait([last])
        return None if last.cancelled() or last.exception() else last.result()


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object as the manifest records it; size and sha256 are of the stored bytes."""

    path: str
    size: int
    sha256: str
    raw_size: int
    compression: str | None
    records: int = 0


@dataclass(frozen=True)
class _Place:
    """Where one object lives: its filesystem, backend path, relative path and error boundary."""

    fs: FileSystem
    path: str
    relative: str
    boundary: _Boundary

    def guard(self, action: str) -> AbstractContextManager[None]:
        """Translate foreign errors into StorageError naming this object."""
        return self.boundary.guard(action, self.relative)


class Writer:
    """An object streamed into storage: its ``async with`` block commits it whole on success and
    discards it on any failure. Bump ``records`` per record written; ``info`` describes it."""

    def __init__(
        self, place: _Place, compression: str | None, codec: _Codec, level: int | None
    ) -> None:
        self.records = 0
        self._place = place
        self._compression = compression
        self._codec = codec
        self._level = level
        self._upload: _Upload | None = None
        self._buffer = bytearray()
        self._lane = _Lane()
        self._info: ObjectInfo | None = None

    @property
    def info(self) -> ObjectInfo:
        """The committed object (known once the ``async with`` block is over)."""
        assert self._info is not None, "the writer's block has not committed yet"
        return self._info

    async def __aenter__(self) -> Self:
        place, codec, level = self._place, self._codec, self._level
        try:
            with place.guard("write"):
                self._upload = await self._lane.run(_Upload, place.fs, place.path, codec, level)
        except asyncio.CancelledError:
            self._upload = await asyncio.shield(self._lane.settle())  # the open may yet succeed
            await self._abandon()
            raise
        return self

    async def write(self, data: bytes) -> None:
        """Add data; every CHUNK_SIZE bytes go to a worker thread to be compressed and sent."""
        self._buffer += data
        if len(self._buffer) >= CHUNK_SIZE:
            await self._flush()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            await self._abandon()
            return
        try:
            await self._commit()
        except BaseException:
            await self._abandon()
            raise

    async def _flush(self) -> None:
        assert self._upload is not None, "write() outside the writer's async with block"
        if not self._buffer:
            return
        chunk, self._buffer = bytes(self._buffer), bytearray()
        with self._place.guard("write"):
            await self._lane.run(self._upload.write, chunk)

    async def _commit(self) -> None:
        await self._flush()
        assert self._upload is not None
        with self._place.guard("write"):
            size, sha256 = await self._lane.run(self._upload.commit)
        raw_size, relative = self._upload.raw_size, self._place.relative
        self._info = ObjectInfo(relative, size, sha256, raw_size, self._compression, self.records)

    async def _abandon(self) -> None:
        if self._upload is not None:
            # shielded: a second cancellation must not skip the discard
            await asyncio.shield(self._lane.run(self._upload.discard))


class Reader:
    """An object's bytes streamed out of storage and decompressed, CHUNK_SIZE at most per read:
    ``async for`` closes it at the end, ``async with`` (or aclose()) on any way out."""

    def __init__(self, place: _Place, codec: _Codec) -> None:
        self._place = place
        self._codec = codec
        self._download: _Download | None = None
        self._lane = _Lane()

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def read(self, size: int = CHUNK_SIZE) -> bytes:
        """Up to size decompressed bytes; b"" at the end."""
        download = await self._open()
        with self._place.guard("read"):
            return await self._lane.run(download.read, size)

    async def digest(self, sha256: hashlib._Hash) -> int:
        """Hash the next chunk in the worker thread; its length (0 at the end)."""
        download = await self._open()
        with self._place.guard("read"):
            return await self._lane.run(download.digest, sha256)

    async def aclose(self) -> None:
        """Close the object (safe to call twice)."""
        download, self._download = self._download, None
        if download is not None:
            with self._place.guard("read"):
                await asyncio.shield(self._lane.run(download.close))

    async def _open(self) -> _Download:
        if self._download is None:
            place, codec = self._place, self._codec
            with place.guard("read"):
                self._download = await self._lane.run(_Download, place.fs, place.path, codec)
        return self._download


# --------------------------------------------------------------------------- storage


class Storage:
    """One backup's root on an fsspec backend: checked paths, whole objects, async calls.
    Use it as ``async with`` (or call aclose()) to close its network sessions."""

    def __init__(self, fs: FileSystem, root: str, boundary: _Boundary) -> None:
        self.root = root
        self._fs = fs
        self._boundary = boundary

    @property
    def url(self) -> str:
        """The root's URL (it never carries credentials: open_storage refuses those)."""
        return self._boundary.url

    def resolve(self, relative: str, *, template: str | None = None, engine: bool = False) -> str:
        """The backend path of relative below the root; PathError when it is unsafe, or under
        .engine/ (reserved for the engine) unless engine is set."""
        return f"{self.root}/{check_path(relative, template=template, engine=engine)}"

    def writer(
        self,
        relative: str,
        *,
        compress: str | None = "zstd",
        level: int | None = None,
        engine: bool = False,
    ) -> Writer:
        """A writer for one object: ``async with storage.writer(p) as w: await w.write(b)``."""
        place = self._place(relative, engine=engine)
        return Writer(place, compress, self._codec(compress, relative), level)

    def reader(self, relative: str, *, compression: str | None) -> Reader:
        """A reader of one object's decompressed bytes: ``async with ... as r: async for``."""
        return Reader(self._place(relative), self._codec(compression, relative))

    async def verify(self, info: ObjectInfo) -> None:
        """Stream the stored object; ChecksumMismatch unless its size and SHA-256 match info."""
        sha256, size = hashlib.sha256(), 0
        async with self.reader(info.path, compression=None) as reader:
            while count := await reader.digest(sha256):
                size += count
        if (size, sha256.hexdigest()) != (info.size, info.sha256):
            found = f"{size} bytes, SHA-256 {sha256.hexdigest()}"
            reason = f"{found}, where its record says {info.size} bytes, SHA-256 {info.sha256}"
            raise self._boundary.error("verify", info.path, reason, ChecksumMismatch)

    async def read_json(self, relative: str) -> Any:
        """A small JSON document (manifest, task record), read whole."""
        path = self.resolve(relative, engine=True)
        with self._boundary.guard("read", relative):
            data = await asyncio.to_thread(_read_prefix, self._fs, path, JSON_LIMIT + 1)
        if len(data) > JSON_LIMIT:
            raise self._boundary.error("read", relative, f"over {JSON_LIMIT >> 20} MiB of JSON")
        try:
            return json.loads(data)
        except ValueError as exc:  # the message names a position, never the content
            raise self._boundary.error("read", relative, f"not valid JSON: {exc}") from exc

    async def write_json(self, relative: str, data: Any, *, engine: bool = False) -> ObjectInfo:
        """Write a small JSON document whole (committed, or nothing on failure)."""
        payload = json.dumps(data, ensure_ascii=False, indent=2).encode()
        async with self.writer(relative, compress=None, engine=engine) as writer:
            await writer.write(payload)
        return writer.info

    async def exists(self, relative: str) -> bool:
        """Whether an object (or a folder) is at relative."""
        path = self.resolve(relative, engine=True)
        with self._boundary.guard("look for", relative):
            return await asyncio.to_thread(_exists, self._fs, path)

    async def size(self, relative: str) -> int | None:
        """The stored size of the object at relative; None when there is none."""
        path = self.resolve(relative, engine=True)
        with self._boundary.guard("look for", relative):
            return await asyncio.to_thread(_size, self._fs, path)

    async def remove_tree(self) -> None:
        """Remove everything under the root (and the root); nothing outside it."""
        with self._boundary.guard("remove"):
            await asyncio.to_thread(_remove, self._fs, self.root)

    async def aclose(self) -> None:
        """Close the backend's network sessions (s3fs, gcsfs)."""
        with self._boundary.guard("close"):
            await asyncio.to_thread(_close_sessions, self._fs)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _place(self, relative: str, *, engine: bool = True) -> _Place:
        return _Place(self._fs, self.resolve(relative, engine=engine), relative, self._boundary)

    def _codec(self, compression: str | None, relative: str) -> _Codec:
        if compression not in CODECS:
            known = ", ".join(str(name) for name in CODECS)
            raise self._boundary.error("use", relative, f"unknown compression (known: {known})")
        return CODECS[compression]

    async def list(self, prefix: str = "") -> builtins.list[str]:
        """The relative paths of every object below the root (or below its folder prefix)."""
        base = self.resolve(prefix, engine=True) if prefix else self.root
        with self._boundary.guard("list", prefix or None):
            found = await asyncio.to_thread(_find, self._fs, base)
        return sorted(path.removeprefix(f"{self.root}/") for path in found)


def open_storage(
    url: str,
    options: Mapping[str, Any] | None,
    *,
    allow: Sequence[str],
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    aws: Mapping[str, Any] | None = None,
    gc: Mapping[str, Any] | None = None,
) -> Storage:
    """The storage whose root is url, if allowed, with its options merged (see merge_options).

    s3fs connects on first use, but gcsfs without a token looks for the machine's default
    credentials at once: call it in a worker thread from async code.
    """
    protocol = check_allowed(url, allow)
    merged = merge_options(protocol, options, defaults=defaults, aws=aws, gc=gc)
    boundary = _Boundary(url.rstrip("/"), _secret_strings(merged))
    with boundary.guard("open"):
        fs, root = fsspec.core.url_to_fs(url, **merged)
    return Storage(fs, str(root).rstrip("/"), boundary)

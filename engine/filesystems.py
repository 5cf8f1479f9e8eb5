"""What the storage layer asks of an fsspec filesystem: protocol lookups, custom classes, files
that nobody sees until they are committed, and the blocking calls behind Storage's methods.

The only module that imports fsspec. Its callers run these calls in worker threads, which serves
sync backends (local, memory, custom classes) and s3fs/gcsfs (whose sync API runs on fsspec's own
event-loop thread) alike.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias, cast

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

from engine.errors import ConfigError, StorageError, StorageNotAllowed

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
    fs, root = fsspec.core.url_to_fs(url, **options)
    return fs, str(root)


# --------------------------------------------------------------------------- the allowed area


class LinkEscape(OSError):
    """A local path that a symbolic link leads out of its allowed storage area."""


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


def read_prefix(fs: FileSystem, path: str, limit: int, area: Area) -> bytes:
    """The first limit bytes of the file at path (all of it, when shorter)."""
    area.reach(path)
    with fs.open(path, "rb") as file:
        return cast(bytes, file.read(limit))


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


def find(fs: FileSystem, path: str, area: Area) -> list[str]:
    """The path of every file below path (none when it is missing)."""
    area.reach(path)
    try:
        return cast(list[str], fs.find(path, withdirs=False))
    except FileNotFoundError:
        return []


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

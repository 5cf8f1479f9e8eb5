"""Stored objects streamed in and out asynchronously: a Writer commits its object whole (or not
at all), a Reader hands it back decompressed, and both turn foreign errors into StorageError.

Each object's blocking calls (engine.transfers) run in worker threads, one at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from engine.errors import EngineError, ObjectNotFound, StorageError
from engine.filesystems import FileSystem
from engine.transfers import CHUNK_SIZE, Codec, Download, Upload

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Bound = TypeVar("_Bound")  # what ``async with ... as`` binds


class Closable(AbstractAsyncContextManager[_Bound, None]):
    """Something ``async with`` closes on the way out, however its block ends: its aclose()."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what it holds (safe to call twice)."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- errors

_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (FileNotFoundError, "not found"),
    (PermissionError, "access denied"),
    (IsADirectoryError, "it is a folder"),
    (TimeoutError, "timed out"),
)


@dataclass(frozen=True)
class Boundary:
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


# --------------------------------------------------------------------------- objects


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
class Place:
    """Where one object lives: its filesystem, backend path, relative path and error boundary."""

    fs: FileSystem
    path: str
    relative: str
    boundary: Boundary

    def guard(self, action: str) -> AbstractContextManager[None]:
        """Translate foreign errors into StorageError naming this object."""
        return self.boundary.guard(action, self.relative)


class Writer:
    """An object streamed into storage: its ``async with`` block commits it whole on success and
    discards it on any failure. Bump ``records`` per record written; ``info`` describes it."""

    def __init__(
        self, place: Place, compression: str | None, codec: Codec, level: int | None
    ) -> None:
        self.records = 0
        self._place = place
        self._compression = compression
        self._codec = codec
        self._level = level
        self._upload: Upload | None = None
        self._buffer = bytearray()
        self._lane = _Lane()
        self._info: ObjectInfo | None = None

    @property
    def info(self) -> ObjectInfo:
        """The committed object (known once the ``async with`` block is over)."""
        assert self._info is not None, "the writer's block has not committed yet"
        return self._info

    async def __aenter__(self) -> Self:
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
        if not self._buffer:
            return
        chunk, self._buffer = self._buffer, bytearray()
        if self._upload is None:
            await self._begin(chunk, whole=False)
            return
        with self._place.guard("write"):
            await self._lane.run(self._upload.write, chunk)

    async def _begin(self, first: bytearray, *, whole: bool) -> None:
        """Opens the object with its first chunk in one worker-thread call (opened lazily, so
        an object smaller than a chunk is opened, written and committed in one call)."""
        place = self._place
        try:
            with place.guard("write"):
                self._upload = await self._lane.run(
                    Upload.begin, place.fs, place.path, self._codec, self._level, first, whole=whole
                )
        except asyncio.CancelledError:
            self._upload = await asyncio.shield(self._lane.settle())  # the open may yet succeed
            raise

    async def _commit(self) -> None:
        if self._upload is None:
            await self._begin(self._buffer, whole=True)
        else:
            await self._flush()
        upload = self._upload
        assert upload is not None
        if upload.committed is None:
            with self._place.guard("write"):
                await self._lane.run(upload.commit)
        assert upload.committed is not None
        size, sha256 = upload.committed
        raw_size, relative = upload.raw_size, self._place.relative
        self._info = ObjectInfo(relative, size, sha256, raw_size, self._compression, self.records)

    async def _abandon(self) -> None:
        if self._upload is not None:
            # shielded: a second cancellation must not skip the discard
            await asyncio.shield(self._lane.run(self._upload.discard))


class Reader(Closable["Reader"]):
    """An object's bytes streamed out of storage and decompressed, CHUNK_SIZE at most per read:
    ``async for`` closes it at the end, ``async with`` (or aclose()) on any way out. A closed
    reader stays closed: it never starts the object over."""

    def __init__(self, place: Place, codec: Codec) -> None:
        self._place = place
        self._codec = codec
        self._download: Download | None = None
        self._closed = False
        self._lane = _Lane()

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = b"" if self._closed else await self.read()
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
        self._closed = True
        download, self._download = self._download, None
        if download is not None:
            with self._place.guard("read"):
                await asyncio.shield(self._lane.run(download.close))

    async def _open(self) -> Download:
        if self._closed:
            raise RuntimeError(f"{self._place.relative} was read to its end or closed")
        if self._download is None:
            place, codec = self._place, self._codec
            try:
                with place.guard("read"):
                    self._download = await self._lane.run(Download, place.fs, place.path, codec)
            except asyncio.CancelledError:
                # the open goes on in its thread: close what it opens, once it has
                self._download = await asyncio.shield(self._lane.settle())
                await self.aclose()
                raise
        return self._download

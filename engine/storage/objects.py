"""Stored objects streamed in and out asynchronously: a Writer commits its object whole (or not
at all), a Reader hands it back decompressed, and both turn foreign errors into StorageError.

Each object's blocking calls (engine.transfers) run in the storage workers (engine.workers), one
at a time, each within the deadline: a stream has a deadline per chunk, not per object.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from engine.errors import (
    BackupDamaged,
    ChecksumMismatch,
    Deadline,
    EngineError,
    LinkEscape,
    ObjectNotFound,
    StorageError,
    StorageNotAllowed,
)
from engine.storage.filesystems import Area, FileSystem
from engine.storage.transfers import CHUNK_SIZE, Codec, Data, Download, Upload
from engine.storage.workers import Endpoint

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Bound = TypeVar("_Bound")  # what ``async with ... as`` binds
Fence = Callable[[], Awaitable[None]]  # returns while a writer may still commit, else raises


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
        except LinkEscape as exc:  # raised in a worker, which knows neither action nor place
            place = f"{relative} under {self.url}" if relative else self.url
            raise StorageNotAllowed(f"cannot {action} {place}: {exc.message}") from exc
        except Deadline as exc:
            raise self.error(action, relative, exc.message) from exc
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
    """Runs one object's blocking calls in the storage workers, one at a time, each within the
    deadline.

    A call that times out (or whose await is cancelled) goes on in its thread; the next call
    waits for it (within the deadline too), so two threads never touch one fsspec file at once.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._last: asyncio.Future[Any] | None = None
        self._stuck = False  # the last call outlived its deadline

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        await self.settle()
        future = self._endpoint.start(fn, *args, **kwargs)
        self._last, self._stuck = future, False
        try:
            return await self._endpoint.wait(future)
        except Deadline:
            self._stuck = True
            raise

    async def settle(self) -> Any:
        """The last call's result once its thread is done (None if it failed); Deadline when
        it is still under way after the deadline."""
        last = self._last
        if last is None:
            return None
        await asyncio.wait([last], timeout=self._endpoint.timeout)
        if not last.done():
            self._stuck = True
            raise Deadline(f"an earlier call is still under way after {self._endpoint.timeout:g} s")
        return None if last.cancelled() or last.exception() else last.result()

    async def last(self, fn: Callable[[Any], None]) -> None:
        """fn(the last call's result, or None) as this object's final call, once the last call
        is done; when that one outlives its deadline, in its thread once it ends, without
        waiting (it may never end)."""
        last = self._last
        if last is None:  # nothing was opened
            return
        if not self._stuck:
            await asyncio.wait([last], timeout=self._endpoint.timeout)
        if last.done():
            await self.run(fn, await self.settle())
            return
        key, workers = self._endpoint.key, self._endpoint.workers

        def then(done: asyncio.Future[Any]) -> None:
            result = None if done.cancelled() or done.exception() else done.result()
            workers.submit(key, lambda: fn(result))

        last.add_done_callback(then)


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
    """Where one object lives: its filesystem, backend path, relative path, error boundary,
    the area its links may not leave and the endpoint its calls run for."""

    fs: FileSystem
    path: str
    relative: str
    boundary: Boundary
    area: Area
    endpoint: Endpoint

    def guard(self, action: str) -> AbstractContextManager[None]:
        """Translate foreign errors into StorageError naming this object."""
        return self.boundary.guard(action, self.relative)


class Writer:
    """An object streamed into storage: its ``async with`` block commits it whole on success and
    discards it on any failure. Bump ``records`` per record written; ``info`` describes it.
    With a fence, the object commits only once the fence passes (a task's lease holds)."""

    def __init__(
        self,
        place: Place,
        compression: str | None,
        codec: Codec,
        level: int | None,
        fence: Fence | None = None,
    ) -> None:
        self.records = 0
        self._fence = fence
        self._place = place
        self._compression = compression
        self._codec = codec
        self._level = level
        self._upload: Upload | None = None
        self._buffer = bytearray()
        self._lane = _Lane(place.endpoint)
        self._sending: asyncio.Task[None] | None = None
        self._info: ObjectInfo | None = None

    @property
    def info(self) -> ObjectInfo:
        """The committed object (known once the ``async with`` block is over)."""
        assert self._info is not None, "the writer's block has not committed yet"
        return self._info

    async def __aenter__(self) -> Self:
        return self

    async def write(self, data: bytes) -> None:
        """Add data; every CHUNK_SIZE bytes go to a worker thread to be compressed and sent,
        while the next chunk is gathered (one chunk in flight: memory stays bounded, and the
        SaaS download overlaps the compression)."""
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
            if self._fence is not None:
                await self._fence()
            await self._commit()
        except BaseException:
            await self._abandon()
            raise

    async def _flush(self) -> None:
        await self._sent()
        if not self._buffer:
            return
        chunk, self._buffer = self._buffer, bytearray()
        if self._upload is None:
            await self._begin(chunk, whole=False)
            return
        self._sending = asyncio.ensure_future(self._send(self._upload, chunk))

    async def _send(self, upload: Upload, chunk: bytearray) -> None:
        with self._place.guard("write"):
            await self._lane.run(upload.write, chunk)

    async def _sent(self) -> None:
        """Waits for the chunk in flight; its failure is raised here."""
        sending, self._sending = self._sending, None
        if sending is not None:
            await sending

    async def _begin(self, first: bytearray, *, whole: bool) -> None:
        """Opens the object with its first chunk in one worker-thread call (opened lazily, so
        an object smaller than a chunk is opened, written and committed in one call). Cancelled
        meanwhile, the open goes on in its thread, and _abandon discards what it opens."""
        place = self._place
        with place.guard("write"):
            self._upload = await self._lane.run(
                _upload, place, self._codec, self._level, first, whole=whole
            )

    async def _commit(self) -> None:
        if self._upload is None:
            await self._begin(self._buffer, whole=True)
        else:
            await self._flush()
            await self._sent()
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
        sending, self._sending = self._sending, None
        if sending is not None:  # its thread, once started, is the lane's last call: waited for
            sending.cancel()
            sending.add_done_callback(_retrieved)
        upload = self._upload
        discard = _discard if upload is None else lambda opened: upload.discard()
        # shielded: a second cancellation must not skip the discard; a discard that times out
        # must not hide the error on its way up (the object was never committed)
        with suppress(StorageError):  # Deadline among them
            await asyncio.shield(self._lane.last(discard))


def _retrieved(task: asyncio.Task[None]) -> None:
    """Marks an abandoned send's failure as seen (the object is discarded anyway)."""
    if not task.cancelled():
        task.exception()


class Reader(Closable["Reader"]):
    """An object's bytes streamed out of storage and decompressed, CHUNK_SIZE at most per read:
    ``async for`` closes it at the end, ``async with`` (or aclose()) on any way out. A closed
    reader stays closed: it never starts the object over.

    With ``expect`` (the object's record), its stored bytes are checked on the way: the read
    that reaches the end raises ChecksumMismatch unless their size and SHA-256 match, and so
    does a read whose bytes do not decompress when they differ (else BackupDamaged)."""

    def __init__(self, place: Place, codec: Codec, expect: ObjectInfo | None = None) -> None:
        self._place = place
        self._codec = codec
        self._expect = expect
        self._download: Download | None = None
        self._closed = False
        self._checked = False
        self._stored = 0
        self._lane = _Lane(place.endpoint)

    @property
    def stored(self) -> int:
        """How many of the object's stored bytes were read so far (for progress)."""
        return self._download.stored.size if self._download is not None else self._stored

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = b"" if self._closed else await self.read()
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def read(self, size: int = CHUNK_SIZE) -> bytes:
        """Up to size decompressed bytes; b"" at the end."""
        download = await self._open()
        place = self._place
        try:
            with place.guard("read"):
                chunk = await self._lane.run(download.read, size)
        except BackupDamaged as exc:  # raised in the worker, which knows no place
            await self.check()  # damaged stored bytes say more than the codec's complaint
            raise place.boundary.error("read", place.relative, exc.message, BackupDamaged) from exc
        if not chunk:
            await self.check()
        return chunk

    async def aclose(self) -> None:
        """Close the object (safe to call twice)."""
        closed, self._closed = self._closed, True
        download, self._download = self._download, None
        if download is not None:
            self._stored = download.stored.size
        if closed and download is None:
            return
        close = _close if download is None else lambda opened: download.close()
        with self._place.guard("read"):
            await asyncio.shield(self._lane.last(close))

    async def check(self) -> None:
        """With expect: reads what is left of the stored bytes (not decompressed) and raises
        ChecksumMismatch unless they match it, once (the end of the stream does it too)."""
        expect = self._expect
        if expect is None or self._checked:
            return
        self._checked = True
        download = await self._open()
        with self._place.guard("verify"):
            size, sha256 = await self._lane.run(download.finish)
        if (size, sha256) != (expect.size, expect.sha256):
            found = f"{size} bytes, SHA-256 {sha256}"
            reason = f"{found}, where its record says {expect.size} bytes, SHA-256 {expect.sha256}"
            place = self._place
            raise place.boundary.error("verify", place.relative, reason, ChecksumMismatch)

    async def _open(self) -> Download:
        if self._closed:
            raise RuntimeError(f"{self._place.relative} was read to its end or closed")
        if self._download is None:
            place, codec, hashed = self._place, self._codec, self._expect is not None
            try:
                with place.guard("read"):
                    self._download = await self._lane.run(_download, place, codec, hashed)
            except asyncio.CancelledError:
                await self.aclose()  # closes what the open goes on to open, once it has
                raise
        return self._download


def _upload(place: Place, codec: Codec, level: int | None, first: Data, *, whole: bool) -> Upload:
    """Upload.begin at place, once its folder is known to lie inside the area."""
    place.area.hold(place.path)
    return Upload.begin(place.fs, place.path, codec, level, first, whole=whole)


def _download(place: Place, codec: Codec, hashed: bool) -> Download:
    """A Download of place, once its links are known to stay inside the area."""
    place.area.reach(place.path)
    return Download(place.fs, place.path, codec, hashed=hashed)


def _discard(opened: Any) -> None:
    """Discards what an open call answered, if it opened an upload."""
    if isinstance(opened, Upload):
        opened.discard()


def _close(opened: Any) -> None:
    """Closes what an open call answered, if it opened a download."""
    if isinstance(opened, Download):
        opened.close()

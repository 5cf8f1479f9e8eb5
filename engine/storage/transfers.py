"""One object's bytes moving into or out of a filesystem in blocking calls: compressed (or
decompressed) on the way, and hashed and counted as they are stored.

The only module that imports zstandard. engine.objects runs these calls in worker threads.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import IO, Protocol, cast

import zstandard

from engine.errors import BackupDamaged
from engine.storage import multipart
from engine.storage.filesystems import (
    DeferredFile,
    FileSystem,
    defers,
    open_deferred,
    open_read,
    part_size,
)

CHUNK_SIZE = 1 << 20  # bytes per worker-thread call, read or write: bounds memory per object

Data = bytes | bytearray  # what an object is written from

# Parts in flight: a buffered backend's file (gcsfs; S3 has engine.multipart's own file) is
# handed whole parts, each within the process's byte budget for parts (multipart.PARTS), so
# memory stays bounded however many objects are open.


class _Stream(Protocol):
    def write(self, data: Data, /) -> int: ...
    def close(self) -> None: ...


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


class _Counter:
    """Hashes and counts the stored bytes on their way into the file. A buffered backend's file
    is handed whole parts, each within the PARTS budget (it sends them as it is given them)."""

    def __init__(self, file: DeferredFile) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._part = part_size(file)
        # what zstd hands the file per write: whole chunks to a disk (fewer writes), small
        # pieces to a file that only copies them into its part buffer (less memory per object)
        self.write_size: int = getattr(file, "WRITE_SIZE", CHUNK_SIZE)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._parts = 0

    def write(self, data: Data, /) -> int:
        self.sha256.update(data)
        size = len(data)
        self.size += size
        if self._part is None:
            self.file.write(data)
            return size
        self._pending.append(bytes(data))
        self._pending_size += size
        if self._pending_size >= self._part << (self._parts // multipart.PARTS_PER_STEP):
            with multipart.PARTS.hold(self._pending_size):
                self._send()
        return size

    def gate(self) -> AbstractContextManager[object]:
        """Held around what sends the last part (closing and committing the file)."""
        return nullcontext() if self._part is None else multipart.PARTS.hold(self._pending_size)

    def finish(self) -> None:
        """Hand the file what is pending (call inside the gate)."""
        if self._pending:
            self._send()

    def _send(self) -> None:
        part = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self._parts += 1
        self.file.write(part)

    def flush(self) -> None:
        """The file flushes itself at close."""

    def close(self) -> None:
        """The upload closes the file."""


@dataclass(frozen=True)
class Codec:
    """A compression: its default level, its writing and its reading wrapper."""

    level: int
    writer: Callable[[_Counter, int], _Stream]
    reader: Callable[[IO[bytes]], _Source]


def _zstd_writer(sink: _Counter, level: int) -> _Stream:
    compressor = zstandard.ZstdCompressor(level=level)
    # write_size: a disk is handed whole chunks, not zstd's default 128 KiB pieces (a write each)
    return compressor.stream_writer(
        cast(IO[bytes], sink), write_size=sink.write_size, closefd=False
    )


def _zstd_reader(file: IO[bytes]) -> _Source:
    decompressor = zstandard.ZstdDecompressor()
    return decompressor.stream_reader(file, read_size=CHUNK_SIZE, read_across_frames=True)


def _gzip_writer(sink: _Counter, level: int) -> _Stream:
    return gzip.GzipFile(fileobj=cast(IO[bytes], sink), mode="wb", compresslevel=level, mtime=0)


CODECS: dict[str | None, Codec] = {
    "zstd": Codec(3, _zstd_writer, _zstd_reader),
    "gzip": Codec(6, _gzip_writer, lambda file: gzip.GzipFile(fileobj=file, mode="rb")),
    None: Codec(0, lambda sink, level: sink, lambda file: file),
}


class Upload:
    """One object on its way into storage, compressed, hashed and counted as it is written."""

    def __init__(self, fs: FileSystem, path: str, codec: Codec, level: int | None) -> None:
        self._fs = fs
        self._path = path
        self._file = open_deferred(fs, path)
        self._stored = _Counter(self._file)
        try:
            self._stream = codec.writer(self._stored, codec.level if level is None else level)
        except BaseException:  # a bad level, say: the opened file must not stay behind
            with suppress(Exception):
                self._file.close()
                self._file.discard()
            raise
        self.raw_size = 0
        self.committed: tuple[int, str] | None = None

    @classmethod
    def begin(
        cls,
        fs: FileSystem,
        path: str,
        codec: Codec,
        level: int | None,
        first: Data,
        *,
        whole: bool = False,
    ) -> Upload:
        """Opens the object and writes its first bytes in one call; commits it too when they
        are ``whole`` (a small object then costs one worker-thread call, not three)."""
        upload = cls(fs, path, codec, level)
        try:
            upload.write(first)
            if whole:
                upload.commit()
        except BaseException:
            upload.discard()
            raise
        return upload

    def write(self, data: Data) -> None:
        self._stream.write(data)
        self.raw_size += len(data)

    def commit(self) -> tuple[int, str]:
        """Make the object visible; its stored size and SHA-256."""
        self._stream.close()
        with self._stored.gate():
            self._stored.finish()
            self._file.close()
            self._file.commit()
        self.committed = self._stored.size, self._stored.sha256.hexdigest()
        return self.committed

    def discard(self) -> None:
        """Leave no object behind (best effort: another error is on its way up)."""
        steps = [self._stream.close, self._file.close, self._file.discard]
        if not defers(self._file):
            steps.append(lambda: self._fs.rm_file(self._path))
        for step in steps:
            with suppress(Exception):
                step()


class _Stored:
    """An object's stored bytes as a Download reads them: counted, and hashed when they are to
    be checked against their record."""

    def __init__(self, file: IO[bytes], *, hashed: bool) -> None:
        self.file = file
        self.size = 0
        self.sha256 = hashlib.sha256() if hashed else None
        self.failed = False  # the file itself raised: storage failed, not the codec

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self.file.read(size)
        except BaseException:
            self.failed = True
            raise
        self.size += len(data)
        if self.sha256 is not None:
            self.sha256.update(data)
        return data

    def close(self) -> None:
        self.file.close()


class Download:
    """One object on its way out of storage, decompressed in bounded pieces; with ``hashed``,
    its stored bytes are hashed on the way (see finish)."""

    def __init__(self, fs: FileSystem, path: str, codec: Codec, *, hashed: bool = False) -> None:
        self._file = open_read(fs, path)
        self.stored = _Stored(self._file, hashed=hashed)
        self._decoded = codec is not CODECS[None]
        self._stream = codec.reader(cast(IO[bytes], self.stored))

    def read(self, size: int) -> bytes:
        """Up to size decompressed bytes; BackupDamaged when the stored bytes do not decompress."""
        try:
            return self._stream.read(size)
        # the codec's boundary: zstandard and gzip raise their own errors on damaged bytes
        except Exception as exc:
            if self.stored.failed or not self._decoded:
                raise
            reason = f"its bytes do not decompress: {exc}"
            raise BackupDamaged(reason, url="", path=None) from exc

    def finish(self) -> tuple[int, str]:
        """Read what is left of the stored bytes; their size and SHA-256 in all (hashed only)."""
        while self.stored.read(CHUNK_SIZE):
            pass
        assert self.stored.sha256 is not None, "finish() needs a hashed download"
        return self.stored.size, self.stored.sha256.hexdigest()

    def close(self) -> None:
        self._stream.close()
        self._file.close()

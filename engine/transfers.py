"""One object's bytes moving into or out of a filesystem in blocking calls: compressed (or
decompressed) on the way, and hashed and counted as they are stored.

The only module that imports zstandard. engine.objects runs these calls in worker threads.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import IO, Protocol, cast

import zstandard

from engine.filesystems import DeferredFile, FileSystem, defers, open_deferred

CHUNK_SIZE = 1 << 20  # bytes per worker-thread call, read or write: bounds memory per object


class _Stream(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def close(self) -> None: ...


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


class _Counter:
    """Hashes and counts the stored bytes on their way into the file."""

    def __init__(self, file: DeferredFile) -> None:
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
class Codec:
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
        if not defers(self._file):
            steps.append(lambda: self._fs.rm_file(self._path))
        for step in steps:
            with suppress(Exception):
                step()


class Download:
    """One object on its way out of storage, decompressed in bounded pieces."""

    def __init__(self, fs: FileSystem, path: str, codec: Codec) -> None:
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

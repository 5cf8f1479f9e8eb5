"""Objects written to S3 as multipart uploads of our own, in bounded memory.

Each object fills one part buffer, allocated once and reused for every part (s3fs's own file
keeps a buffer, cuts a part out of it and copies it again on the way to botocore: about four
copies of a part while it is sent). A full buffer is sent as the next part from the writer's
worker thread, so its writer waits meanwhile: the SaaS stream is not read further until the part
is out. Parts in flight, all objects of the process together, hold at most PARTS bytes
(a process-wide byte budget): a part waits for room before it is sent, which back-pressures the
streams behind it too. Nothing is visible before commit() (the upload is completed then; an
object smaller than one part is sent whole by one PUT), and discard() aborts the upload.

No fsspec import: the calls go through s3fs's own call_s3 (engine.filesystems picks this file
for S3)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PART_BUDGET = 16 << 20  # bytes of parts in flight in the process: three parts of 5 MiB
PARTS_PER_STEP = 1000  # parts grow x2 every this many, so S3's 10,000 parts reach 5 TiB


class ByteBudget:
    """At most ``limit`` bytes held at once by all threads together. A holder asks for its bytes
    and waits until they fit; one that asks for more than the whole limit goes alone (when
    nothing else is held), so no size waits forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0  # the most ever held at once
        self.waiting = 0  # threads waiting for room now
        self._room = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Holds size bytes of the budget for the block (waits for room first)."""
        with self._room:
            self.waiting += 1
            try:
                self._room.wait_for(lambda: self.held == 0 or self.held + size <= self.limit)
            finally:
                self.waiting -= 1
            self.held += size
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            with self._room:
                self.held -= size
                self._room.notify_all()


PARTS = ByteBudget(PART_BUDGET)  # the process's budget for parts in flight, every backend's


class PartReader(io.RawIOBase):
    """The first ``size`` bytes of a buffer as a seekable file, read without copying the whole:
    botocore reads a file body in pieces (checksums, then the socket), where a bytes body costs
    one copy and a bytearray two (measured: 5.5 and 11.3 MiB more per 5 MiB part, 2.0 this
    way). Close it (``with``) before the buffer is written again."""

    def __init__(self, buffer: bytearray, size: int) -> None:
        super().__init__()
        self._view = memoryview(buffer)[:size]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        start = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, start[whence] + offset)
        return self._position

    def readinto(self, target: Any) -> int:
        piece = self._view[self._position : self._position + len(target)]
        target[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def close(self) -> None:
        if not self.closed:
            self._view.release()
        super().close()


class MultipartFile:
    """An S3 object being written (a DeferredFile): parts from one reusable buffer, sent within
    the PARTS budget, the upload completed by commit()."""

    WRITE_SIZE = 128 << 10  # what a compressor hands it per write: copied into the part buffer

    def __init__(self, fs: Any, path: str, part_size: int) -> None:
        self._fs = fs
        self._bucket, self._key, _ = fs.split_path(path)
        self._part_size = part_size
        self._buffer = bytearray()  # grown by the first part, reused for every part after it
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def buffer(self) -> bytearray:
        """The part buffer (for tests: the same object part after part)."""
        return self._buffer

    def write(self, data: bytes | bytearray, /) -> int:
        view = memoryview(data)
        while view:
            size = self._next_size()
            taken = view[: size - self._filled]
            end = self._filled + len(taken)
            # grows the buffer while the first part fills it; overwrites it in place after
            self._buffer[self._filled : end] = taken
            self._filled = end
            view = view[len(taken) :]
            if self._filled == size:
                self._send_part()
        return len(data)

    def close(self) -> None:
        """Nothing to flush: the last part goes at commit()."""

    def commit(self) -> None:
        """Sends what is left and makes the object visible."""
        if self._upload_id is None:
            with PARTS.hold(self._filled), PartReader(self._buffer, self._filled) as body:
                self._call("put_object", Body=body)
            return
        if self._filled:
            self._send_part()
        self._call(
            "complete_multipart_upload",
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None

    def discard(self) -> None:
        """Aborts the upload, if one was begun: S3 drops its parts."""
        upload_id, self._upload_id = self._upload_id, None
        self._buffer = bytearray()
        if upload_id is not None:
            self._call("abort_multipart_upload", UploadId=upload_id)

    def _next_size(self) -> int:
        return self._part_size << (len(self._parts) // PARTS_PER_STEP)

    def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = str(self._call("create_multipart_upload")["UploadId"])
        number = len(self._parts) + 1
        with PARTS.hold(self._filled), PartReader(self._buffer, self._filled) as body:
            answer = self._call(
                "upload_part", UploadId=self._upload_id, PartNumber=number, Body=body
            )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._filled = 0

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self._fs.call_s3(method, Bucket=self._bucket, Key=self._key, **kwargs)

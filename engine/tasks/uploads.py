"""Restore uploads: a stored raw object's bytes as a request body (the bytes themselves, a
multipart/form-data file part, or base64 text inside a JSON body), streamed from storage in
chunks, never held whole. Every byte is checked against the object's manifest entry on the
way, and the last chunk goes out only once the whole object is known to match it, so a damaged
object never reaches the SaaS complete (the request is cut short and fails)."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from engine.errors import BackupDamaged, TemplateError
from engine.language.model import Multipart, RestoreStep
from engine.language.templating import render, render_tree
from engine.saas.messages import Streamed
from engine.storage import MANIFEST, Storage
from engine.tasks import manifest
from engine.tasks.manifest import Entry

OCTETS = "application/octet-stream"
_HOLE = "\x00engine-upload\x00"  # stands for the base64 text while the body is made JSON


@dataclass(frozen=True)
class _Upload:
    """One upload being made: the object, the restore step's upload and request, the names
    its templates see, and the step's place."""

    storage: Storage
    entry: Entry
    step: RestoreStep
    names: Mapping[str, Any]
    place: str

    def chunks(self) -> AsyncGenerator[bytes, None]:
        return chunks(self.storage, self.entry)


def body(
    storage: Storage, entry: Entry, step: RestoreStep, names: Mapping[str, Any], place: str
) -> Streamed:
    """The streamed body of one upload of entry's object (place: the restore step's)."""
    assert step.upload is not None
    if entry.format != "raw":
        raise TemplateError(
            f"upload needs a raw object (fetch: download, or format: raw), and {entry.path}"
            f" is {entry.format}",
            place=f"{place}/upload",
        )
    return _KINDS[step.upload.kind](_Upload(storage, entry, step, names, place))


def _raw(upload: _Upload) -> Streamed:
    kind = str(upload.entry.meta.get("contentType") or OCTETS)
    return Streamed(upload.chunks, upload.entry.info.raw_size, {"Content-Type": kind})


def _multipart(upload: _Upload) -> Streamed:
    spec = upload.step.upload.multipart if upload.step.upload else None
    assert spec is not None
    boundary = secrets.token_hex(16)
    head, tail = _form(
        spec, boundary, upload.entry, upload.names, f"{upload.place}/upload/multipart"
    )
    size = len(head) + upload.entry.info.raw_size + len(tail)
    fixed = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return Streamed(lambda: _framed(head, upload.chunks(), tail), size, fixed=fixed)


def _base64(upload: _Upload) -> Streamed:
    pointer = upload.step.upload.base64 if upload.step.upload else None
    assert pointer is not None
    place = upload.place
    # a copy: a leaf that keeps its native type may be the stored meta or ctx itself
    rendered = render_tree(upload.step.request.body, upload.names, place=f"{place}/request/body")
    placed = _placed(copy.deepcopy(rendered), pointer, f"{place}/upload/base64")
    try:
        text = json.dumps(placed, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        said = "the body did not render to plain JSON"
        raise TemplateError(said, place=f"{place}/request/body") from exc
    head, _, tail = text.encode().partition(json.dumps(_HOLE).encode())
    size = len(head) + 2 + 4 * -(-upload.entry.info.raw_size // 3) + len(tail)
    return Streamed(
        lambda: _framed(head + b'"', _encoded(upload.chunks()), b'"' + tail),
        size,
        {"Content-Type": "application/json"},
    )


_KINDS: dict[str, Callable[[_Upload], Streamed]] = {
    "raw": _raw,
    "multipart": _multipart,
    "base64": _base64,
}


async def chunks(storage: Storage, entry: Entry) -> AsyncGenerator[bytes, None]:
    """The object's decompressed bytes in the storage reader's chunks, checked against its
    entry: each chunk is held until the next arrives, and the last is handed out only after
    the reader found the stored bytes' size and SHA-256 right and the byte count matches."""
    info, held, count = entry.info, b"", 0
    with manifest.listed(storage, entry.path):
        async with storage.reader(entry.path, compression=info.compression, expect=info) as reader:
            ahead = asyncio.ensure_future(reader.read())  # the next chunk, read while one is sent
            try:
                while chunk := await ahead:
                    ahead = asyncio.ensure_future(reader.read())
                    if held:
                        yield held
                    held, count = chunk, count + len(chunk)
            finally:
                await _settled(ahead)
    if count != info.raw_size:
        message = f"the backup is damaged: {entry.path} holds {count} bytes, where"
        raise BackupDamaged(
            f"{message} {MANIFEST} says {info.raw_size}", url=storage.url, path=entry.path
        )
    if held:
        yield held


async def _settled(read: asyncio.Future[bytes]) -> None:
    """Cancels a read ahead nobody will take (the request stopped early) and lets it end; what
    it raised is of no use then (the reason the request stopped is already on its way)."""
    read.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await read


async def _framed(
    head: bytes, middle: AsyncIterator[bytes], tail: bytes
) -> AsyncGenerator[bytes, None]:
    yield head
    async for chunk in middle:
        yield chunk
    yield tail


async def _encoded(source: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Base64 of the source's bytes, chunk by chunk (a multiple of 3 bytes encoded at a time,
    the rest carried to the next chunk)."""
    rest = b""
    async for chunk in source:
        data = rest + chunk
        cut = len(data) - len(data) % 3
        rest = data[cut:]
        if cut:
            yield base64.b64encode(data[:cut])
    if rest:
        yield base64.b64encode(rest)


def _form(
    spec: Multipart, boundary: str, entry: Entry, names: Mapping[str, Any], place: str
) -> tuple[bytes, bytes]:
    """The multipart body around the file's bytes: the text fields and the file part's
    header before them, the closing boundary after."""
    parts = []
    for name, template in spec.fields.items():
        value = render(template, names, place=f"{place}/fields/{name}")
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{_disposition(name)}\r\n\r\n{text}\r\n")
    default_name = entry.path.removesuffix(".zst").rsplit("/", 1)[-1]
    filename = _text(spec.filename, names, f"{place}/filename", default_name)
    default_type = str(entry.meta.get("contentType") or OCTETS)
    kind = _text(spec.content_type, names, f"{place}/contentType", default_type)
    if any(char in kind for char in "\r\n"):
        raise TemplateError("the content type holds a line break", place=f"{place}/contentType")
    header = f'{_disposition(spec.file)}; filename="{_quoted(filename)}"\r\nContent-Type: {kind}'
    parts.append(f"{header}\r\n\r\n")
    head = "".join(f"--{boundary}\r\n{part}" for part in parts)
    return head.encode(), f"\r\n--{boundary}--\r\n".encode()


def _disposition(name: str) -> str:
    return f'Content-Disposition: form-data; name="{_quoted(name)}"'


def _quoted(value: str) -> str:
    """A form-data parameter value as browsers (and httpx) quote it (HTML5 form encoding)."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _text(template: Any, names: Mapping[str, Any], place: str, default: str) -> str:
    if template is None:
        return default
    value = render(template, names, place=place)
    return default if value is None or value == "" else str(value)


def _placed(rendered: Any, pointer: str, place: str) -> Any:
    """The rendered body with the hole at the JSON pointer (its parent must exist)."""
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    node = rendered
    try:
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = _HOLE
        else:
            node[last] = _HOLE
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        said = f"the rendered body has no place for the base64 text at '{pointer}'"
        raise TemplateError(said, place=place) from exc
    return rendered

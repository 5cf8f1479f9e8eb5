"""Answers decoded as they arrive, in bounded memory: base64 text decoded chunk by chunk (4-byte
groups, whitespace skipped), one string field picked out of a JSON answer as its bytes stream by
(a plain path of keys and [n] indexes, the string handed on piece by piece, never whole), and the
checksums a SaaS reports checked against the bytes stored.

Why by hand: the incremental JSON parsers (ijson, json-stream) hand a string value over whole
(or, json-stream's pure-Python tokenizer, char by char at a few MB/s behind a blocking API), and a
file sent as base64 in JSON is one string: tens of MB held at once. Picking one string by a path
needs only the structure around it, scanned here with bytes.find, so the string's bytes move at C
speed and never pile up."""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import SaasError

Sink = Callable[[bytes], Awaitable[None]]
CHECKSUMS = ("md5", "sha1", "sha256")  # meta keys naming a digest the SaaS reports (hex)
_WHITESPACE = b" \t\r\n"
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\[\d+\]")
_QUOTE_OR_ESCAPE = re.compile(rb'["\\]')
_ESCAPES = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n"}
_ESCAPES |= {b"r": b"\r", b"t": b"\t"}
_SCALAR_END = re.compile(rb"[,}\]\s]")
_KEY_LIMIT = 1 << 20  # an object key longer than this is no key a path names


def field_path(select: str) -> list[str | int] | None:
    """The keys and indexes of a plain path (``data.content``, ``files[0].blob``, ``@``: the
    answer itself); None when select is any other JMESPath."""
    if select.strip() == "@":
        return []
    parts: list[str | int] = []
    rest = select.strip()
    while rest:
        found = _PATH.match(rest)
        if found is None:
            return None
        word = found.group()
        parts.append(int(word[1:-1]) if word.startswith("[") else word)
        rest = rest[found.end() :]
        if rest.startswith(".") and len(rest) > 1 and rest[1] != "[":
            rest = rest[1:]
        elif rest and not rest.startswith("["):
            return None
    return parts if parts and isinstance(parts[0], str) else None


class Base64:
    """A sink that decodes base64 text as it arrives and hands the bytes to ``sink``."""

    def __init__(self, sink: Sink, label: str) -> None:
        self.sink = sink
        self.label = label
        self.rest = b""
        self.ended = False  # padding seen: only whitespace may follow

    async def __call__(self, data: bytes) -> None:
        data = self.rest + data.translate(None, _WHITESPACE)
        if data and self.ended:
            raise SaasError(f"{self.label}: base64 text goes on after its padding")
        cut = len(data) - len(data) % 4
        self.rest = data[cut:]
        if cut:
            self.ended = data[cut - 1 : cut] == b"="
            await self.sink(self._decoded(data[:cut]))

    def close(self) -> None:
        """SaasError when the text ended in the middle of a 4-character group."""
        if self.rest:
            raise SaasError(f"{self.label}: the base64 text ends in the middle of a group")

    def _decoded(self, group: bytes) -> bytes:
        try:
            return binascii.a2b_base64(group, strict_mode=True)
        except binascii.Error as exc:
            raise SaasError(f"{self.label}: the answer is not base64 text ({exc})") from exc


@dataclass
class _Frame:
    """An open JSON object or array: the key or index of the value being read, and whether
    a value is due next (else a separator or the end)."""

    array: bool
    key: str | int | None = None
    due: bool = False


@dataclass
class StringField:
    """A sink that scans a JSON answer for the string at ``path`` and hands that string's
    content (unescaped, as UTF-8 bytes) to ``sink`` piece by piece. The rest of the answer is
    scanned only for its structure; once the string ends, what follows is not looked at."""

    path: list[str | int]
    sink: Sink
    label: str
    then: Callable[[], None] | None = None  # the sink's own close (a decoder's)
    frames: list[_Frame] = field(default_factory=list)
    buffer: bytes = b""
    mode: str = "structure"  # or key, skip (a string read past), target (the one handed on)
    key: bytes = b""
    found: bool = False
    started: bool = False  # the top-level value has begun

    async def __call__(self, data: bytes) -> None:
        if self.found:
            return
        self.buffer += data
        while self.buffer and not self.found:
            if not await _MODES[self.mode](self):
                return

    def close(self) -> None:
        """SaasError when the answer ended before the whole string went by."""
        if not self.found:
            where = ".".join(str(part) for part in self.path) or "@"
            raise SaasError(f"{self.label}: the answer has no complete string at '{where}'")
        if self.then is not None:
            self.then()

    # the modes: each consumes from the buffer, False when it needs more data ----------------
    async def _structure(self) -> bool:
        data = self.buffer.lstrip(_WHITESPACE)
        self.buffer = data
        if not data:
            return False
        char = data[:1]
        if char == b'"':
            self.buffer = data[1:]
            self.mode = self._string_mode()
            return True
        at_target = self._value_due() and self._path() == self.path
        if at_target:
            raise SaasError(f"{self.label}: the value the selector picks is not a string")
        return self._punctuation(char)

    def _punctuation(self, char: bytes) -> bool:
        top = self.frames[-1] if self.frames else None
        if char in b"{[":
            self._value_begins()
            self.frames.append(_Frame(array=char == b"[", key=0 if char == b"[" else None))
            self.frames[-1].due = char == b"["
        elif char in b"}]":
            self.frames.pop()
        elif char == b":" and top is not None:
            top.due = True
        elif char == b"," and top is not None:
            top.due = top.array
            top.key = top.key + 1 if top.array and isinstance(top.key, int) else None
        else:  # a number, true, false or null: read past it
            end = _SCALAR_END.search(self.buffer)
            if end is None:
                return False
            self._value_begins()
            self.buffer = self.buffer[end.start() :]
            return True
        self.buffer = self.buffer[1:]
        return True

    def _string_mode(self) -> str:
        top = self.frames[-1] if self.frames else None
        if top is not None and not top.array and not top.due:
            self.key = b""
            return "key"
        at_target = self._path() == self.path
        self._value_begins()
        return "target" if at_target else "skip"

    async def _passing(self) -> bool:
        """A key (kept) or a value not wanted (dropped), up to its closing quote."""
        end = _string_end(self.buffer)
        if end is None:  # all of it, but an escape cut by the chunk's end
            run = len(self.buffer) - len(self.buffer.rstrip(b"\\"))
            taken = len(self.buffer) - run % 2
            if self.mode == "key":
                self.key += self.buffer[:taken]
                if len(self.key) > _KEY_LIMIT:
                    raise SaasError(f"{self.label}: the answer holds an endless object key")
            self.buffer = self.buffer[taken:]
            return False
        if self.mode == "key":
            self.frames[-1].key = _key(self.key + self.buffer[:end], self.label)
        self.buffer = self.buffer[end + 1 :]
        self.mode = "structure"
        return True

    async def _target(self) -> bool:
        """The string handed on: runs of plain bytes as they are, escapes decoded."""
        found = _QUOTE_OR_ESCAPE.search(self.buffer)
        if found is None:
            piece, self.buffer = self.buffer, b""
            await self.sink(piece)
            return False
        start = found.start()
        if start:
            await self.sink(self.buffer[:start])
        if found.group() == b'"':
            self.found = True
            self.buffer = b""
            return False
        escape = _escape(self.buffer[start:], self.label)
        if escape is None:  # cut by the chunk's end: wait for the rest
            self.buffer = self.buffer[start:]
            return False
        decoded, used = escape
        await self.sink(decoded)
        self.buffer = self.buffer[start + used :]
        return True

    # where the scan is ------------------------------------------------------------------------
    def _path(self) -> list[str | int | None]:
        return [frame.key for frame in self.frames]

    def _value_due(self) -> bool:
        return self.frames[-1].due if self.frames else not self.started

    def _value_begins(self) -> None:
        if self.frames:
            self.frames[-1].due = False
        self.started = True


_MODES: Mapping[str, Callable[[StringField], Awaitable[bool]]] = {
    "structure": StringField._structure,
    "key": StringField._passing,
    "skip": StringField._passing,
    "target": StringField._target,
}


def _string_end(data: bytes) -> int | None:
    """The index of the quote that closes a string whose content data starts; None when it
    is not in data."""
    index = 0
    while (found := _QUOTE_OR_ESCAPE.search(data, index)) is not None:
        if found.group() == b'"':
            return found.start()
        index = found.start() + 2
    return None


def _escape(data: bytes, label: str) -> tuple[bytes, int] | None:
    """The bytes an escape at the start of data stands for, and its length; None if cut."""
    if len(data) < 2:
        return None
    kind = data[1:2]
    if kind in _ESCAPES:
        return _ESCAPES[kind], 2
    if kind != b"u":
        raise SaasError(f"{label}: the answer is not JSON (a bad escape in a string)")
    if len(data) < 6:
        return None
    try:
        return chr(int(data[2:6], 16)).encode("utf-8", "surrogatepass"), 6
    except ValueError as exc:
        raise SaasError(f"{label}: the answer is not JSON (a bad \\u escape)") from exc


def _key(raw: bytes, label: str) -> str:
    try:
        key: str = json.loads(b'"' + raw + b'"')
    except ValueError as exc:
        raise SaasError(f"{label}: the answer is not JSON (a bad object key)") from exc
    return key


class Digests:
    """The checksums the step's meta names (md5, sha1, sha256: hex digests the SaaS reports),
    computed over the bytes as they are stored, and checked at the end."""

    def __init__(self, meta: Mapping[str, Any], label: str) -> None:
        self.label = label
        self.expected = {
            name: str(meta[name]).strip().lower() for name in CHECKSUMS if meta.get(name)
        }
        self.hashes = {name: hashlib.new(name) for name in self.expected}

    def wrap(self, sink: Sink) -> Sink:
        """sink, with every chunk hashed on the way (sink itself when none is named)."""
        if not self.hashes:
            return sink

        async def hashed(chunk: bytes) -> None:
            for digest in self.hashes.values():
                digest.update(chunk)
            await sink(chunk)

        return hashed

    def check(self) -> None:
        """SaasError naming the checksum that differs from what the SaaS reported."""
        for name, digest in self.hashes.items():
            got = digest.hexdigest()
            if got != self.expected[name]:
                raise SaasError(
                    f"{self.label}: the downloaded bytes' {name} is {got}, where the SaaS"
                    f" reports {self.expected[name]}"
                )

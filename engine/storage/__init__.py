"""Backup storage on any fsspec backend: one root per backup, paths that cannot leave it, and
objects streamed in compressed, hashed and committed whole (or not at all).

The storage layer's entry point: Storage and open_storage here, and the names of the modules
below it re-exported, so callers import from engine.storage alone. filesystems is the only
module that imports fsspec, transfers the only one that imports zstandard. Every call is async:
blocking fsspec calls run in the storage workers (workers: a thread budget per endpoint, a
deadline per call), which serves sync backends (local, memory, custom classes) and s3fs/gcsfs
(whose sync API runs on fsspec's own event-loop thread) alike. Local storage never follows a
symbolic link out of its allowed folder.
May import: the shared base and engine.language (never engine.saas: the two sit side by side).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from engine.errors import LeaseLost
from engine.storage import filesystems
from engine.storage.filesystems import Area, FileSystem, area_of, register_classes
from engine.storage.locations import (
    ENGINE_DIR,
    MANIFEST,
    MAX_PATH_BYTES,
    allowed_area,
    canonical_protocol,
    check_allowed,
    check_path,
    merge_options,
)
from engine.storage.objects import Boundary, Closable, Fence, ObjectInfo, Place, Reader, Writer
from engine.storage.transfers import CHUNK_SIZE, CODECS, Codec
from engine.storage.workers import Endpoint, Limits, Workers, configure, shared

_T = TypeVar("_T")

__all__ = [
    "CHUNK_SIZE",
    "CODECS",
    "ENGINE_DIR",
    "JSON_LIMIT",
    "MANIFEST",
    "MAX_PATH_BYTES",
    "Limits",
    "ObjectInfo",
    "Reader",
    "Storage",
    "Writer",
    "canonical_protocol",
    "check_allowed",
    "check_path",
    "configure",
    "merge_options",
    "open_storage",
    "register_classes",
]

JSON_LIMIT = 64 << 20  # read_json reads whole documents: refuse anything larger
_MIN_SECRET = 4  # shorter option values are not scrubbed from messages (they would maim them)


class Storage(Closable["Storage"]):
    """One backup's root on an fsspec backend: checked paths, whole objects, async calls.
    Use it as ``async with`` (or call aclose()) to close its network sessions."""

    def __init__(
        self, fs: FileSystem, root: str, boundary: Boundary, area: Area, endpoint: Endpoint
    ) -> None:
        self.root = root
        self._fs = fs
        self._boundary = boundary
        self._area = area
        self._endpoint = endpoint
        self._fence: Fence | None = None

    def fenced(self, fence: Fence) -> Storage:
        """The same root, whose objects commit only past the fence (a task's lease: a runner
        taken over stores nothing more). It shares this storage's sessions: close this one."""
        fenced = Storage(self._fs, self.root, self._boundary, self._area, self._endpoint)
        fenced._fence = fence
        return fenced

    def below(self, relative: str) -> Storage:
        """The storage whose root is the folder relative below this root (one backup under a
        prefix, say). It shares this storage's sessions: close this one."""
        root = self.resolve(relative, engine=True)
        boundary = Boundary(f"{self.url}/{relative}", self._boundary.secrets)
        return Storage(self._fs, root, boundary, self._area, self._endpoint)

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
        return Writer(place, compress, self._codec(compress, relative), level, self._fence)

    def reader(
        self, relative: str, *, compression: str | None, expect: ObjectInfo | None = None
    ) -> Reader:
        """A reader of one object's decompressed bytes: ``async with ... as r: async for``;
        with expect (its record), its stored bytes are checked against it on the way."""
        return Reader(self._place(relative), self._codec(compression, relative), expect)

    async def verify(self, info: ObjectInfo) -> None:
        """Stream the stored object; ChecksumMismatch unless its size and SHA-256 match info."""
        async with self.reader(info.path, compression=None, expect=info) as reader:
            async for _ in reader:
                pass

    async def read_json(self, relative: str) -> Any:
        """A small JSON document (manifest, task record), read whole."""
        path = self.resolve(relative, engine=True)
        data = await self._run("read", relative, filesystems.read_prefix, path, JSON_LIMIT + 1)
        if len(data) > JSON_LIMIT:
            raise self._boundary.error("read", relative, f"over {JSON_LIMIT >> 20} MiB of JSON")
        try:
            return json.loads(data)
        except ValueError as exc:  # the message names a position, never the content
            raise self._boundary.error("read", relative, f"not valid JSON: {exc}") from exc

    async def write_json(
        self, relative: str, data: Any, *, engine: bool = False, indent: int | None = None
    ) -> ObjectInfo:
        """Write a small JSON document whole (committed, or nothing on failure). Compact unless
        an indent is asked for: json's fast C encoder serves compact output only."""
        payload = json.dumps(data, ensure_ascii=False, indent=indent).encode()
        async with self.writer(relative, compress=None, engine=engine) as writer:
            await writer.write(payload)
        return writer.info

    async def exists(self, relative: str) -> bool:
        """Whether an object (or a folder) is at relative."""
        path = self.resolve(relative, engine=True)
        return await self._run("look for", relative, filesystems.exists, path)

    async def size(self, relative: str) -> int | None:
        """The stored size of the object at relative; None when there is none."""
        path = self.resolve(relative, engine=True)
        return await self._run("look for", relative, filesystems.size, path)

    async def list(self, prefix: str = "") -> builtins.list[str]:
        """The relative paths of every object below the root (or below its folder prefix)."""
        return sorted(await self.sizes(prefix))

    async def sizes(self, prefix: str = "") -> dict[str, int]:
        """Every object below the root (or below its folder prefix): its relative path and
        stored size, from one listing."""
        base = self.resolve(prefix, engine=True) if prefix else self.root
        found = await self._run("list", prefix or None, filesystems.find, base)
        return {path.removeprefix(f"{self.root}/"): size for path, size in found.items()}

    async def remove(self, relative: str) -> None:
        """Remove the object at relative (engine paths too); nothing happens when it is absent."""
        path = self.resolve(relative, engine=True)
        await self._run("remove", relative, filesystems.remove_file, path)

    async def sweep(self) -> int:
        """Remove what writes cut off by a killed process left behind; answers how many."""
        return await self._run("clean up", None, filesystems.sweep_leftovers, self.root)

    async def remove_tree(self) -> None:
        """Remove everything under the root (and the root); nothing outside it."""
        await self._run("remove", None, filesystems.remove_tree, self.root)

    async def aclose(self) -> None:
        """Close the backend's network sessions (s3fs, gcsfs)."""
        # not behind the endpoint's calls: those may be hung, and closing needs no answer
        closing = Endpoint(f"{self._endpoint.key} (closing)", self._endpoint.workers)
        with self._boundary.guard("close"):
            await closing.call(filesystems.close_sessions, self._fs)

    async def _run(
        self,
        action: str,
        relative: str | None,
        call: Callable[[FileSystem, str, *tuple[Any, ...]], _T],
        *args: Any,
    ) -> _T:
        """call(fs, *args, area) in the storage workers, within the deadline; foreign errors
        become StorageError naming action and relative."""
        with self._boundary.guard(action, relative):
            return await self._endpoint.call(call, self._fs, *args, self._area)

    def _place(self, relative: str, *, engine: bool = True) -> Place:
        path = self.resolve(relative, engine=engine)
        return Place(self._fs, path, relative, self._boundary, self._area, self._endpoint)

    def _codec(self, compression: str | None, relative: str) -> Codec:
        if compression not in CODECS:
            known = ", ".join(str(name) for name in CODECS)
            raise self._boundary.error("use", relative, f"unknown compression (known: {known})")
        return CODECS[compression]

    async def read_versioned(self, relative: str) -> tuple[Any, str]:
        """A small JSON document (a task record) read in one call, and the version it was
        read at, for write_if."""
        path = self.resolve(relative, engine=True)
        data, version = await self._run("read", relative, filesystems.read_versioned, path)
        if len(data) > JSON_LIMIT:
            raise self._boundary.error("read", relative, f"over {JSON_LIMIT >> 20} MiB of JSON")
        try:
            return json.loads(data), version
        except ValueError as exc:  # the message names a position, never the content
            raise self._boundary.error("read", relative, f"not valid JSON: {exc}") from exc

    async def write_if(
        self, relative: str, data: Any, version: str | None, *, indent: int | None = None
    ) -> str:
        """Write a small JSON document (or its encoding, bytes made by the caller) only if the
        stored one is still at version (None: only if there is none); its new version.
        LeaseLost when another writer came first."""
        path = self.resolve(relative, engine=True)
        if isinstance(data, bytes):
            payload = data
        else:
            payload = json.dumps(data, ensure_ascii=False, indent=indent).encode()
        written: str | None = await self._run(
            "write", relative, filesystems.write_if, path, payload, version
        )
        if written is None:
            changed = "is there already" if version is None else "changed since it was read"
            raise LeaseLost(f"{relative} under {self.url} {changed}", url=self.url, path=relative)
        return written

    @property
    def versions_exactly(self) -> bool:
        """Whether write_if is an atomic compare-and-swap here (else read, compare, write)."""
        return filesystems.versions_exactly(self._fs)


def open_storage(
    url: str,
    options: Mapping[str, Any] | None,
    *,
    allow: Sequence[str],
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    aws: Mapping[str, Any] | None = None,
    gc: Mapping[str, Any] | None = None,
    workers: Workers | None = None,
    area_root: bool = False,
) -> Storage:
    """The storage whose root is url, if allowed, with its options merged (see merge_options)
    and its calls run by workers (the process's by default, engine.workers.shared). With
    area_root, url may also be an allowed prefix itself (to look at the whole area, never as
    a task's root: cleanup would remove it all).

    s3fs connects on first use, but gcsfs without a token looks for the machine's default
    credentials at once: call it in a worker thread from async code.
    """
    protocol, base = allowed_area(url, allow, itself=area_root)
    workers = workers or shared()
    timeout = workers.limits.timeout
    merged = merge_options(protocol, options, defaults=defaults, aws=aws, gc=gc, timeout=timeout)
    boundary = Boundary(url.rstrip("/"), _secret_strings(merged))
    with boundary.guard("open"):
        fs, root = filesystems.open_url(url, merged)
        area = area_of(fs, base)
    endpoint = Endpoint(endpoint_key(protocol, root, merged), workers)
    return Storage(fs, root.rstrip("/"), boundary, area, endpoint)


def endpoint_key(protocol: str, root: str, options: Mapping[str, Any]) -> str:
    """What one endpoint's calls share their thread budget by: the protocol and the host the
    options name (a request may name any), or else the bucket (the first part of the root)."""
    client = options.get("client_kwargs")
    named = options.get("endpoint_url") or (
        client.get("endpoint_url") if isinstance(client, Mapping) else None
    )
    if isinstance(named, str) and named:
        return f"{protocol}://{urlsplit(named).netloc.lower()}"
    if protocol in _ONE_PLACE:
        return f"{protocol}://"
    return f"{protocol}://{root.strip('/').split('/')[0]}"


_ONE_PLACE = frozenset({"file", "memory"})  # one machine's disk, one process's memory


def _secret_strings(value: Any) -> frozenset[str]:
    """Every string in the options (the spec treats all of them as secret)."""
    if isinstance(value, str):
        return frozenset({value}) if len(value) >= _MIN_SECRET else frozenset()
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return frozenset().union(*(_secret_strings(item) for item in value))
    return frozenset()

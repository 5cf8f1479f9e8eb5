"""Resource types: their listing, the mapping of an item to a platform resource, and their
backup steps (one class per ``fetch`` kind) and restore steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.language.model.building import Template, Tree
from engine.language.model.pagination import Pagination
from engine.language.model.requests import Request


@dataclass(frozen=True)
class Listing:
    """A paginated listing: the request, its pagination, how records are picked and kept."""

    SCHEMA: ClassVar[str] = "#/$defs/list"
    request: Request
    pagination: Pagination | None
    records: str
    filter: Template | None
    parse: str | None


@dataclass(frozen=True)
class ResourceMapping:
    """How one listed item becomes a platform resource (values are templates)."""

    SCHEMA: ClassVar[str] = "#/$defs/resourceMapping"
    id: Template | None
    name: Template
    type: str | None
    has_subresources: Template | None
    can_backup: Template
    backup_seq_group: Template | None
    restore_seq_group: Template | None
    display_ctx: Tree
    labels: Template | None
    location: Tree | None  # {cloud: {type, region}}, the region a template


@dataclass(frozen=True)
class Each:
    """A collection's sub-request per listed item."""

    SCHEMA: ClassVar[str] = "#/$defs/backupCollection/properties/each"
    request: Request
    select: str
    parse: str | None


@dataclass(frozen=True)
class ObjectStep:
    """Back up one answer as one object."""

    SCHEMA: ClassVar[str] = "#/$defs/backupObject"
    TAG: ClassVar[tuple[str, str]] = ("fetch", "object")
    id: str
    description: str | None
    when: Template | None
    required: bool
    request: Request
    select: str
    format: str
    to: Template
    parse: str | None
    transform: str | None
    decode: str | None


@dataclass(frozen=True)
class CollectionStep:
    """Back up a listing's records (or a sub-request's answer per item) as one object."""

    SCHEMA: ClassVar[str] = "#/$defs/backupCollection"
    TAG: ClassVar[tuple[str, str]] = ("fetch", "collection")
    id: str
    description: str | None
    when: Template | None
    required: bool
    list: Listing
    each: Each | None
    format: str
    to: Template
    transform: str | None


@dataclass(frozen=True)
class DownloadStep:
    """Back up raw bytes (one download, or one per listed item)."""

    SCHEMA: ClassVar[str] = "#/$defs/backupDownload"
    TAG: ClassVar[tuple[str, str]] = ("fetch", "download")
    id: str
    description: str | None
    when: Template | None
    required: bool
    list: Listing | None
    request: Request
    meta: Tree
    to: Template
    decode: str | None

    @property
    def format(self) -> str:
        """A download is stored as it came."""
        return "raw"


BackupStep = ObjectStep | CollectionStep | DownloadStep


@dataclass(frozen=True)
class Conflict:
    """How a write refuses to replace an existing object, and how its answer says it exists:
    a status in ``status`` (when given) whose body holds ``body`` (when given)."""

    SCHEMA: ClassVar[str] = "#/$defs/restoreStep/properties/conflict"
    headers: Tree
    status: tuple[int, ...]
    body: str | None

    def matches(self, status: int, body: bytes) -> bool:
        """Whether an answer with this status and body says the object exists (without a
        status list, only an error status can)."""
        if self.status and status not in self.status:
            return False
        if not self.status and status < 400:
            return False
        return self.body is None or self.body.encode() in body


@dataclass(frozen=True)
class Multipart:
    """A multipart/form-data body: the bytes as one file part, text fields beside it."""

    SCHEMA: ClassVar[str] = "#/$defs/uploadEncoded/properties/multipart"
    file: str
    filename: Template | None
    content_type: Template | None
    fields: Tree


@dataclass(frozen=True)
class Upload:
    """How a restore step sends a raw object's bytes: as the body (``upload: raw``), as a
    multipart file part, or as base64 text at a JSON pointer of the rendered body."""

    SCHEMA: ClassVar[str] = "#/$defs/uploadEncoded"
    SHORTHAND: ClassVar[dict[str, dict[str, Any]]] = {"raw": {}}
    multipart: Multipart | None
    base64: str | None

    @property
    def kind(self) -> str:
        """raw, multipart or base64."""
        return "multipart" if self.multipart else "base64" if self.base64 else "raw"


@dataclass(frozen=True)
class RestoreStep:
    """Writes back, one request per stored record, the objects of backup steps."""

    SCHEMA: ClassVar[str] = "#/$defs/restoreStep"
    ONE_OR_MANY: ClassVar[frozenset[str]] = frozenset({"from"})
    from_: tuple[str, ...]
    description: str | None
    when: Template | None
    request: Request
    conflict: Conflict | None
    remember: Tree
    transform: str | None
    upload: Upload | None
    idempotent: bool


@dataclass(frozen=True)
class ResourceType:
    """One resource type of the tree: how to list its items, map each to a resource, back it
    up and restore it. ``name``, ``ctx_keys``, ``required_keys``, ``children``, ``depth`` and
    ``recursive`` come from the tree (engine.language.tree)."""

    SCHEMA: ClassVar[str] = "#/$defs/resourceType"
    ONE_OR_MANY: ClassVar[frozenset[str]] = frozenset({"parent"})
    KEYS: ClassVar[Mapping[str, str]] = {"parents": "parent"}
    parents: tuple[str, ...]  # none: a root type; itself or a type below it: a recursive tree
    max_depth: int  # the deepest a resource of this type may be in a walk (a root is at 0)
    list: Listing
    resource: ResourceMapping
    ctx: Tree
    backup: tuple[BackupStep, ...]
    restore: tuple[RestoreStep, ...]
    label: str = ""  # when the YAML has none: the name, title-cased (set by the loader)
    name: str = ""
    ctx_keys: tuple[str, ...] = ()  # every key a ctx may carry: its possible ancestors' and own
    required_keys: tuple[str, ...] = ()  # the keys every ctx of it carries, whatever its parent
    children: tuple[str, ...] = ()
    depth: int = 0  # the smallest depth a resource of it can have
    recursive: bool = False  # it lies on a cycle of parents: it may nest in itself

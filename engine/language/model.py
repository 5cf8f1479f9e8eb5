"""The typed definition model: frozen dataclasses for every section of a module definition,
built once from the validated YAML by ``build``.

Each class names the JSON Schema node it models (``SCHEMA``, a JSON pointer); a field's YAML key
is its name in camelCase (a trailing underscore dropped: ``in_`` is ``in``). ``build`` fills
every key the YAML leaves out from that node's ``default`` (the schema states each default once);
a key with no default becomes None, an empty tuple or an empty mapping, by its type. Kinds
(credentials, pagination, backup steps) are unions dispatched on their tag (``TAG``), one class
per kind. Template values (strings, and trees of them such as a request's body) stay as loaded:
they are data the templating renders, not keys the engine reads."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from engine.language.schema import module_schema

T = TypeVar("T")
Template = Any  # a template string, or a literal the schema allows in its place
Tree = Mapping[str, Any]  # a mapping of templates (query, headers, ctx values, labels)


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class Identity:
    """The module's id, name, version, description and vendor."""

    SCHEMA: ClassVar[str] = "#/$defs/identity"
    id: str
    name: str
    version: str
    description: str | None
    vendor: str | None

    def to_json(self) -> dict[str, str]:
        """The identity as the wire and the manifest carry it (absent keys left out)."""
        pairs = {"id": self.id, "name": self.name, "version": self.version}
        extra = {"description": self.description, "vendor": self.vendor}
        return pairs | {key: value for key, value in extra.items() if value is not None}


@dataclass(frozen=True)
class Capabilities:
    """The auth kinds, features and storage kinds the module declares."""

    SCHEMA: ClassVar[str] = "#/$defs/capabilities"
    auth: tuple[str, ...]
    features: tuple[str, ...]
    storage: tuple[str, ...]


@dataclass(frozen=True)
class ResponseRule:
    """A response rule: match a status and/or a body fragment, then retry, ignore or fail."""

    SCHEMA: ClassVar[str] = "#/$defs/responses/items"
    status: tuple[int, ...]
    body: str | None
    action: str
    message: str | None


@dataclass(frozen=True)
class Request:
    """One SaaS request: method, path, query, headers, body and its response rules."""

    SCHEMA: ClassVar[str] = "#/$defs/request"
    method: str
    path: Template
    query: Tree
    headers: Tree
    body: Any
    responses: tuple[ResponseRule, ...]


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts in seconds."""

    SCHEMA: ClassVar[str] = "#/$defs/connection/properties/timeouts"
    connect: float
    read: float


@dataclass(frozen=True)
class Backoff:
    """The waits between attempts: exponential from ``initial`` to ``max``."""

    SCHEMA: ClassVar[str] = "#/$defs/connection/properties/retry/properties/backoff"
    initial: float
    max: float
    multiplier: float
    jitter: bool


@dataclass(frozen=True)
class Retry:
    """The retry policy of every SaaS request."""

    SCHEMA: ClassVar[str] = "#/$defs/connection/properties/retry"
    attempts: int
    statuses: tuple[int, ...]
    errors: tuple[str, ...]
    backoff: Backoff
    max_wait: float
    throttle_budget: float
    unsafe: bool


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class NoCredentials:
    """No credentials."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsNone"
    TAG: ClassVar[tuple[str, str]] = ("kind", "none")
    when: Template | None


@dataclass(frozen=True)
class Basic:
    """HTTP Basic."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsBasic"
    TAG: ClassVar[tuple[str, str]] = ("kind", "basic")
    username: Template
    password: Template
    when: Template | None


@dataclass(frozen=True)
class Bearer:
    """A bearer token."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsBearer"
    TAG: ClassVar[tuple[str, str]] = ("kind", "bearer")
    token: Template
    when: Template | None


@dataclass(frozen=True)
class ApiKey:
    """A key in a header or in the query."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsApiKey"
    TAG: ClassVar[tuple[str, str]] = ("kind", "apiKey")
    in_: str
    name: str
    value: Template
    when: Template | None


@dataclass(frozen=True)
class OAuth2ClientCredentials:
    """An OAuth2 client-credentials grant."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsOAuth2ClientCredentials"
    TAG: ClassVar[tuple[str, str]] = ("kind", "oauth2ClientCredentials")
    token_url: Template
    client_id: Template
    client_secret: Template | None
    client_auth: str
    scope: Template | None
    params: Tree
    when: Template | None


@dataclass(frozen=True)
class OAuth2RefreshToken(OAuth2ClientCredentials):
    """An OAuth2 refresh-token grant (the refresh token may rotate)."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsOAuth2RefreshToken"
    TAG: ClassVar[tuple[str, str]] = ("kind", "oauth2RefreshToken")
    refresh_token: Template
    refresh_token_setting: str | None


@dataclass(frozen=True)
class Session:
    """A login request whose answer carries a token sent on every later request."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsSession"
    TAG: ClassVar[tuple[str, str]] = ("kind", "session")
    login: Request
    token: str
    expires_in: Any
    header: str
    value: Template
    when: Template | None


@dataclass(frozen=True)
class CredentialsHook:
    """Credentials computed by a hook."""

    SCHEMA: ClassVar[str] = "#/$defs/credentialsHook"
    TAG: ClassVar[tuple[str, str]] = ("kind", "hook")
    function: str
    when: Template | None


Credentials = (
    NoCredentials
    | Basic
    | Bearer
    | ApiKey
    | OAuth2ClientCredentials
    | OAuth2RefreshToken
    | Session
    | CredentialsHook
)


@dataclass(frozen=True)
class Connection:
    """The SaaS connection: base URL, credentials, headers, timeouts, retries, limits."""

    SCHEMA: ClassVar[str] = "#/$defs/connection"
    ONE_OR_MANY: ClassVar[frozenset[str]] = frozenset({"auth"})
    base_url: Template
    auth: tuple[Credentials, ...]
    headers: Tree
    timeouts: Timeouts
    retry: Retry
    rate_limit: float | None
    concurrency: int
    responses: tuple[ResponseRule, ...]


# --------------------------------------------------------------------------- pagination


@dataclass(frozen=True)
class NoPaging:
    """A listing of one page."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationNone"
    TAG: ClassVar[tuple[str, str]] = ("kind", "none")


@dataclass(frozen=True)
class OffsetPaging:
    """``?offset=N&limit=M``."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationOffset"
    TAG: ClassVar[tuple[str, str]] = ("kind", "offset")
    offset_param: str
    limit_param: str
    limit: int
    max_pages: int


@dataclass(frozen=True)
class PagePaging:
    """``?page=N`` and an optional page size."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationPage"
    TAG: ClassVar[tuple[str, str]] = ("kind", "page")
    page_param: str
    first: int
    size_param: str | None
    size: int | None
    max_pages: int


@dataclass(frozen=True)
class CursorPaging:
    """A cursor from the answer, sent back as a query parameter."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationCursor"
    TAG: ClassVar[tuple[str, str]] = ("kind", "cursor")
    cursor: str
    param: str
    max_pages: int


@dataclass(frozen=True)
class NextUrlPaging:
    """The next page's URL from the answer's body."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationNextUrl"
    TAG: ClassVar[tuple[str, str]] = ("kind", "nextUrl")
    url: str
    max_pages: int


@dataclass(frozen=True)
class HeaderPaging:
    """The next page's URL from a header."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationHeader"
    TAG: ClassVar[tuple[str, str]] = ("kind", "header")
    header: str
    max_pages: int


@dataclass(frozen=True)
class LinkPaging:
    """The next page's URL from the ``Link`` header, by relation."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationLink"
    TAG: ClassVar[tuple[str, str]] = ("kind", "link")
    rel: str
    max_pages: int


@dataclass(frozen=True)
class HookPaging:
    """The next page decided by a hook."""

    SCHEMA: ClassVar[str] = "#/$defs/paginationHook"
    TAG: ClassVar[tuple[str, str]] = ("kind", "hook")
    function: str
    max_pages: int


Pagination = (
    NoPaging
    | OffsetPaging
    | PagePaging
    | CursorPaging
    | NextUrlPaging
    | HeaderPaging
    | LinkPaging
    | HookPaging
)


# --------------------------------------------------------------------------- resources


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

    @property
    def format(self) -> str:
        """A download is stored as it came."""
        return "raw"


BackupStep = ObjectStep | CollectionStep | DownloadStep


@dataclass(frozen=True)
class Conflict:
    """How a write refuses to replace an existing object."""

    SCHEMA: ClassVar[str] = "#/$defs/restoreStep/properties/conflict"
    headers: Tree
    status: tuple[int, ...]


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


@dataclass(frozen=True)
class ResourceType:
    """One resource type of the tree: how to list its items, map each to a resource, back it
    up and restore it. ``name``, ``ctx_keys``, ``children`` and ``depth`` come from the tree."""

    SCHEMA: ClassVar[str] = "#/$defs/resourceType"
    parent: str | None
    list: Listing
    resource: ResourceMapping
    ctx: Tree
    backup: tuple[BackupStep, ...]
    restore: tuple[RestoreStep, ...]
    label: str = ""  # when the YAML has none: the name, title-cased (set by the loader)
    name: str = ""
    ctx_keys: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    depth: int = 0


# --------------------------------------------------------------------------- forms, sections


@dataclass(frozen=True)
class Choice:
    """One item of a dropdown."""

    SCHEMA: ClassVar[str] = "#/$defs/field/properties/items/items"
    label: str
    value: str | int | float | bool


@dataclass(frozen=True)
class Field:
    """One field of a form."""

    SCHEMA: ClassVar[str] = "#/$defs/field"
    KEEP: ClassVar[str] = "layout"
    id: str
    type: str
    label: str
    placeholder: str | None
    tooltip: str | None
    required: bool | None
    min_length: int | None
    max_length: int | None
    pattern: str | None
    format: str | None
    minimum: float | None
    maximum: float | None
    items: tuple[Choice, ...]
    default: str | int | float | bool | None
    layout: Tree = field(default_factory=dict, compare=False)  # as written


@dataclass(frozen=True)
class Column:
    """A column of form fields."""

    SCHEMA: ClassVar[str] = "#/$defs/form/properties/columns/items"
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Form:
    """A hycu-layout form: its columns of fields and the payload template they fill."""

    SCHEMA: ClassVar[str] = "#/$defs/form"
    KEEP: ClassVar[str] = "layout"
    columns: tuple[Column, ...]
    payload: Tree
    layout: Tree = field(default_factory=dict, compare=False)  # as written, for the platform

    @property
    def fields(self) -> tuple[Field, ...]:
        """Every field, column by column."""
        return tuple(field for column in self.columns for field in column.fields)


@dataclass(frozen=True)
class Check:
    """The connection check run by /api/schemas/auth/validate."""

    SCHEMA: ClassVar[str] = "#/$defs/check"
    request: Request
    expect: str | None
    message: str | None
    field: str | None


@dataclass(frozen=True)
class Auth:
    """The auth form and its connection check."""

    SCHEMA: ClassVar[str] = "#/$defs/auth"
    form: Form | None
    check: Check | None


@dataclass(frozen=True)
class BackupSection:
    """The backup options form."""

    SCHEMA: ClassVar[str] = "#/$defs/backup"
    options: Form | None


@dataclass(frozen=True)
class Scenario:
    """A restore scenario as the module declares it."""

    SCHEMA: ClassVar[str] = "#/$defs/scenario"
    id: str
    kind: str
    name: str
    description: str
    types: tuple[str, ...] | None
    options: Form | None
    target: Tree


@dataclass(frozen=True)
class RestoreSection:
    """The scenarios, the shared options form and the conflict policy of restores."""

    SCHEMA: ClassVar[str] = "#/$defs/restore"
    scenarios: tuple[Scenario, ...]
    options: Form | None
    conflict: Template


@dataclass(frozen=True)
class HooksSection:
    """The hooks file and the task hooks."""

    SCHEMA: ClassVar[str] = "#/properties/hooks"
    file: str
    before_task: str | None
    after_task: str | None


# --------------------------------------------------------------------------- building


def build(cls: type[T], raw: Mapping[str, Any]) -> T:
    """``cls`` from its validated YAML mapping, every left-out key filled from the schema."""
    defaults = schema_defaults(cls)
    hints = get_type_hints(cls)
    many: frozenset[str] = getattr(cls, "ONE_OR_MANY", frozenset())
    keep: str | None = getattr(cls, "KEEP", None)
    values: dict[str, Any] = {keep: raw} if keep else {}
    for spec in fields(cls):  # type: ignore[arg-type]
        key = yaml_key(spec.name)
        if spec.name == keep:
            continue
        if key in raw:
            value = raw[key]
            if key in many and not isinstance(value, list):
                value = [value]
        elif key in defaults:
            value = defaults[key]
        elif spec.default is not MISSING:
            continue
        else:
            value = None
        values[spec.name] = convert(hints[spec.name], value)
    return cls(**values)


def convert(hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` says: dataclasses built, lists made tuples, kinds chosen."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return None if value is None else _one_of(get_args(hint), value)
    if origin is tuple:
        item = get_args(hint)[0]
        return tuple(convert(item, one) for one in value or ())
    if is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value or {})
    if value is None and _is_mapping(hint):
        return {}
    return value


def _one_of(hints: tuple[Any, ...], value: Any) -> Any:
    """A value of a union: a kind chosen by its tag, the one type besides None, or as it is."""
    options = [hint for hint in hints if hint is not type(None)]
    kinds: list[Any] = [hint for hint in options if is_dataclass(hint)]
    if len(kinds) > 1:
        key = kinds[0].TAG[0]
        return build(next(kind for kind in kinds if kind.TAG[1] == value[key]), value)
    return convert(options[0], value) if len(options) == 1 else value


def _is_mapping(hint: Any) -> bool:
    return hint is Tree or get_origin(hint) is Mapping


def yaml_key(name: str) -> str:
    """A field's YAML key: its name in camelCase, a trailing underscore dropped."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(word.title() for word in rest)


def schema_defaults(cls: type[Any]) -> Mapping[str, Any]:
    """The ``default`` of each property of the schema node ``cls`` models ($refs followed)."""
    return _defaults(cls.SCHEMA)


@cache
def _defaults(pointer: str) -> Mapping[str, Any]:
    schema = module_schema()
    node = _resolve(schema, pointer)
    found = {}
    for key, prop in node.get("properties", {}).items():
        target = _resolve(schema, prop["$ref"]) if "$ref" in prop else prop
        if "default" in prop or "default" in target:
            found[key] = prop.get("default", target.get("default"))
    return found


def schema_properties(cls: type[Any]) -> frozenset[str]:
    """The property names of the schema node ``cls`` models."""
    return frozenset(_resolve(module_schema(), cls.SCHEMA).get("properties", {}))


def _resolve(schema: Mapping[str, Any], pointer: str) -> Mapping[str, Any]:
    node: Any = schema
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    result: Mapping[str, Any] = node
    return result

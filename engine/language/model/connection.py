"""The connection: base URL, credentials (one class per kind, chosen by ``kind``), headers,
timeouts, retries and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from engine.language.model.building import Template, Tree
from engine.language.model.requests import Request, ResponseRule


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

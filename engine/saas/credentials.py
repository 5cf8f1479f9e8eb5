"""Credential kinds: how the connection's ``auth`` puts credentials on every SaaS request. One
class per kind, one table (KINDS); the JSON Schema lists the same names.

Static kinds render their templates once. Token kinds obtain an access token (OAuth2 client
credentials, OAuth2 refresh token, session login), share it through the process's TokenCache
(keyed by everything that obtains it), and renew it once when the SaaS refuses it. A session
whose login set cookies lives in its connection only (the token is worthless without them). A
rotated refresh token is used from then on and named by ``update`` (the settings the platform
must store: the answer's ``authUpdate``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import redaction
from engine.clock import Clock
from engine.errors import SaasAuthError, SaasError, SelectorError, TemplateError
from engine.language import model
from engine.language.hooks import Hooks
from engine.language.selectors import select
from engine.language.templating import render, render_tree
from engine.saas.tokens import Token, TokenCache, cache_key, error_code, expiry

# sends the login request spec, rendered with the names given: its answer's JSON, and whether
# it set cookies (kept by the connection that sent it)
Login = Callable[[model.Request, Mapping[str, Any]], Awaitable[tuple[Any, bool]]]
# (token URL, form, HTTP basic credentials or None, what to call it) -> (status, JSON or None)
TokenRequest = Callable[
    [str, Mapping[str, str], tuple[str, str] | None, str], Awaitable[tuple[int, Any]]
]


@dataclass(frozen=True)
class Applied:
    """What credentials add to one request."""

    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    token: Any = None  # what renew() needs to drop exactly the credentials a request carried


@dataclass
class Reach:
    """What token kinds need: the connection's base URL, the token cache and the clock, and the
    SaaS connection's ways to send a token request and the session login."""

    base: str
    token: TokenRequest
    tokens: TokenCache
    clock: Clock
    login: Login
    hooks: Hooks


class Credential:
    """Credentials of one connection."""

    @property
    def update(self) -> dict[str, Any]:
        """Settings the platform must keep (the answer's authUpdate)."""
        return {}

    async def apply(self) -> Applied:
        """What to add to the next request."""
        return Applied()

    async def renew(self, refused: Applied) -> bool:
        """Called when the SaaS refused the credentials a request carried: True when a new try
        may succeed (the client renews at most once per request)."""
        return False


def _value(template: Any, key: str, names: Mapping[str, Any]) -> str:
    """One credential rendered to text; a TemplateError when it renders to nothing."""
    place = f"/connection/auth/{key}"
    value = render(template, names, place=place)
    if value is None or value == "":
        raise TemplateError("rendered to null or empty text", place=place)
    return str(value)


class _Static(Credential):
    def __init__(self, applied: Applied) -> None:
        super().__init__()
        self._applied = applied

    async def apply(self) -> Applied:
        return self._applied


def _none(spec: model.NoCredentials, names: Mapping[str, Any], reach: Reach) -> Credential:
    return _Static(Applied())


def _basic(spec: model.Basic, names: Mapping[str, Any], reach: Reach) -> Credential:
    user = _value(spec.username, "username", names)
    password = _value(spec.password, "password", names)
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return _Static(Applied({"Authorization": f"Basic {token}"}))


def _bearer(spec: model.Bearer, names: Mapping[str, Any], reach: Reach) -> Credential:
    return _Static(Applied({"Authorization": f"Bearer {_value(spec.token, 'token', names)}"}))


def _api_key(spec: model.ApiKey, names: Mapping[str, Any], reach: Reach) -> Credential:
    pair = {spec.name: _value(spec.value, "value", names)}
    return _Static(Applied(query=pair) if spec.in_ == "query" else Applied(headers=pair))


class _Obtained(Credential):
    """Credentials carried by a token the engine obtains and caches."""

    step = "the token request"

    def __init__(self, reach: Reach, key: str, header: str, value: str) -> None:
        super().__init__()
        self.reach = reach
        self.key = key
        self.header = header
        self.value = value  # the header's value, a template naming ``token``
        self._own: Token | None = None  # a token bound to this connection's cookies
        self._first = asyncio.Lock()  # one login at a time in this connection

    async def apply(self) -> Applied:
        token = await self._token()
        value = render(self.value, {"token": token.value}, place="/connection/auth/value")
        return Applied({self.header: str(value)}, token=token)

    async def _token(self) -> Token:
        async with self._first:
            own = self._own
            if own is not None and not own.expired(self.reach.clock.now()):
                redaction.add_secrets(own.value)
                return own
            token = await self.reach.tokens.get(self.key, self.fetch)
            self._own = token if token.bound else None
            return token

    async def renew(self, refused: Applied) -> bool:
        """Drops the refused token (unless another request already replaced it), so the next
        apply() gets a new one."""
        if not isinstance(refused.token, Token):
            return False
        if refused.token is self._own:
            self._own = None
        self.reach.tokens.forget(self.key, refused.token)
        return True

    async def fetch(self, refresh: str | None) -> Token:
        raise NotImplementedError


class _OAuth2(_Obtained):
    """OAuth2 token endpoint grants (RFC 6749): client credentials, refresh token."""

    def __init__(
        self, spec: model.OAuth2ClientCredentials, names: Mapping[str, Any], reach: Reach
    ) -> None:
        grant = (
            "refresh_token" if isinstance(spec, model.OAuth2RefreshToken) else "client_credentials"
        )
        self.grant = grant
        self.url = _value(spec.token_url, "tokenUrl", names)
        self.client_id = _value(spec.client_id, "clientId", names)
        secret = spec.client_secret
        self.secret = None if secret is None else _value(secret, "clientSecret", names)
        self.in_body = spec.client_auth == "body"
        params = render_tree(dict(spec.params), names, place="/connection/auth/params")
        if spec.scope is not None:
            params["scope"] = _value(spec.scope, "scope", names)
        self.params = {key: str(value) for key, value in params.items() if value is not None}
        self.refresh = (
            _value(spec.refresh_token, "refreshToken", names)
            if isinstance(spec, model.OAuth2RefreshToken)
            else None
        )
        self.setting = (
            spec.refresh_token_setting if isinstance(spec, model.OAuth2RefreshToken) else None
        )
        parts = (self.url, self.client_id, self.secret, self.params, self.refresh)
        key = cache_key(grant, *parts)
        super().__init__(reach, key, "Authorization", "Bearer {{ token }}")
        self.step = f"the OAuth2 {grant.replace('_', ' ')} token request"

    @property
    def update(self) -> dict[str, Any]:
        """The newest refresh token, once it differs from the settings' (rotated, by this
        connection or another of the process that started from the same one)."""
        latest = self.reach.tokens.latest_refresh(self.key)
        if self.setting and latest and latest != self.refresh:
            return {self.setting: latest}
        return {}

    async def fetch(self, refresh: str | None) -> Token:
        form = {"grant_type": self.grant} | self.params
        if self.grant == "refresh_token":
            form["refresh_token"] = refresh or str(self.refresh)
        basic = None
        if self.in_body or self.secret is None:
            form["client_id"] = self.client_id
            if self.secret is not None:
                form["client_secret"] = self.secret
        else:
            basic = (self.client_id, self.secret)
        try:
            status, body = await self.reach.token(self.url, form, basic, self.step)
        except SaasError as exc:
            raise SaasAuthError(exc.message) from exc
        if status != 200:
            code = error_code(body)
            said = f", {code}" if code else ""
            raise SaasAuthError(f"{self.step}: the token endpoint refused it (HTTP {status}{said})")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SaasAuthError(f"{self.step}: the token endpoint's answer has no access_token")
        rotated = body.get("refresh_token")
        return Token(
            token,
            expiry(self.reach.clock.now(), body.get("expires_in")),
            rotated if isinstance(rotated, str) and rotated else None,
        )


class _Session(_Obtained):
    """A login request whose answer yields a token, applied as a header."""

    step = "the session login"

    def __init__(self, spec: model.Session, names: Mapping[str, Any], reach: Reach) -> None:
        self.request = spec.login
        self.names = names
        self.selector = spec.token
        self.lifetime = spec.expires_in
        login = self.request
        parts = {"path": login.path, "query": login.query, "headers": login.headers}
        parts |= {"method": login.method, "body": login.body}
        rendered = render_tree(parts, names, place="/connection/auth/login")
        # the same login at another server is another session: never share its token
        key = cache_key("session", reach.base, rendered)
        super().__init__(reach, key, spec.header, str(spec.value))

    async def fetch(self, refresh: str | None) -> Token:
        try:
            body, cookied = await self.reach.login(self.request, self.names)
        except SaasAuthError as exc:
            raise SaasAuthError(f"{self.step}: {exc.message}") from exc
        except SaasError as exc:
            raise SaasAuthError(f"{self.step} failed: {exc.message}") from exc
        try:
            token = select(self.selector, body)
            lifetime = (
                select(self.lifetime, body) if isinstance(self.lifetime, str) else self.lifetime
            )
        except SelectorError as exc:
            raise SaasAuthError(f"{self.step}: the token selector failed: {exc}") from exc
        if not isinstance(token, str) or not token:
            raise SaasAuthError(f"{self.step}: the answer has no token at '{self.selector}'")
        return Token(token, expiry(self.reach.clock.now(), lifetime), bound=cookied)


def _session(spec: model.Session, names: Mapping[str, Any], reach: Reach) -> Credential:
    return _Session(spec, names, reach)


class _Hooked(Credential):
    """A module hook (point authenticate) gives what every request carries."""

    def __init__(self, spec: model.CredentialsHook, names: Mapping[str, Any], reach: Reach) -> None:
        super().__init__()
        self.function = spec.function
        self.settings = dict(names.get("settings", {}))
        self.hooks = reach.hooks
        self._renew = False

    async def apply(self) -> Applied:
        given = await self.hooks.call("authenticate", self.function, self.settings, self._renew)
        self._renew = False
        redaction.add_secrets(*given.get("headers", {}).values(), *given.get("query", {}).values())
        return Applied(dict(given.get("headers", {})), dict(given.get("query", {})))

    async def renew(self, refused: Applied) -> bool:
        self._renew = True  # the next apply() tells the hook to renew
        return True


def _hook(spec: model.CredentialsHook, names: Mapping[str, Any], reach: Reach) -> Credential:
    return _Hooked(spec, names, reach)


def _oauth2(
    spec: model.OAuth2ClientCredentials, names: Mapping[str, Any], reach: Reach
) -> Credential:
    return _OAuth2(spec, names, reach)


# each credentials kind of the model and how it is applied
KINDS: dict[type[Any], Callable[[Any, Mapping[str, Any], Reach], Credential]] = {
    model.NoCredentials: _none,
    model.Basic: _basic,
    model.Bearer: _bearer,
    model.ApiKey: _api_key,
    model.OAuth2ClientCredentials: _oauth2,
    model.OAuth2RefreshToken: _oauth2,
    model.Session: _session,
    model.CredentialsHook: _hook,
}


def credential_for(
    specs: Sequence[model.Credentials], names: Mapping[str, Any], reach: Reach
) -> Credential:
    """The credentials ``specs`` describe (one kind, or alternatives: the first whose ``when``
    holds), rendered with ``names`` (settings, platform)."""
    if not specs:
        return Credential()
    if len(specs) == 1:
        return KINDS[type(specs[0])](specs[0], names, reach)
    for index, alternative in enumerate(specs):
        place = f"/connection/auth/{index}/when"
        if alternative.when is None or render(alternative.when, names, place=place):
            return KINDS[type(alternative)](alternative, names, reach)
    raise TemplateError("no alternative applies to these settings", place="/connection/auth")

"""The outbound SaaS client: renders a module's requests, applies its connection (base URL,
credentials, cookies, headers, timeouts, concurrency) and translates HTTP failures. The only
module that imports httpx: the process's connection pool (Outbound, with what every connection
shares) is made here, and token requests are sent from here too."""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin

import httpx
from aiolimiter import AsyncLimiter
from httpcore._async.http11 import AsyncHTTP11Connection

from engine.clock import Clock, SystemClock
from engine.errors import Retryable, SaasError
from engine.language.definition import Definition
from engine.language.model import Request, ResponseRule
from engine.language.templating import render, render_tree
from engine.saas import credentials, recorder
from engine.saas.credentials import Applied, Reach
from engine.saas.gate import Gate, Pass
from engine.saas.messages import (
    AUTH_STATUSES,
    Answer,
    Downloaded,
    Outgoing,
    Streamed,
    check_headers,
    check_status,
    merge_headers,
    query_value,
    rendered_body,
)
from engine.saas.resilience import Policy, apply_rule, matches, retry_after
from engine.saas.tokens import TokenCache, cache_key

log = logging.getLogger("engine.saas.client")
# How a SaaS says "too many requests": 429, or 503 with a Retry-After (RFC 9110 15.6.4)
_THROTTLE_STATUSES = frozenset({429, 503})
# what a caller takes as an answer whatever its status (status, body): a restore's conflict
Accept = Callable[[int, bytes], bool]
_SCHEMES = frozenset({"http", "https"})
Origin = tuple[str, str, int | None]
_UNSHOWN = frozenset({"host", "cookie"})  # headers of a planned write a dry run does not show


@dataclass
class Outbound:
    """The shared parts of the process's SaaS connections."""

    pool: httpx.AsyncClient
    gate: Gate
    limiter: AsyncLimiter | None = None
    clock: Clock = field(default_factory=SystemClock)
    tokens: TokenCache = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenCache(self.clock)


# httpcore reads an answer 64 KiB at a time, each read under an anyio cancel scope of its own:
# streaming 2 GiB, that per-read cost took the engine to 0.90x of a direct script; 256 KiB reads
# brought it to 0.97x (docs/benchmarks.md). It is a class attribute of httpcore's HTTP/1.1
# connection (httpcore is pinned in uv.lock; tests/test_client.py checks that it is still read).
READ_SIZE = 256 << 10


class _NoCookies(DefaultCookiePolicy):
    """Refuses every cookie: the pool serves every tenant, so it must remember none."""

    def set_ok(self, cookie: object, request: object) -> bool:
        return False


def new_pool(*, max_connections: int = 64) -> httpx.AsyncClient:
    """A connection pool that never follows redirects nor reads proxy settings from the
    environment (credentials go to the SaaS's origin only), keeps no cookies (httpx would
    otherwise keep every Set-Cookie for the whole process), reading answers READ_SIZE bytes at
    a time."""
    AsyncHTTP11Connection.READ_NUM_BYTES = READ_SIZE
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(
        limits=limits,
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(policy=_NoCookies()),
    )


@asynccontextmanager
async def outbound(
    definition: Definition, *, max_connections: int = 64, clock: Clock | None = None
) -> AsyncIterator[Outbound]:
    """The process's Outbound for one module, its pool closed on the way out."""
    connection = definition.connection
    rate = connection.rate_limit
    async with new_pool(max_connections=max_connections) as pool:
        yield Outbound(
            pool,
            Gate(connection.concurrency),
            AsyncLimiter(rate, 1.0) if rate else None,
            clock or SystemClock(),
        )


def _origin(url: str) -> Origin:
    """Scheme, host and port (None for the scheme's default), as browsers compare origins."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _base_url(rendered: Any) -> str:
    text = str(rendered).rstrip("/")
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise SaasError("connection.baseUrl did not render to a valid URL") from exc
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise SaasError("connection.baseUrl did not render to an http(s) URL")
    if parsed.query or parsed.fragment or "?" in text or "#" in text:
        raise SaasError("connection.baseUrl must not carry a query string or fragment")
    return text


def throttles(response: httpx.Response) -> bool:
    """Whether the SaaS answered "too many requests" (a 429, or a 503 asking to come back)."""
    status = response.status_code
    return status == 429 or (status in _THROTTLE_STATUSES and "Retry-After" in response.headers)


class Saas:
    """One source's connection, for the duration of one API call or task. Its cookies are its
    own: they die with it, and no other connection ever sends them."""

    def __init__(
        self,
        shared: Outbound,
        definition: Definition,
        settings: Mapping[str, Any] | None,
        platform: Mapping[str, Any] | None = None,
    ) -> None:
        self.shared = shared
        self.pool = shared.pool
        self.definition = definition
        self.settings = dict(settings or {})
        connection = definition.connection
        names = {"settings": self.settings, "platform": dict(platform or {})}
        self.base = _base_url(render(connection.base_url, names, place="/connection/baseUrl"))
        self.origin = _origin(self.base)
        self.cookies = httpx.Cookies()
        # the gate's window of this tenant: one per origin and auth settings (a digest)
        self.tenant = cache_key("tenant", self.origin, self.settings)
        self.headers = render_tree(connection.headers, names, place="/connection/headers")
        timeouts = connection.timeouts
        self.timeout = httpx.Timeout(timeouts.read, connect=timeouts.connect)
        self.policy = Policy(connection.retry)
        self.rules = connection.responses
        reach = Reach(
            self.base, self._token, shared.tokens, shared.clock, self._login, definition.hooks
        )
        self.credential = credentials.credential_for(connection.auth, names, reach)

    @property
    def auth_update(self) -> dict[str, Any]:
        """Settings the platform must keep (a rotated refresh token): the answer's authUpdate."""
        return dict(self.credential.update)

    async def send(
        self,
        spec: Request,
        names: Mapping[str, Any],
        *,
        place: str,
        params: Mapping[str, Any] | None = None,
        accept: Accept | None = None,
        body: Streamed | None = None,
    ) -> Answer:
        """Renders and sends a request spec (method, path, query, headers, body). An answer
        ``accept`` takes (status, body) is answered as it is, before response rules and
        retries (a conflict the caller handles). A ``body`` streams in place of the spec's:
        each attempt opens it anew, so the retry policy repeats such a request as any other
        (a POST not after a timeout or a drop)."""
        out = self._prepare(spec, names, place, params, body)
        return await self._exchange(out, accept=accept, rules=spec.responses + self.rules)

    def plan(
        self, spec: Request, names: Mapping[str, Any], *, place: str, body: Streamed | None = None
    ) -> None:
        """Builds a request as ``send`` would (without its credentials) and, while a recording
        is on (engine dev), records it as a dry run's planned write; sends nothing."""
        if not recorder.on():
            return
        out = self._prepare(spec, names, place, None, body)
        content = out.content if isinstance(out.content, bytes) else None
        built = self._build(out, Applied(), content)
        if body is not None:
            content = f"(a streamed upload of {body.length} bytes)".encode()
        # the host is the base URL's (a setting: shown masked in the URL), cookies a session's
        headers = {name: value for name, value in built.headers.items() if name not in _UNSHOWN}
        recorder.planned(out.method, out.label, str(built.url), headers, content)

    async def download(
        self,
        spec: Request,
        names: Mapping[str, Any],
        sink: Callable[[bytes], Awaitable[None]],
        *,
        place: str,
    ) -> Downloaded:
        """Sends a request and streams its answer's body into ``sink``, chunk by chunk, without
        holding it whole; returns the byte count and Content-Type. Attempts are repeated until
        the body starts flowing; a failure after that is the caller's (the object is
        discarded)."""
        out = self._prepare(spec, names, place, None)
        rules = spec.responses + self.rules

        async def attempt() -> httpx.Response:
            response = await self._send_once(out, stream=True)
            await _tell(admitted, response)
            if response.status_code >= 300:
                await response.aread()
                await response.aclose()
                self._judge(out, response, None, rules)
            return response

        count = 0
        async with self.shared.gate.admit(self.tenant) as admitted:
            response = await self.policy.run(out.method, attempt, self.shared.clock)
            try:
                with _translated(out.label):
                    async for chunk in response.aiter_raw():
                        count += len(chunk)
                        await sink(chunk)
            finally:
                await response.aclose()
        log.debug("saas %s -> streamed %d bytes", out.label, count)
        return Downloaded(count, response.headers.get("Content-Type"))

    def _prepare(
        self,
        spec: Request,
        names: Mapping[str, Any],
        place: str,
        params: Mapping[str, Any] | None,
        body: Streamed | None = None,
    ) -> Outgoing:
        method = spec.method
        label = f"{method} {spec.path}"
        path = str(render(spec.path, names, place=f"{place}/path"))
        query = render_tree(spec.query, names, place=f"{place}/query")
        query = {key: value for key, value in query.items() if value is not None} | dict(
            params or {}
        )
        own = self._request_headers(spec, names, place)
        content: bytes | Streamed | None = body
        if body is None:
            content, body_headers = rendered_body(spec, names, place)
            headers = merge_headers(body_headers, own)
        else:
            length = {"Content-Length": str(body.length)}
            headers = merge_headers(body.headers, own, body.fixed, length)
        url = self._within_origin(self._url(path), label, "the request path")
        return Outgoing(method, url, label, query, headers, content)

    def _url(self, path: str) -> str:
        """A path below the base URL; or, when it is an absolute URL (a download location
        the SaaS gave), that URL, which must then stay at the base URL's origin."""
        return path if path.startswith(("http://", "https://")) else self.base + path

    def _build(
        self, out: Outgoing, applied: Applied, content: bytes | AsyncIterator[bytes] | None
    ) -> httpx.Request:
        headers = merge_headers(self.headers, applied.headers, out.headers)
        check_headers(out.label, headers)
        query = dict(applied.query) | dict(out.query)
        params = {key: query_value(value) for key, value in query.items()}
        return self.pool.build_request(
            out.method,
            out.url,
            params=params or None,
            headers=headers,
            content=content,
            cookies=self.cookies,
            timeout=self.timeout,
        )

    async def follow(
        self, url: str, label: str, spec: Request, names: Mapping[str, Any], *, place: str
    ) -> Answer:
        """GETs a next-page URL given by the SaaS, with the list request's own headers."""
        absolute = self.resolve(url, label)
        headers = self._request_headers(spec, names, place)
        out = Outgoing("GET", absolute, label, {}, headers, None)
        return await self._exchange(out, rules=spec.responses + self.rules)

    def resolve(self, url: str, label: str) -> str:
        """The absolute form of a URL the SaaS gave; SaasError when it leaves the base's origin."""
        return self._within_origin(urljoin(self.base + "/", url), label, "a next-page URL")

    def _within_origin(self, url: str, label: str, what: str) -> str:
        try:
            same = _origin(url) == self.origin
        except httpx.InvalidURL as exc:
            raise SaasError(f"{label}: {what} is not a valid URL") from exc
        if not same:
            raise SaasError(f"{label}: refused: {what} leaves the origin of the base URL")
        return url

    def _request_headers(
        self, spec: Request, names: Mapping[str, Any], place: str
    ) -> dict[str, str]:
        return merge_headers(render_tree(spec.headers, names, place=f"{place}/headers"))

    async def _login(self, spec: Request, names: Mapping[str, Any]) -> tuple[Any, bool]:
        """The session login: the spec sent without the connection's credentials; its answer's
        JSON, and whether it set cookies (the session then lives in this connection only)."""
        out = self._prepare(spec, names, "/connection/auth/login", None)

        async def attempt() -> Answer:
            response = await self._send_once(out, credential=False)
            return self._judge(out, response, None, self.rules)

        answer = await self.policy.run(out.method, attempt, self.shared.clock)
        return answer.json(), "set-cookie" in answer.headers

    async def _token(
        self, url: str, form: Mapping[str, str], basic: tuple[str, str] | None, step: str
    ) -> tuple[int, Any]:
        """An OAuth2 token request (a form POST, without the connection's credentials or
        cookies): its status and JSON (None when not JSON), retried on the policy's statuses
        and on connection failures (repeating it changes nothing at the SaaS, as a GET)."""
        auth: dict[str, Any] = {"auth": httpx.BasicAuth(*basic)} if basic is not None else {}

        async def attempt() -> httpx.Response:
            try:
                response = await self.pool.post(url, data=form, timeout=self.timeout, **auth)
            except httpx.HTTPError as exc:
                raise Retryable(f"{step}: cannot reach the token endpoint", kind="connect") from exc
            if response.status_code in self.policy.retry.statuses:
                said = f"{step}: the token endpoint answered HTTP {response.status_code}"
                raise Retryable(said, kind=str(response.status_code))
            return response

        response = await self.policy.run("GET", attempt, self.shared.clock)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    async def _exchange(
        self, out: Outgoing, *, accept: Accept | None = None, rules: tuple[ResponseRule, ...] = ()
    ) -> Answer:
        async def attempt() -> Answer:
            async with self.shared.gate.admit(self.tenant) as admitted:
                response = await self._send_once(out)
                await _tell(admitted, response)
            return self._judge(out, response, accept, rules)

        return await self.policy.run(out.method, attempt, self.shared.clock)

    async def _send_once(
        self, out: Outgoing, *, stream: bool = False, credential: bool = True
    ) -> httpx.Response:
        """One attempt: credentials applied, and renewed once when the SaaS refuses them."""
        renewed = False
        while True:
            if self.shared.limiter is not None:
                await self.shared.limiter.acquire()
            applied = await self.credential.apply() if credential else Applied()
            started = self.shared.clock.now()
            async with _opened(out.content) as content:
                with _translated(out.label):
                    request = self._build(out, applied, content)
                    response = await self.pool.send(request, stream=stream)
            if recorder.on():
                took = self.shared.clock.now() - started
                _record(out, response, took, shown=credential, streamed=stream)
            self.cookies.extract_cookies(response)
            if (
                not credential
                or renewed
                or response.status_code not in AUTH_STATUSES
                or not await self.credential.renew(applied)
            ):
                return response
            renewed = True
            await response.aclose()
            log.info("saas %s -> %s; renewing credentials", out.label, response.status_code)

    def _judge(
        self,
        out: Outgoing,
        response: httpx.Response,
        accept: Accept | None,
        rules: Sequence[ResponseRule],
    ) -> Answer:
        """The answer of an attempt, or what its status and body call for."""
        status = response.status_code
        log.debug("saas %s -> %s", out.label, status)

        def wait() -> float | None:  # read only for an answer that is to be retried
            asked = response.headers.get("Retry-After")
            return retry_after(asked, self.shared.clock, self.policy, out.label)

        body = response.content
        if accept is not None and accept(status, body):
            return _answer(out.label, response)
        rule = next((rule for rule in rules if matches(rule, status, body)), None)
        if rule is not None:
            apply_rule(rule, out.label, status, wait() if rule.action == "retry" else None)
        if status in self.policy.retry.statuses:
            said = f"{out.label}: the SaaS answered HTTP {status}"
            slowed = throttles(response)
            raise Retryable(said, kind=str(status), retry_after=wait(), throttled=slowed)
        check_status(out.label, status)
        answer = _answer(out.label, response)
        if "invalid" in self.policy.retry.errors and "json" in response.headers.get(
            "Content-Type", ""
        ):
            try:
                answer.json()
            except SaasError as exc:
                raise Retryable(exc.message, kind="invalid") from exc
        return answer


def _record(
    out: Outgoing, response: httpx.Response, seconds: float, *, shown: bool, streamed: bool
) -> None:
    """The exchange for engine dev's test read; a streamed answer's bytes are not read here."""
    body = None if not shown else b"(streamed: not read here)" if streamed else response.content
    url = str(response.request.url)
    recorder.record(out.method, out.label, url, response.status_code, seconds=seconds, body=body)


async def _tell(admitted: Pass, response: httpx.Response) -> None:
    """Tells the gate whether the SaaS throttled this request or took it."""
    if throttles(response):
        admitted.throttled()
    elif response.status_code < 500:
        await admitted.succeeded()


@asynccontextmanager
async def _opened(
    content: bytes | Streamed | None,
) -> AsyncIterator[bytes | AsyncIterator[bytes] | None]:
    """The content of one attempt: a streamed body opened anew (and closed after the attempt,
    however it ends: its source is read no further), anything else as it is."""
    if not isinstance(content, Streamed):
        yield content
        return
    stream = content.open()
    try:
        yield stream
    finally:
        closing = getattr(stream, "aclose", None)
        if closing is not None:
            await closing()


@contextmanager
def _translated(label: str) -> Iterator[None]:
    """httpx's failures as SaasErrors naming the request (never its URL)."""
    try:
        yield
    except httpx.HTTPError as exc:
        kind, reason = next(
            (found for cls, found in _FAILURES if isinstance(exc, cls)),
            ("dropped", f"cannot reach the SaaS ({_reason(exc)})"),
        )
        raise Retryable(f"{label}: {reason}", kind=kind) from exc
    except httpx.InvalidURL as exc:
        raise SaasError(f"{label}: the request URL is not valid") from exc


def _answer(label: str, response: httpx.Response) -> Answer:
    url = str(response.request.url)
    return Answer(
        label, response.status_code, response.headers, response.content, _links(response), url
    )


def _links(response: httpx.Response) -> dict[str, str]:
    """Link header targets by relation; one link may carry several (``rel="next last"``)."""
    found: dict[str, str] = {}
    for link in response.links.values():
        for rel in str(link.get("rel", "")).split():
            found.setdefault(rel.lower(), str(link.get("url", "")))
    return found


# httpx failures by kind (most specific first): the retry policy's error kind, and the message
_FAILURES: tuple[tuple[type[httpx.HTTPError], tuple[str, str]], ...] = (
    (httpx.ConnectTimeout, ("connect", "cannot reach the SaaS (connection timed out)")),
    (httpx.TimeoutException, ("timeout", "the SaaS did not answer in time")),
    (httpx.ConnectError, ("connect", "cannot reach the SaaS (connection failed)")),
)


def _reason(exc: httpx.HTTPError) -> str:
    table = {
        httpx.ConnectError: "connection failed",
        httpx.RemoteProtocolError: "connection dropped",
    }
    return next((text for kind, text in table.items() if isinstance(exc, kind)), type(exc).__name__)


DOCUMENT_LIMIT = 64 << 20


def fetch_document(url: str, *, timeout: float = 60.0, limit: int = DOCUMENT_LIMIT) -> bytes:
    """A published document (an API description for ``engine init``) fetched once with GET,
    redirects followed, no credentials and no proxy settings sent; at most ``limit`` bytes."""
    label = "the API description"
    with (
        _translated(label),
        httpx.Client(timeout=timeout, trust_env=False) as client,
        client.stream("GET", url, follow_redirects=True) as response,
    ):
        if response.status_code >= 400:
            raise SaasError(f"{label}: the server answered {response.status_code}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise SaasError(f"{label}: larger than {limit} bytes")
        return bytes(body)

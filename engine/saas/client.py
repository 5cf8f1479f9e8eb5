"""The outbound SaaS client: renders a module's requests, applies its connection (base URL,
credentials, cookies, headers, timeouts, concurrency) and translates HTTP failures. The only
module that imports httpx."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urljoin

import httpx

from engine.errors import SaasAuthError, SaasError, TemplateError
from engine.language.definition import Definition
from engine.language.selectors import SelectorError, select
from engine.language.templating import render, render_tree
from engine.saas import credentials
from engine.saas.credentials import Applied, Reach
from engine.saas.outbound import Outbound, Pass
from engine.saas.resilience import Policy, Retryable, Rule, apply_rule, retry_after, rules_of
from engine.saas.tokens import cache_key

log = logging.getLogger("engine.saas.client")
_AUTH_STATUSES = frozenset({401, 403})
# How a SaaS says "too many requests": 429, or 503 with a Retry-After (RFC 9110 15.6.4)
_THROTTLE_STATUSES = frozenset({429, 503})
_SCHEMES = frozenset({"http", "https"})
# What httpx cannot send in a header value (it encodes values as ASCII; CR/LF would split them)
_BAD_HEADER_VALUE = re.compile(r"[^\t\x20-\x7e]")
_TEXT = "text/plain; charset=utf-8"
Origin = tuple[str, str, int | None]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class Answer:
    """A SaaS answer: status, headers, body, the URL it came from, and the request's label."""

    label: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    links: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    @cached_property
    def _parsed(self) -> Any:
        return json.loads(self.body, parse_constant=_reject_constant)

    def json(self) -> Any:
        """The body as JSON; a SaasError naming the request when it is not JSON."""
        try:
            return self._parsed
        except (ValueError, RecursionError) as exc:
            raise SaasError(f"{self.label}: the answer is not JSON") from exc

    def select(self, selector: str) -> Any:
        """What the JMESPath selector picks from the JSON body; SaasError naming both on failure."""
        try:
            return select(selector, self.json())
        except SelectorError as exc:
            raise SaasError(f"{self.label}: the selector '{selector}' failed: {exc}") from exc


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


def merge_headers(*layers: Mapping[str, Any]) -> dict[str, str]:
    """Header layers merged case-insensitively, later layers winning."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        merged |= {name.lower(): (name, str(value)) for name, value in layer.items()}
    return dict(merged.values())


@dataclass(frozen=True)
class _Outbound:
    """A rendered request, ready to send."""

    method: str
    url: str
    label: str
    query: Mapping[str, Any]
    headers: Mapping[str, str]
    content: bytes | None


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
        self.base = _base_url(render(connection["baseUrl"], names, place="/connection/baseUrl"))
        self.origin = _origin(self.base)
        self.cookies = httpx.Cookies()
        # the gate's window of this tenant: one per origin and auth settings (a digest)
        self.tenant = cache_key("tenant", self.origin, self.settings)
        self.headers = render_tree(
            connection.get("headers", {}), names, place="/connection/headers"
        )
        timeouts = definition.timeouts
        self.timeout = httpx.Timeout(timeouts["read"], connect=timeouts["connect"])
        self.policy = Policy.of(connection.get("retry"))
        self.rules = rules_of(connection.get("responses", ()))
        reach = Reach(
            self.base,
            self.pool,
            self.timeout,
            shared.tokens,
            shared.clock,
            self._login,
            definition.hooks,
            self.policy,
        )
        self.credential = credentials.credential_for(connection.get("auth"), names, reach)

    @property
    def auth_update(self) -> dict[str, Any]:
        """Settings the platform must keep (a rotated refresh token): the answer's authUpdate."""
        return dict(self.credential.update)

    async def send(
        self,
        spec: Mapping[str, Any],
        names: Mapping[str, Any],
        *,
        place: str,
        params: Mapping[str, Any] | None = None,
        accept: Collection[int] = (),
    ) -> Answer:
        """Renders and sends a request spec (method, path, query, headers, body). An error
        status in ``accept`` is answered, not raised (a conflict the caller handles)."""
        out = self._prepare(spec, names, place, params)
        return await self._exchange(out, accept=accept, rules=_rules(spec) + self.rules)

    async def download(
        self,
        spec: Mapping[str, Any],
        names: Mapping[str, Any],
        sink: Callable[[bytes], Awaitable[None]],
        *,
        place: str,
    ) -> int:
        """Sends a request and streams its answer's body into ``sink``, chunk by chunk, without
        holding it whole; returns the byte count. Attempts are repeated until the body starts
        flowing; a failure after that is the caller's (the object is discarded)."""
        out = self._prepare(spec, names, place, None)
        rules = _rules(spec) + self.rules

        async def attempt() -> httpx.Response:
            response = await self._send_once(out, stream=True)
            await _tell(admitted, response)
            if response.status_code >= 300:
                await response.aread()
                await response.aclose()
                self._judge(out, response, (), rules)
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
        return count

    def _prepare(
        self,
        spec: Mapping[str, Any],
        names: Mapping[str, Any],
        place: str,
        params: Mapping[str, Any] | None,
    ) -> _Outbound:
        method = str(spec.get("method", "GET"))
        label = f"{method} {spec['path']}"
        path = str(render(spec["path"], names, place=f"{place}/path"))
        query = render_tree(spec.get("query", {}), names, place=f"{place}/query")
        query = {key: value for key, value in query.items() if value is not None} | dict(
            params or {}
        )
        content, body_headers = _content(spec, names, place)
        headers = merge_headers(body_headers, self._request_headers(spec, names, place))
        url = self._within_origin(self.base + path, label, "the request path")
        return _Outbound(method, url, label, query, headers, content)

    def _build(self, out: _Outbound, applied: Applied) -> httpx.Request:
        headers = merge_headers(self.headers, applied.headers, out.headers)
        _check_headers(out.label, headers)
        query = dict(applied.query) | dict(out.query)
        params = {key: _query_value(value) for key, value in query.items()}
        return self.pool.build_request(
            out.method,
            out.url,
            params=params or None,
            headers=headers,
            content=out.content,
            cookies=self.cookies,
            timeout=self.timeout,
        )

    async def follow(
        self, url: str, label: str, spec: Mapping[str, Any], names: Mapping[str, Any], *, place: str
    ) -> Answer:
        """GETs a next-page URL given by the SaaS, with the list request's own headers."""
        absolute = self.resolve(url, label)
        headers = self._request_headers(spec, names, place)
        out = _Outbound("GET", absolute, label, {}, headers, None)
        return await self._exchange(out, rules=_rules(spec) + self.rules)

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
        self, spec: Mapping[str, Any], names: Mapping[str, Any], place: str
    ) -> dict[str, str]:
        return merge_headers(render_tree(spec.get("headers", {}), names, place=f"{place}/headers"))

    async def _login(self, spec: Mapping[str, Any], names: Mapping[str, Any]) -> tuple[Any, bool]:
        """The session login: the spec sent without the connection's credentials; its answer's
        JSON, and whether it set cookies (the session then lives in this connection only)."""
        out = self._prepare(spec, names, "/connection/auth/login", None)

        async def attempt() -> Answer:
            response = await self._send_once(out, credential=False)
            return self._judge(out, response, (), self.rules)

        answer = await self.policy.run(out.method, attempt, self.shared.clock)
        return answer.json(), "set-cookie" in answer.headers

    async def _exchange(
        self, out: _Outbound, *, accept: Collection[int] = (), rules: tuple[Rule, ...] = ()
    ) -> Answer:
        async def attempt() -> Answer:
            async with self.shared.gate.admit(self.tenant) as admitted:
                response = await self._send_once(out)
                await _tell(admitted, response)
            return self._judge(out, response, accept, rules)

        return await self.policy.run(out.method, attempt, self.shared.clock)

    async def _send_once(
        self, out: _Outbound, *, stream: bool = False, credential: bool = True
    ) -> httpx.Response:
        """One attempt: credentials applied, and renewed once when the SaaS refuses them."""
        renewed = False
        while True:
            if self.shared.limiter is not None:
                await self.shared.limiter.acquire()
            applied = await self.credential.apply() if credential else Applied()
            with _translated(out.label):
                response = await self.pool.send(self._build(out, applied), stream=stream)
            self.cookies.extract_cookies(response)
            if (
                not credential
                or renewed
                or response.status_code not in _AUTH_STATUSES
                or not await self.credential.renew(applied)
            ):
                return response
            renewed = True
            await response.aclose()
            log.info("saas %s -> %s; renewing credentials", out.label, response.status_code)

    def _judge(
        self,
        out: _Outbound,
        response: httpx.Response,
        accept: Collection[int],
        rules: Sequence[Rule],
    ) -> Answer:
        """The answer of an attempt, or what its status and body call for."""
        status = response.status_code
        log.debug("saas %s -> %s", out.label, status)

        def wait() -> float | None:  # read only for an answer that is to be retried
            asked = response.headers.get("Retry-After")
            return retry_after(asked, self.shared.clock, self.policy, out.label)

        body = response.content
        rule = next((rule for rule in rules if rule.matches(status, body)), None)
        if rule is not None:
            apply_rule(rule, out.label, status, wait() if rule.action == "retry" else None)
        if status in accept:
            return _answer(out.label, response)
        if status in self.policy.statuses:
            said = f"{out.label}: the SaaS answered HTTP {status}"
            slowed = throttles(response)
            raise Retryable(said, kind=str(status), retry_after=wait(), throttled=slowed)
        _check_status(out.label, status)
        answer = _answer(out.label, response)
        if "invalid" in self.policy.errors and "json" in response.headers.get("Content-Type", ""):
            try:
                answer.json()
            except SaasError as exc:
                raise Retryable(exc.message, kind="invalid") from exc
        return answer


async def _tell(admitted: Pass, response: httpx.Response) -> None:
    """Tells the gate whether the SaaS throttled this request or took it."""
    if throttles(response):
        admitted.throttled()
    elif response.status_code < 500:
        await admitted.succeeded()


def _rules(spec: Mapping[str, Any]) -> tuple[Rule, ...]:
    return rules_of(spec.get("responses", ()))


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


def _check_headers(label: str, headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if _BAD_HEADER_VALUE.search(value):
            raise SaasError(
                f"{label}: the value of header '{name}' holds a character HTTP cannot carry"
                " (non-ASCII or a line break)"
            )


def _check_status(label: str, status: int) -> None:
    if status in _AUTH_STATUSES:
        raise SaasAuthError(f"{label}: the SaaS refused the credentials (HTTP {status})")
    if 300 <= status < 400:
        raise SaasError(f"{label}: the SaaS answered HTTP {status} (redirects are not followed)")
    if status >= 400:
        raise SaasError(f"{label}: the SaaS answered HTTP {status}")


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


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _content(
    spec: Mapping[str, Any], names: Mapping[str, Any], place: str
) -> tuple[bytes | None, dict[str, str]]:
    if "body" not in spec:
        return None, {}
    body = render_tree(spec["body"], names, place=f"{place}/body")
    if isinstance(body, str):
        return body.encode(), {"Content-Type": _TEXT}
    try:
        text = json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TemplateError("the body did not render to plain JSON", place=f"{place}/body") from exc
    return text.encode(), {"Content-Type": "application/json"}

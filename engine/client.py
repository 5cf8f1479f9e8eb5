"""The outbound SaaS client: renders a module's requests, applies its connection (base URL,
credentials, headers, timeouts, concurrency) and translates HTTP failures. The only module
that imports httpx."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urljoin

import httpx

from engine import credentials
from engine.definition import Definition
from engine.errors import SaasAuthError, SaasError, TemplateError
from engine.selectors import SelectorError, select
from engine.templating import render, render_tree

log = logging.getLogger("engine.client")
_AUTH_STATUSES = frozenset({401, 403})
_SCHEMES = frozenset({"http", "https"})
# What httpx cannot send in a header value (it encodes values as ASCII; CR/LF would split them)
_BAD_HEADER_VALUE = re.compile(r"[^\t\x20-\x7e]")
_TEXT = "text/plain; charset=utf-8"
Origin = tuple[str, str, int | None]


def new_pool(*, max_connections: int = 64) -> httpx.AsyncClient:
    """The process's shared connection pool (one per app, kept in lifespan state)."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False)


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


class Saas:
    """One source's connection, for the duration of one API call or task."""

    def __init__(
        self,
        pool: httpx.AsyncClient,
        definition: Definition,
        settings: Mapping[str, Any] | None,
        gate: asyncio.Semaphore,
    ) -> None:
        self.pool = pool
        self.definition = definition
        self.settings = dict(settings or {})
        self.gate = gate
        connection = definition.connection
        names = {"settings": self.settings}
        self.base = _base_url(render(connection["baseUrl"], names, place="/connection/baseUrl"))
        self.origin = _origin(self.base)
        self.headers = merge_headers(
            render_tree(connection.get("headers", {}), names, place="/connection/headers"),
            credentials.headers_for(connection.get("auth"), names),
        )
        timeouts = definition.timeouts
        self.timeout = httpx.Timeout(timeouts["read"], connect=timeouts["connect"])

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
        return await self._exchange(self._prepare(spec, names, place, params), accept=accept)

    async def download(
        self,
        spec: Mapping[str, Any],
        names: Mapping[str, Any],
        sink: Callable[[bytes], Awaitable[None]],
        *,
        place: str,
    ) -> int:
        """Sends a request and streams its answer's body into ``sink``, chunk by chunk, without
        holding it whole; returns the byte count."""
        out = self._prepare(spec, names, place, None)
        count = 0
        async with self.gate:
            with _translated(out.label):
                response = await self.pool.send(self._build(out), stream=True)
                try:
                    _check_status(out.label, response.status_code)
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

    def _build(self, out: _Outbound) -> httpx.Request:
        headers = merge_headers(self.headers, out.headers)
        _check_headers(out.label, headers)
        params = {key: _query_value(value) for key, value in out.query.items()}
        return self.pool.build_request(
            out.method,
            out.url,
            params=params or None,
            headers=headers,
            content=out.content,
            timeout=self.timeout,
        )

    async def follow(
        self, url: str, label: str, spec: Mapping[str, Any], names: Mapping[str, Any], *, place: str
    ) -> Answer:
        """GETs a next-page URL given by the SaaS, with the list request's own headers."""
        absolute = self.resolve(url, label)
        headers = self._request_headers(spec, names, place)
        return await self._exchange(_Outbound("GET", absolute, label, {}, headers, None))

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

    async def _exchange(self, out: _Outbound, *, accept: Collection[int] = ()) -> Answer:
        request = self._build(out)
        async with self.gate:
            with _translated(out.label):
                response = await self.pool.send(request)
        log.debug("saas %s -> %s", out.label, response.status_code)
        if response.status_code not in accept:
            _check_status(out.label, response.status_code)
        return _answer(out.label, response)


@contextmanager
def _translated(label: str) -> Iterator[None]:
    """httpx's failures as SaasErrors naming the request (never its URL)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise SaasError(f"{label}: the SaaS did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise SaasError(f"{label}: cannot reach the SaaS ({_reason(exc)})") from exc
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

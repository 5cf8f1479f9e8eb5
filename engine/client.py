"""The outbound SaaS client: renders a module's requests, applies its connection (base URL,
credentials, headers, timeouts, concurrency) and translates HTTP failures. The only module
that imports httpx."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from engine import credentials
from engine.definition import Definition
from engine.errors import SaasAuthError, SaasError
from engine.templating import render, render_tree

log = logging.getLogger("engine.client")
_AUTH_STATUSES = frozenset({401, 403})


def new_pool(*, max_connections: int = 64) -> httpx.AsyncClient:
    """The process's shared connection pool (one per app, kept in lifespan state)."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False)


@dataclass(frozen=True)
class Answer:
    """A SaaS answer: status, headers, body, and the request's label for messages."""

    label: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    links: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; a SaasError naming the request when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SaasError(f"{self.label}: the answer is not JSON") from exc


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


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
        self.base = str(render(connection["baseUrl"], names, place="/connection/baseUrl")).rstrip(
            "/"
        )
        if _origin(self.base)[0] not in ("http", "https") or not urlsplit(self.base).hostname:
            raise SaasError("connection.baseUrl did not render to an http(s) URL")
        self.origin = _origin(self.base)
        self.headers = dict(
            render_tree(connection.get("headers", {}), names, place="/connection/headers")
        )
        self.headers |= credentials.headers_for(connection.get("auth"), names)
        timeouts = definition.timeouts
        self.timeout = httpx.Timeout(timeouts["read"], connect=timeouts["connect"])

    async def send(
        self,
        spec: Mapping[str, Any],
        names: Mapping[str, Any],
        *,
        place: str,
        params: Mapping[str, Any] | None = None,
    ) -> Answer:
        """Renders and sends a request spec (method, path, query, headers, body)."""
        method = str(spec.get("method", "GET"))
        label = f"{method} {spec['path']}"
        path = str(render(spec["path"], names, place=f"{place}/path"))
        query = render_tree(spec.get("query", {}), names, place=f"{place}/query")
        query = {key: value for key, value in query.items() if value is not None} | dict(
            params or {}
        )
        headers = render_tree(spec.get("headers", {}), names, place=f"{place}/headers")
        content, body_headers = _content(spec, names, place)
        url = self.base + path
        return await self._exchange(
            method, url, label, query=query, headers=headers | body_headers, content=content
        )

    async def follow(self, url: str, label: str) -> Answer:
        """GETs a next-page URL given by the SaaS; refused when it leaves the base URL's origin."""
        absolute = urljoin(self.base + "/", url)
        if _origin(absolute) != self.origin:
            raise SaasError(f"{label}: refused to follow a next-page URL to another origin")
        return await self._exchange("GET", absolute, label, query={}, headers={}, content=None)

    async def _exchange(
        self,
        method: str,
        url: str,
        label: str,
        *,
        query: Mapping[str, Any],
        headers: Mapping[str, Any],
        content: bytes | None,
    ) -> Answer:
        request_headers = self.headers | {key: str(value) for key, value in headers.items()}
        params = {key: _query_value(value) for key, value in query.items()}
        async with self.gate:
            try:
                response = await self.pool.request(
                    method,
                    url,
                    params=params or None,
                    headers=request_headers,
                    content=content,
                    timeout=self.timeout,
                )
            except httpx.TimeoutException as exc:
                raise SaasError(f"{label}: the SaaS did not answer in time") from exc
            except httpx.HTTPError as exc:
                raise SaasError(f"{label}: cannot reach the SaaS ({_reason(exc)})") from exc
        log.debug("saas %s -> %s", label, response.status_code)
        return _answer(label, response)


def _answer(label: str, response: httpx.Response) -> Answer:
    status = response.status_code
    if status in _AUTH_STATUSES:
        raise SaasAuthError(f"{label}: the SaaS refused the credentials (HTTP {status})")
    if status >= 400:
        raise SaasError(f"{label}: the SaaS answered HTTP {status}")
    links = {str(rel): str(link.get("url", "")) for rel, link in response.links.items()}
    return Answer(label, status, response.headers, response.content, links)


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
        return body.encode(), {}
    return json.dumps(body).encode(), {"Content-Type": "application/json"}

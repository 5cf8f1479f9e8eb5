"""The Starlette application, built by a factory from a loaded module and the engine settings:
routes from the endpoint table, shared resources in lifespan state, one error renderer."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.api import openapi, wire
from engine.api.routes import ENDPOINTS, ENGINE_VERSION, Call, Endpoint
from engine.clock import Clock, SystemClock
from engine.errors import (
    BodyTooLarge,
    EngineError,
    MethodError,
    NotFoundError,
    UnauthorizedError,
)
from engine.language.definition import Definition
from engine.redaction import guarding, scrub
from engine.saas.client import outbound
from engine.settings import Settings
from engine.storage import Limits, configure, register_classes
from engine.tasks.lifecycle import Tasks

log = logging.getLogger("engine.api.app")


def error_response(error: EngineError, update: Mapping[str, Any] | None = None) -> JSONResponse:
    """The wire rendering of a fatal error, with secrets masked, and the settings the platform
    must keep all the same (``update``: a refresh token rotated before the failure)."""
    body: dict[str, Any] = wire.error_body(error, error.payload)
    body["error"]["description"] = scrub(body["error"]["description"])
    if update:
        body["authUpdate"] = {"settings": dict(update)}
    return JSONResponse(body, status_code=error.status)


def _authorize(request: Request, token: str | None) -> None:
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise UnauthorizedError("missing or wrong engine API token")


async def _payload(request: Request, limit: int) -> Any:
    """The decoded JSON body, read chunk by chunk: past ``limit`` bytes (declared or counted)
    it is refused before the rest arrives, so a huge body is never held whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the request body is over {limit} bytes (ENGINE_MAX_BODY)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is over {limit} bytes (ENGINE_MAX_BODY)")
        chunks.append(chunk)
    return wire.decode(b"".join(chunks))


async def _answer(endpoint: Endpoint, request: Request, data: Any) -> Response:
    """The endpoint's answer to a decoded body, or its error (secrets already guarded)."""
    state = request.state
    app = request.app.state
    call = Call(app.definition, app.settings, state.outbound, {}, state.tasks)
    try:
        call.body = wire.check_body(endpoint.shape, data)
        answer = await endpoint.handler(call)
        update = call.auth_update()
        if update:
            answer = answer | {"authUpdate": {"settings": update}}
        return JSONResponse(answer)
    except EngineError as exc:
        log.info("%s failed: %s", endpoint.path, exc.message, extra={"endpoint": endpoint.path})
        return error_response(exc, call.auth_update() | dict(exc.auth_update or {}))
    except Exception:
        log.exception("%s failed unexpectedly", endpoint.path, extra={"endpoint": endpoint.path})
        return error_response(EngineError("internal error; see the engine's log"))


def _view(endpoint: Endpoint) -> Any:
    async def view(request: Request) -> Response:
        settings: Settings = request.app.state.settings
        _authorize(request, settings.api_token)
        post = request.method == "POST"
        data = await _payload(request, settings.max_body) if post else {}
        with guarding(*wire.secret_trees(data)):
            return await _answer(endpoint, request, data)

    return view


async def healthz(request: Request) -> Response:
    """Liveness/readiness probe: 200 while the process can serve."""
    return JSONResponse({"status": "ok", "module": request.app.state.definition.id})


async def openapi_json(request: Request) -> Response:
    """The API's OpenAPI document: the contract only (no module data, no secrets), so no token."""
    return JSONResponse(request.app.state.openapi)


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFoundError(f"no endpoint {request.url.path}"))
    if exc.status_code == 405:
        return error_response(
            MethodError(f"{request.method} is not accepted on {request.url.path}")
        )
    return error_response(EngineError(str(exc.detail)))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s failed unexpectedly: %s", request.url.path, type(exc).__name__)
    return error_response(EngineError("internal error; see the engine's log"))


def create_app(
    definition: Definition, settings: Settings, *, clock: Clock | None = None
) -> Starlette:
    """The module API for ``definition`` (``clock``: tests inject one for heartbeats)."""
    register_classes(settings.storage_classes or {})
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        threads, per_endpoint = settings.storage_threads, settings.storage_endpoint_threads
        configure(Limits(settings.storage_timeout, threads, min(per_endpoint, threads)))
        async with outbound(
            definition, max_connections=settings.max_connections, clock=clock
        ) as shared:
            tasks = Tasks(definition, settings, shared, ENGINE_VERSION, clock=clock)
            try:
                yield {"outbound": shared, "tasks": tasks}
            finally:
                await tasks.shutdown()

    routes = [Route(e.path, _view(e), methods=list(e.methods)) for e in ENDPOINTS]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    routes.append(Route("/openapi.json", openapi_json, methods=["GET"]))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            EngineError: _engine_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.definition = definition
    app.state.settings = settings
    app.state.openapi = openapi.document()
    return app

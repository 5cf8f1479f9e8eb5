"""The OpenAPI 3.1 document of the module API, generated from the endpoint table and the wire
shapes (requests, answers, error codes by status), served at ``GET /openapi.json``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.api import wire
from engine.api.routes import ENDPOINTS, ENGINE_VERSION, Endpoint
from engine.errors import EngineError, RecordedError

_JSON = "application/json"
# Either the engine's bearer token or nothing: which one depends on ENGINE_API_TOKEN.
_SECURITY: list[dict[str, list[str]]] = [{"engineToken": []}, {}]


def _kinds(root: type[EngineError]) -> Iterator[type[EngineError]]:
    yield root
    for sub in root.__subclasses__():
        yield from _kinds(sub)


def error_codes() -> dict[int, list[str]]:
    """Each HTTP status the engine answers errors with, and the codes it answers them with."""
    found: dict[int, set[str]] = {}
    for kind in _kinds(EngineError):
        if kind is not RecordedError:  # it answers with the status and code of another kind
            found.setdefault(kind.status, set()).add(str(kind.code))
    return {status: sorted(codes) for status, codes in sorted(found.items())}


def _error_answer(codes: list[str]) -> dict[str, Any]:
    schema = wire.ERROR_ANSWER | {"properties": dict(wire.ERROR_ANSWER["properties"])}
    error = schema["properties"]["error"]
    schema["properties"]["error"] = error | {
        "properties": error["properties"] | {"code": {"enum": codes}}
    }
    return {"description": ", ".join(codes), "content": {_JSON: {"schema": schema}}}


def _operation(endpoint: Endpoint, method: str) -> dict[str, Any]:
    answer = {"schema": wire.RESPONSES[endpoint.shape]}
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.shape}{method.title()}",
        "security": _SECURITY,
        "responses": {"200": {"description": "the answer", "content": {_JSON: answer}}}
        | {str(status): _error_answer(codes) for status, codes in error_codes().items()},
    }
    if method == "POST":
        body = {"schema": wire.REQUESTS[endpoint.shape]}
        # the two endpoints GET also serves take an empty body: no field is required there
        operation["requestBody"] = {
            "required": "GET" not in endpoint.methods,
            "content": {_JSON: body},
        }
    return operation


def document() -> dict[str, Any]:
    """The OpenAPI document of every endpoint."""
    paths = {
        endpoint.path: {method.lower(): _operation(endpoint, method) for method in endpoint.methods}
        for endpoint in ENDPOINTS
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Module engine API", "version": ENGINE_VERSION},
        "paths": paths,
        "components": {
            "securitySchemes": {"engineToken": {"type": "http", "scheme": "bearer"}},
        },
    }

"""An API description read into what a draft needs: OpenAPI 3.0/3.1 or Swagger 2.0, JSON or
YAML, from a file or a URL fetched once. ``$ref`` resolution is the ``referencing`` library's
(python-jsonschema's own, already installed with jsonschema): the document is one resource in
a registry, and every reference is looked up through its resolver, never by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from referencing import Registry, Resource, Specification
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT4, DRAFT202012

from engine.errors import DescriptionError
from engine.language.document import parse

METHODS = ("get", "put", "post", "patch", "delete")
DOCUMENT_URI = "urn:engine:api-description"
JSON_TYPES = ("application/json", "application/hal+json", "application/vnd.api+json")


@dataclass(frozen=True)
class Parameter:
    """One parameter of an operation: its name and where it goes (path, query, header)."""

    name: str
    where: str


@dataclass(frozen=True)
class Operation:
    """One operation: method, path template, operationId, parameters, and its success answer
    (the JSON schema, references resolved at its top, and the names of its headers)."""

    method: str
    path: str
    operation_id: str
    parameters: tuple[Parameter, ...]
    answer: Mapping[str, Any] | None
    headers: tuple[str, ...]
    unresolved: str = ""  # why its answer's schema is unknown: a $ref that does not resolve

    @property
    def label(self) -> str:
        """How a TODO line names the operation: ``GET /buckets (get_buckets)``."""
        named = f" ({self.operation_id})" if self.operation_id else ""
        return f"{self.method.upper()} {self.path}{named}"

    def names(self, where: str) -> tuple[str, ...]:
        """The names of the parameters that go ``where``."""
        return tuple(p.name for p in self.parameters if p.where == where)


@dataclass(frozen=True)
class Scheme:
    """A security scheme: its name, kind (basic, bearer, apiKey, oauth2, ...) and details."""

    name: str
    kind: str
    location: str = ""  # an apiKey's header, query or cookie
    key: str = ""  # an apiKey's header or parameter name
    token_url: str = ""  # oauth2 client credentials
    description: str = ""


@dataclass(frozen=True)
class Api:
    """What the draft reads from an API description."""

    version: str  # "2.0", "3.0.3", "3.1.0"
    title: str
    description: str
    server: str
    schemes: tuple[Scheme, ...]
    operations: tuple[Operation, ...]
    resolver: Any  # the referencing resolver, for schemas the draft looks into

    def resolve(self, node: Any) -> Any:
        """node with its ``$ref`` chain followed (its own level only); unresolvable: {}."""
        return deref(self.resolver, node)


def read(source: str) -> Api:
    """The API description at source: a URL (fetched once) or a file path."""
    if source.startswith(("http://", "https://")):
        from engine.saas.client import fetch_document  # noqa: PLC0415 (httpx only for a URL)

        return load(fetch_document(source), source)
    try:
        return load(Path(source).read_bytes(), source)
    except OSError as exc:
        raise DescriptionError(f"{source}: cannot read ({exc.strerror})") from exc


def load(raw: bytes, source: str) -> Api:
    """An API description from its bytes (JSON or YAML)."""
    data = _parsed(raw, source)
    version = str(data.get("openapi") or data.get("swagger") or "")
    if not version.startswith(("2.", "3.")):
        raise DescriptionError(f"{source}: not an OpenAPI 3.x or Swagger 2.0 document")
    spec = DRAFT202012 if version.startswith("3.1") else DRAFT4
    resolver = _registry(data, spec).resolver(base_uri=DOCUMENT_URI)
    info: dict[str, Any] = data["info"] if isinstance(data.get("info"), dict) else {}
    return Api(
        version=version,
        title=str(info.get("title") or ""),
        description=str(info.get("description") or "").strip(),
        server=_server(data, version),
        schemes=tuple(_schemes(data, resolver, version)),
        operations=tuple(_operations(data, resolver, version)),
        resolver=resolver,
    )


def _parsed(raw: bytes, source: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DescriptionError(f"{source}: not UTF-8 text") from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DescriptionError(f"{source}: invalid JSON: {exc}") from exc
    else:
        document, problems = parse(text, source)
        if problems:
            raise DescriptionError(str(problems[0]))
        data = document.data
    if not isinstance(data, dict):
        raise DescriptionError(f"{source}: not an OpenAPI 3.x or Swagger 2.0 document")
    return data


def _registry(data: dict[str, Any], spec: Specification[Any]) -> Registry[Any]:
    resource: Resource[Any] = spec.create_resource(data)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return registry


def deref(resolver: Any, node: Any, hops: int = 32) -> Any:
    """node with its ``$ref`` chain followed; a reference that does not resolve (another file,
    a typo) or a loop gives {}: the draft treats it as unknown."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and hops > 0:
        try:
            resolved = resolver.lookup(node["$ref"])
        except Unresolvable:
            return {}
        node, resolver, hops = resolved.contents, resolved.resolver, hops - 1
    return {} if hops == 0 else node


def _server(data: dict[str, Any], version: str) -> str:
    """The first server's URL (its variables at their defaults), or ''."""
    if version.startswith("2."):
        host = data.get("host")
        schemes = data.get("schemes") or ["https"]
        return f"{schemes[0]}://{host}{data.get('basePath', '')}".rstrip("/") if host else ""
    servers = data.get("servers") or [{}]
    first = servers[0] if isinstance(servers[0], dict) else {}
    url = str(first.get("url") or "")
    for name, variable in (first.get("variables") or {}).items():
        url = url.replace("{" + name + "}", str(variable.get("default", "")))
    return url.rstrip("/") if url.startswith(("http://", "https://")) else ""


def _schemes(data: dict[str, Any], resolver: Any, version: str) -> Iterator[Scheme]:
    found = (
        data.get("securityDefinitions")
        if version.startswith("2.")
        else (data.get("components") or {}).get("securitySchemes")
    )
    for name, node in (found or {}).items():
        scheme = deref(resolver, node)
        if isinstance(scheme, dict):
            yield _scheme(str(name), scheme)


def _scheme(name: str, scheme: dict[str, Any]) -> Scheme:
    kind = str(scheme.get("type") or "")
    if kind == "http":
        kind = str(scheme.get("scheme") or "").lower()
    flows = scheme.get("flows") or {}
    token_url = str((flows.get("clientCredentials") or {}).get("tokenUrl") or "")
    if scheme.get("flow") == "application":  # Swagger 2's client credentials
        token_url = str(scheme.get("tokenUrl") or "")
    if kind == "oauth2" and token_url:
        kind = "oauth2ClientCredentials"
    return Scheme(
        name=name,
        kind=kind,
        location=str(scheme.get("in") or ""),
        key=str(scheme.get("name") or ""),
        token_url=token_url,
        description=str(scheme.get("description") or "").strip(),
    )


def _operations(data: dict[str, Any], resolver: Any, version: str) -> Iterator[Operation]:
    for path, node in (data.get("paths") or {}).items():
        item = deref(resolver, node)
        if not isinstance(item, dict):
            continue
        shared = _parameters(resolver, item.get("parameters"))
        for method in METHODS:
            operation = deref(resolver, item.get(method))
            if isinstance(operation, dict) and operation:
                yield _operation(resolver, version, str(path), method, operation, shared=shared)


def _operation(
    resolver: Any,
    version: str,
    path: str,
    method: str,
    operation: dict[str, Any],
    *,
    shared: dict[tuple[str, str], Parameter],
) -> Operation:
    own = _parameters(resolver, operation.get("parameters"))
    answer, headers, unresolved = _success(resolver, version, operation.get("responses") or {})
    return Operation(
        method=method,
        path=path,
        operation_id=str(operation.get("operationId") or ""),
        parameters=tuple({**shared, **own}.values()),
        answer=answer,
        headers=headers,
        unresolved=unresolved,
    )


def _parameters(resolver: Any, nodes: Any) -> dict[tuple[str, str], Parameter]:
    found = {}
    for node in nodes if isinstance(nodes, list) else []:
        parameter = deref(resolver, node)
        if isinstance(parameter, dict) and "name" in parameter and "in" in parameter:
            key = (str(parameter["name"]), str(parameter["in"]))
            found[key] = Parameter(*key)
    return found


def _success(
    resolver: Any, version: str, responses: dict[str, Any]
) -> tuple[Mapping[str, Any] | None, tuple[str, ...], str]:
    """The JSON schema and header names of the first 2xx answer (200 first), and why the
    schema is unknown when a reference to it does not resolve."""
    codes = sorted((str(code) for code in responses if str(code).startswith("2")), key=_rank)
    response = deref(resolver, responses[codes[0]]) if codes else None
    if not isinstance(response, dict):
        return None, (), ""
    headers = tuple(str(name) for name in response.get("headers") or {})
    schema = response.get("schema") if version.startswith("2.") else _json_schema(response)
    resolved = deref(resolver, schema) if schema is not None else None
    if isinstance(schema, dict) and "$ref" in schema and not resolved:
        return None, headers, f"its answer's $ref {schema['$ref']} does not resolve"
    return (resolved if isinstance(resolved, dict) else None), headers, ""


def _rank(code: str) -> tuple[int, str]:
    return (0 if code == "200" else 1, code)


def _json_schema(response: dict[str, Any]) -> Any:
    content = response.get("content") or {}
    for media in (*JSON_TYPES, *content):
        if media in content and ("json" in media or media == "*/*"):
            return (content[media] or {}).get("schema")
    return None

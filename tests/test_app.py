"""The application factory: error rendering, method rules, health, secrets kept out of errors,
bodies decoded safely and capped in size (over real HTTP), the OpenAPI document served."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from engine import logs
from engine.api import app as app_module
from engine.api.app import create_app
from engine.api.routes import Call, Endpoint
from engine.language.loader import load_module
from engine.settings import Settings
from scripts import servers

KINTO = Path(__file__).resolve().parents[1] / "modules" / "kinto"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(load_module(KINTO), Settings()), raise_server_exceptions=False) as c:
        yield c


async def _explode(call: Call) -> dict[str, object]:
    password = call.body["auth"]["settings"]["password_secret"]
    raise RuntimeError(f"boom with {password}")


def _failing_app() -> Starlette:
    """The Kinto app plus one endpoint whose handler raises an unexpected exception."""
    app = create_app(load_module(KINTO), Settings())
    view = app_module._view(Endpoint("/api/boom", _explode, ("POST",), "roots"))
    app.router.routes.append(Route("/api/boom", view, methods=["POST"]))
    return app


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The engine's own JSON log handler, into a buffer; pytest's handlers restored after."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("INFO", buffer)
    yield buffer
    root.handlers[:], root.level = saved, level


def test_an_unexpected_failure_is_500_internal_without_traceback_or_secret(json_logs):
    body = {"auth": {"settings": {"password_secret": "Very-Secret-77"}}}
    with TestClient(_failing_app(), raise_server_exceptions=False) as client:
        answer = client.post("/api/boom", json=body)
    logged = json_logs.getvalue()
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {"code": "INTERNAL", "description": "internal error; see the engine's log"}
    }
    assert "Traceback" not in answer.text
    assert "boom with ***" in logged  # the traceback is logged for the operator...
    assert "Very-Secret-77" not in logged  # ...with the secret masked
    assert all(json.loads(line)["level"] for line in logged.splitlines())


def test_healthz_answers_ok_with_the_module_id(client):
    assert client.get("/healthz").json() == {"status": "ok", "module": "kinto"}


def test_post_only_endpoints_refuse_get_in_the_error_shape(client):
    answer = client.get("/api/roots")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "BAD_REQUEST"


def test_auth_schema_is_404_for_a_module_without_auth_settings(tmp_path):
    text = (KINTO / "module.yaml").read_text()
    text = text.replace("auth: [AUTH_SETTINGS]", "auth: []")
    start, end = text.index("\nauth:\n"), text.index("\nconnection:\n")
    text = text[:start] + text[end:]
    text = text.replace('"{{ settings.server_url }}"', "http://127.0.0.1:9/v1")
    start, end = text.index("\n  auth:\n"), text.index("\n  headers:\n")
    text = text[:start] + "\n  auth:\n    kind: none" + text[end:]
    (tmp_path / "module.yaml").write_text(text)
    with TestClient(create_app(load_module(tmp_path), Settings())) as client:
        answer = client.get("/api/schemas/auth")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


# --------------------------------------------------------------------------- request bodies

LIMIT = 4096


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/roots", {"storage": "x", "destination": 5, "auth": "a-string"}),
        ("/api/config/backup", {"storage": {"options": "x"}, "destination": [1]}),
        ("/api/resources", {"destination": "x", "storage": None, "settings": 7}),
        ("/api/version", {"storage": "x"}),
    ],
    ids=["roots", "config backup", "resources", "version"],
)
def test_fields_an_endpoint_does_not_take_never_break_it_whatever_their_shape(client, path, body):
    answer = client.post(path, json=body)
    assert answer.status_code < 500, answer.text


def test_a_body_with_a_lone_surrogate_is_400_naming_where(client):
    raw = b'{"ctx": {"kind": "root@kinto", "type": "bucket", "values": {"b": "\\ud800"}}}'
    answer = client.post("/api/config/backup", content=raw)
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "code": "BAD_REQUEST",
        "description": "request body /ctx/values/b: holds a lone surrogate (not UTF-8 text)",
    }


def test_the_openapi_document_is_served_without_the_api_token():
    settings = Settings(api_token="engine-token-123")
    with TestClient(create_app(load_module(KINTO), settings)) as client:
        document = client.get("/openapi.json")
        version = client.get("/api/version")
    assert document.status_code == 200
    assert document.json()["openapi"] == "3.1.0"
    assert "/api/bulk/export" in document.json()["paths"]
    assert version.status_code == 401


@pytest.fixture(scope="module")
def small_body_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """A real `engine serve` process whose bodies may be 4 KiB at most."""
    port = servers.free_port()
    argv: list[str | Path] = [sys.executable, "-m", "engine", "serve", KINTO, "--port", str(port)]
    with servers.start_process(
        "engine",
        argv,
        url=f"http://{servers.HOST}:{port}",
        health_url=f"http://{servers.HOST}:{port}/healthz",
        log_path=tmp_path_factory.mktemp("engine") / "engine.log",
        cwd=KINTO.parents[1],
        env={"ENGINE_MAX_BODY": str(LIMIT)},
    ) as server:
        yield server


def _exchange(server: servers.Server, head: bytes, chunks: list[bytes]) -> bytes:
    """Sends a request head and body chunks, never ending the body, and reads the answer: the
    engine must answer without waiting for the rest."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection((servers.HOST, port), timeout=10) as conn:
        conn.sendall(head)
        for chunk in chunks:
            conn.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            got = conn.recv(65536)
            if not got:
                break
            answer += got
    return answer


def _post_head(extra: str) -> bytes:
    head = "POST /api/roots HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return f"{head}{extra}\r\n".encode()


def test_a_body_declared_too_large_is_413_before_any_of_it_is_sent(small_body_engine):
    answer = _exchange(small_body_engine, _post_head(f"Content-Length: {10**9}\r\n"), [])
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"BODY_TOO_LARGE"' in answer
    assert f"over {LIMIT} bytes (ENGINE_MAX_BODY)".encode() in answer


def test_a_streamed_body_is_413_as_soon_as_it_passes_the_limit(small_body_engine):
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"  # 1 KiB chunks of a body that never ends
    answer = _exchange(small_body_engine, _post_head("Transfer-Encoding: chunked\r\n"), [chunk] * 6)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"BODY_TOO_LARGE"' in answer


def test_a_body_at_the_limit_is_read(small_body_engine):
    body = b'{"auth": null}'.ljust(LIMIT)
    answer = httpx.post(f"{small_body_engine.url}/api/version", content=body)
    assert answer.status_code == 200

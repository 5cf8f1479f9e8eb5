"""The application factory: error rendering, method rules, health, secrets kept out of errors."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from engine import app as app_module
from engine import logs
from engine.app import create_app
from engine.loader import load_module
from engine.routes import Call, Endpoint
from engine.settings import Settings

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

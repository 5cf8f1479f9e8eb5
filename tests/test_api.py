"""End to end: the discovery half of the module API against a real Kinto, in process (Starlette's
TestClient) and through a real `engine serve` process over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.language.loader import build, load_module
from engine.settings import Settings
from scripts import servers

ROOT = Path(__file__).resolve().parents[1]
KINTO_MODULE = ROOT / "modules" / "kinto"
# paginate_by is 10: every level below needs at least three pages
BUCKETS, COLLECTIONS, GROUPS = 23, 21, 24


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.KintoServer]:
    """A Kinto of its own, seeded so that buckets, collections and groups each span 3+ pages."""
    with servers.start_kinto(tmp_path_factory.mktemp("kinto-api"), paginate_by=10) as kinto:
        servers.seed_kinto(
            kinto.url,
            kinto.admin,
            buckets=BUCKETS,
            collections=COLLECTIONS,
            groups=GROUPS,
            records=0,
        )
        yield kinto


def auth_of(kinto: servers.KintoServer, **changes: str) -> dict[str, Any]:
    user, password = kinto.admin
    settings = {"server_url": kinto.url, "username": user, "password_secret": password}
    return {"settings": settings | changes}


def client_for(definition_dir: Path = KINTO_MODULE, **settings: Any) -> TestClient:
    app = create_app(load_module(definition_dir), Settings(**settings))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def api() -> Iterator[TestClient]:
    with client_for(pages_per_call=2) as client:
        yield client


def list_all(client: TestClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource of a listing, following paginationCtx; no errors allowed."""
    found: list[dict[str, Any]] = []
    pagination: dict[str, Any] | None = None
    for _ in range(1000):
        answer = client.post(path, json=body | {"paginationCtx": pagination})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["errors"] == []
        found += page["resources"]
        pagination = page.get("paginationCtx")
        if pagination is None:
            return found
    raise AssertionError("the listing never ended")


def kinto_ids(kinto: servers.KintoServer, path: str) -> list[str]:
    with httpx.Client(base_url=kinto.url, auth=kinto.admin, trust_env=False) as client:
        return [item["id"] for page in servers.kinto_list(client, path) for item in page]


def test_roots_equal_the_buckets_kinto_holds_across_pages(api, seeded):
    roots = list_all(api, "/api/roots", {"auth": auth_of(seeded)})
    assert sorted(root["id"] for root in roots) == sorted(kinto_ids(seeded, "/buckets"))
    assert len(roots) == BUCKETS
    first = roots[0]
    assert first["type"] == "bucket"
    assert first["hasSubresources"] is True
    assert first["ctx"] == {
        "kind": "root@kinto",
        "type": "bucket",
        "values": {"bucket": first["id"]},
    }
    assert first["displayCtx"] == {"Bucket": first["id"]}


def test_resources_equal_the_collections_and_groups_of_a_bucket(api, seeded):
    roots = list_all(api, "/api/roots", {"auth": auth_of(seeded)})
    for root in roots[:3]:
        bucket = root["id"]
        children = list_all(api, "/api/resources", {"auth": auth_of(seeded), "ctx": root["ctx"]})
        by_type: dict[str, list[str]] = {"collection": [], "group": []}
        for child in children:
            by_type[child["type"]].append(child["name"])
            assert child["ctx"]["values"]["bucket"] == bucket
            assert child["ctx"]["kind"] == "resource@kinto"
        assert sorted(by_type["collection"]) == sorted(
            kinto_ids(seeded, f"/buckets/{bucket}/collections")
        )
        assert sorted(by_type["group"]) == sorted(kinto_ids(seeded, f"/buckets/{bucket}/groups"))
        assert (len(by_type["collection"]), len(by_type["group"])) == (COLLECTIONS, GROUPS)


def test_a_leaf_resource_has_no_children_and_labels_from_its_mapping(api, seeded):
    root = list_all(api, "/api/roots", {"auth": auth_of(seeded)})[0]
    children = list_all(api, "/api/resources", {"auth": auth_of(seeded), "ctx": root["ctx"]})
    group = next(child for child in children if child["type"] == "group")
    assert group["labels"] == [{"key": "members", "value": "1"}]
    assert group["hasSubresources"] is False
    leaf = list_all(api, "/api/resources", {"auth": auth_of(seeded), "ctx": group["ctx"]})
    assert leaf == []


def test_version_and_auth_schema_describe_the_module(api):
    version = api.get("/api/version").json()
    assert version["id"] == "kinto"
    assert version["capabilities"]["auth"] == ["AUTH_SETTINGS"]
    assert api.post("/api/version").json() == version
    schema = api.get("/api/schemas/auth").json()
    assert schema["schemaType"] == "hycu-layout"
    ids = [field["id"] for column in schema["schema"]["columns"] for field in column["fields"]]
    assert ids == [
        "server",
        "method",
        "user",
        "password",
        "token_url",
        "client_id",
        "client_secret",
        "refresh_token",
    ]
    assert schema["schema"]["payload"]["password_secret"] == "password"


def test_validate_accepts_good_credentials(api, seeded):
    answer = api.post("/api/schemas/auth/validate", json={"auth": auth_of(seeded)})
    assert answer.json() == {"valid": True, "errors": []}


def test_validate_names_the_password_field_for_a_wrong_password(api, seeded):
    answer = api.post(
        "/api/schemas/auth/validate",
        json={"auth": auth_of(seeded, password_secret="Wrong-Pass-123")},
    )
    body = answer.json()
    assert answer.status_code == 200
    assert body["valid"] is False
    assert body["errors"][0]["code"] == "SAAS_AUTH_FAILED"
    assert body["errors"][0]["field"] == "password"
    assert "Wrong-Pass-123" not in answer.text


def test_validate_names_the_server_field_when_kinto_is_unreachable(api):
    settings = {
        "server_url": f"http://127.0.0.1:{servers.free_port()}/v1",
        "username": "u",
        "password_secret": "pw-x",
    }
    body = api.post("/api/schemas/auth/validate", json={"auth": {"settings": settings}}).json()
    assert body["valid"] is False
    assert body["errors"][0]["code"] == "SAAS_ERROR"
    assert body["errors"][0]["field"] == "server"
    assert "cannot reach" in body["errors"][0]["description"]
    assert settings["server_url"] not in json.dumps(body)


def test_validate_checks_the_form_rules_before_calling_kinto(api):
    settings = {"server_url": "not a url", "username": "u" * 300, "password_secret": "x"}
    body = api.post("/api/schemas/auth/validate", json={"settings": settings}).json()
    fields = {error["field"] for error in body["errors"]}
    assert body["valid"] is False
    assert fields == {"server", "user"}
    assert all(error["code"] == "INVALID_SETTINGS" for error in body["errors"])


def test_settings_that_break_the_form_are_422_on_other_endpoints(api):
    answer = api.post("/api/roots", json={"auth": {"settings": {"username": "admin"}}})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "INVALID_SETTINGS"


def test_a_wrong_password_on_a_listing_is_502_saas_auth_failed(api, seeded):
    answer = api.post("/api/roots", json={"auth": auth_of(seeded, password_secret="nope-nope-1")})
    # Kinto answers the bucket listing itself with 401: the top-level request failed, so fatal
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "SAAS_AUTH_FAILED"
    assert "nope-nope-1" not in answer.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"ctx": {"kind": "root@other", "type": "bucket", "values": {}}},
            "belongs to module 'other'",
        ),
        ({"ctx": {"kind": "task@kinto", "type": "bucket", "values": {}}}, "has role 'task'"),
        ({"ctx": {"kind": "root@kinto", "type": "buckt", "values": {}}}, "did you mean 'bucket'"),
        (
            {"ctx": {"kind": "resource@kinto", "type": "collection", "values": {}}},
            "lacks the value(s): bucket",
        ),
        ({"ctx": "root@kinto"}, "request body /ctx: expected a mapping"),
        ({}, "missing required key 'ctx'"),
        (
            {
                "ctx": {"kind": "root@kinto", "type": "bucket", "values": {"bucket": "b000"}},
                "paginationCtx": {"kind": "pagination@kinto", "type": "bucket", "values": {}},
            },
            "paginationCtx names type 'bucket'",
        ),
    ],
)
def test_a_bad_ctx_is_400_naming_the_problem(api, seeded, body, message):
    answer = api.post("/api/resources", json={"auth": auth_of(seeded)} | body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] in {"BAD_CTX", "BAD_REQUEST"}
    assert message in error["description"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
def test_a_malformed_body_is_400(api, raw):
    answer = api.post("/api/roots", content=raw)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BAD_REQUEST"


def test_unknown_endpoints_are_404_in_the_error_shape(api):
    answer = api.post("/api/nope", json={})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


def test_config_backup_offers_exclusions_from_the_type_tree_and_the_options_form(api, seeded):
    root = list_all(api, "/api/roots", {"auth": auth_of(seeded)})[0]
    body = api.post("/api/config/backup", json={"auth": auth_of(seeded), "ctx": root["ctx"]}).json()
    assert [rule["id"] for rule in body["possibleExcludes"]] == ["collection", "group"]
    assert body["possibleExcludes"][0]["ctx"]["values"] == {"bucket": root["id"]}
    assert body["possibleOptions"]["payload"] == {
        "with_permissions": "permissions",
        "with_attachments": "attachments",
    }


def test_restore_scenarios_filter_by_type_and_config_gives_their_options(api, seeded):
    ctx = {"kind": "root@kinto", "type": "bucket", "values": {"bucket": "b000"}}
    every = api.post("/api/scenarios/restore", json={"ctx": ctx, "types": ["bucket"]}).json()
    assert [s["type"] for s in every["restoreScenarios"]] == ["IN_PLACE", "AS_NEW", "OTHER_SOURCE"]
    some = api.post("/api/scenarios/restore", json={"ctx": ctx, "types": ["collection"]}).json()
    assert [s["type"] for s in some["restoreScenarios"]] == ["IN_PLACE", "OTHER_SOURCE"]
    own = api.post("/api/config/restore", json={"ctx": ctx, "scenario": "AS_NEW"}).json()
    assert own["possibleOptions"]["payload"] == {"new_bucket": "name"}
    shared = api.post("/api/config/restore", json={"ctx": ctx, "scenario": "IN_PLACE"}).json()
    assert shared["possibleOptions"]["payload"] == {"conflict": "conflict"}
    unknown = api.post("/api/config/restore", json={"ctx": ctx, "scenario": "IN_PLACEE"})
    assert unknown.status_code == 400
    assert "did you mean 'IN_PLACE'" in unknown.json()["error"]["description"]


def test_a_selector_missing_from_the_answer_is_a_non_fatal_error_and_the_rest_is_listed(
    seeded, tmp_path
):
    raw = yaml.safe_load((KINTO_MODULE / "module.yaml").read_text())
    raw["resources"]["group"]["list"]["records"] = "items"
    app = create_app(build(raw, tmp_path), Settings(pages_per_call=50))
    root_ctx = {"kind": "root@kinto", "type": "bucket", "values": {"bucket": "b001"}}
    with TestClient(app) as client:
        body = client.post("/api/resources", json={"auth": auth_of(seeded), "ctx": root_ctx}).json()
    assert len(body["resources"]) == COLLECTIONS
    assert len(body["errors"]) == 1
    assert "GET /buckets/{{ ctx.bucket | urlquote }}/groups" in body["errors"][0]["description"]
    assert "'items'" in body["errors"][0]["description"]


def test_the_api_token_guards_every_api_call_but_not_healthz():
    with client_for(api_token="engine-token-1") as client:
        assert client.get("/api/version").status_code == 401
        assert (
            client.get("/api/version", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert (
            client.get(
                "/api/version", headers={"Authorization": "Bearer engine-token-1"}
            ).status_code
            == 200
        )
        assert client.get("/healthz").status_code == 200


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`engine serve modules/kinto` as a real process on a free port; yields its URL and log."""
    port = servers.free_port()
    log_path = tmp_path / "engine.log"
    env = os.environ | {
        "PORT": str(port),
        "ENGINE_PAGES_PER_CALL": "3",
        "ENGINE_LOG_LEVEL": "DEBUG",
    }
    argv = [sys.executable, "-m", "engine", "serve", str(KINTO_MODULE)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = servers.Server("engine", process, f"http://127.0.0.1:{port}", log_path)
    try:
        servers.wait_until_up(server, f"{server.url}/healthz")
        yield server.url, log_path
    finally:
        server.stop()


def test_the_discovery_flow_over_real_http_and_no_secret_in_the_logs(served, seeded):
    url, log_path = served
    good = auth_of(seeded)
    wrong = auth_of(seeded, password_secret="Sup3r-Secret-Wrong")
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        assert http.get("/api/version").json()["id"] == "kinto"
        assert http.post("/api/schemas/auth/validate", json={"auth": good}).json()["valid"] is True
        assert (
            http.post("/api/schemas/auth/validate", json={"auth": wrong}).json()["valid"] is False
        )
        assert http.post("/api/roots", json={"auth": wrong}).status_code == 502
        roots, pagination = [], None
        while True:
            page = http.post("/api/roots", json={"auth": good, "paginationCtx": pagination}).json()
            roots += page["resources"]
            pagination = page.get("paginationCtx")
            if pagination is None:
                break
        assert len(roots) == BUCKETS
        children = http.post("/api/resources", json={"auth": good, "ctx": roots[0]["ctx"]}).json()
        assert children["resources"] and "paginationCtx" in children
        config = http.post("/api/config/backup", json={"auth": good, "ctx": roots[0]["ctx"]}).json()
        assert config["possibleExcludes"]
    logs = log_path.read_text()
    assert "api/roots" in logs or "saas" in logs  # the flow was logged at DEBUG
    for secret in ("Sup3r-Secret-Wrong", seeded.admin[1]):
        assert secret not in logs

"""`engine init --from-openapi`: drafts from Swagger 2.0 and OpenAPI 3.1 fixtures, from GitHub's
published description (3.0.3, @octokit/openapi) and from the real test Kinto's own description
(/v1/__api__), which, with only the auth settings given, lists the real buckets and their
collections (engine/authoring/openapi.py, listings.py, paging.py, signin.py, draft.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.cli import main
from engine.language.loader import load_module, validate
from engine.settings import Settings
from scripts import descriptions, servers
from tests import taskflow

FIXTURES = Path(__file__).parent / "openapi"


def draft(source: str | Path, folder: Path) -> tuple[int, str, str]:
    """Exit code, output and module.yaml of a draft of source into folder."""
    result = CliRunner().invoke(main, ["init", str(folder), "--from-openapi", str(source)])
    written = folder / "module.yaml"
    return result.exit_code, result.output, written.read_text() if written.exists() else ""


def todos(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("# TODO:")]


def test_a_swagger_2_draft_validates_with_its_tree_pagination_and_todos(tmp_path: Path):
    code, output, text = draft(FIXTURES / "swagger2.yaml", tmp_path / "tasks")
    assert code == 0, output
    problems = validate([tmp_path / "tasks"])
    assert [p.message[:30] for p in problems] == ["a POST write is at-least-once:"]
    assert 'default: "https://tasks.example.com/api"' in text
    # basic and a query key as a dropdown of alternatives; the implicit flow left as a TODO
    assert "kind: basic" in text and "in: query\n      name: api_key" in text
    assert "pageParam: page\n        sizeParam: per_page" in text
    assert "parent: project" in text
    assert 'path: "/projects/{{ ctx.project | urlquote }}/tasks"' in text
    assert "kind: nextUrl\n        url: next" in text
    assert "records: results" in text
    assert 'filter: "{{ item.key == ctx.task }}"' in text
    assert todos(text) == [
        "# TODO: security scheme browser: the oauth2 kind has no drafted credential",
        "# TODO: GET /archive/{year}/projects (listArchived): no listing gives its path "
        "parameters (year)",
    ]


def test_an_openapi_3_1_draft_resolves_refs_all_of_and_server_variables(tmp_path: Path):
    code, output, text = draft(FIXTURES / "openapi31.json", tmp_path / "teams")
    assert code == 0, output
    assert validate([tmp_path / "teams"]) == []
    assert 'default: "https://eu.teams.example.com/v2"' in text
    assert "kind: bearer" in text and "kind: oauth2ClientCredentials" in text
    assert 'default: "https://login.teams.example.com/token"' in text
    assert "kind: cursor\n        cursor: meta.next_cursor\n        param: cursor" in text
    assert "records: teams" in text  # the array of an allOf
    assert 'id: "{{ item.uuid }}"\n      name: "{{ item.display_name }}"' in text
    assert "kind: link" in text and "method: PATCH" in text
    assert todos(text) == [
        "# TODO: security scheme cookie: an API key in a cookie is not drafted",
        "# TODO: GET /teams/{teamId}/audit (audit): its answer's $ref other.json#/Audit does "
        "not resolve",
        "# TODO: GET /teams (listTeams): no PUT, POST or PATCH writes it back: no restore",
    ]


def test_the_draft_keeps_its_guess_comments_above_the_keys(tmp_path: Path):
    _, _, text = draft(FIXTURES / "openapi31.json", tmp_path / "teams")
    lines = text.splitlines()
    guess = lines.index("      # guess: the cursor parameter takes the answer's next_cursor")
    assert lines[guess + 1] == "      pagination:"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ("title: [unclosed", "invalid YAML"),
        ('{"openapi": "4.0"}', "not an OpenAPI 3.x or Swagger 2.0 document"),
        ("- a list", "not an OpenAPI 3.x or Swagger 2.0 document"),
    ],
)
def test_a_document_that_is_not_a_description_is_exit_2_and_writes_nothing(
    tmp_path: Path, content: str, message: str
):
    source = tmp_path / "api.txt"
    source.write_text(content)
    code, output, _ = draft(source, tmp_path / "m")
    assert code == 2
    assert output.startswith("Error: ") and message in output
    assert not (tmp_path / "m").exists()


def test_an_unreachable_url_is_exit_1_naming_the_description(tmp_path: Path):
    url = f"http://127.0.0.1:{servers.free_port()}/openapi.json"
    code, output, _ = draft(url, tmp_path / "m")
    assert code == 1
    assert "Error: the API description: cannot reach" in output


def test_github_s_published_description_drafts_a_module_that_validates(tmp_path: Path):
    source = descriptions.github()
    code, output, text = draft(source, tmp_path / "github")
    assert code == 0, output
    problems = validate([tmp_path / "github"])
    assert [p for p in problems if not p.warning] == []
    assert 'default: "https://api.github.com"' in text
    assert "  gist:\n" in text and "kind: link" in text  # GET /gists, Link-header pages
    assert len(load_module(tmp_path / "github").types) > 20


# --------------------------------------------------------------------------- the real Kinto


@pytest.fixture
def kinto_data(kinto: servers.KintoServer) -> dict[str, list[str]]:
    """Two fresh buckets in the test Kinto, with collections."""
    tag = uuid.uuid4().hex[:8]
    made = {f"d{tag}a": ["c1", "c2", "c3"], f"d{tag}b": ["only"]}
    with taskflow.kinto_client(kinto.url, kinto.admin) as client:
        for bucket, collections in made.items():
            client.put(f"/buckets/{bucket}", json={"data": {}}).raise_for_status()
            for collection in collections:
                answer = client.put(f"/buckets/{bucket}/collections/{collection}", json={})
                answer.raise_for_status()
    return made


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_kinto_draft_lists_the_real_buckets_and_their_collections(
    kinto: servers.KintoServer, kinto_data: dict[str, list[str]], tmp_path: Path
):
    folder = tmp_path / "kinto"
    code, output, text = draft(f"{kinto.url}/__api__", folder)
    assert code == 0, output
    assert validate([folder]) == []
    assert todos(text) == []  # what a person still writes for Kinto: see docs/authoring.md
    assert text.count('If-None-Match: "*"') == 5  # each PUT conditional: account to record
    auth = taskflow.auth_of(kinto)  # only the auth settings: server_url, username, password
    app = create_app(load_module(folder), Settings(storage_allow=(str(tmp_path),)))
    wrong = {"settings": auth["settings"] | {"password_secret": "not-the-password"}}
    with TestClient(app) as client:
        assert post(client, "/api/schemas/auth/validate", {"auth": auth})["valid"] is True
        assert post(client, "/api/schemas/auth/validate", {"auth": wrong})["valid"] is False
        roots = taskflow.root_ctxs(client, auth)
        for bucket, collections in kinto_data.items():
            assert roots[bucket]["type"] == "bucket"
            below = post(client, "/api/resources", {"auth": auth, "ctx": roots[bucket]})
            assert sorted(r["name"] for r in below["resources"]) == sorted(collections)
            assert {r["ctx"]["type"] for r in below["resources"]} == {"collection"}


def test_the_kinto_draft_backs_up_a_bucket_and_restores_a_lost_collection(
    kinto: servers.KintoServer, kinto_data: dict[str, list[str]], tmp_path: Path
):
    folder = tmp_path / "kinto"
    draft(f"{kinto.url}/__api__", folder)
    auth = taskflow.auth_of(kinto)
    bucket = next(iter(kinto_data))
    app = create_app(load_module(folder), Settings(storage_allow=(str(tmp_path),)))
    with TestClient(app) as client, taskflow.kinto_client(kinto.url, kinto.admin) as kinto_api:
        ctx = taskflow.root_ctxs(client, auth)[bucket]
        start = {"auth": auth, "storage": {"url": str(tmp_path / "backup")}, "ctx": ctx}
        done = taskflow.run_task(client, "/api/backup", start | {"taskUuid": taskflow.new_uuid()})
        taskflow.assert_done(done)
        assert (tmp_path / "backup" / "manifest.json").is_file()
        kinto_api.delete(f"/buckets/{bucket}/collections/c2").raise_for_status()
        done = taskflow.run_task(client, "/api/restore", start | {"taskUuid": taskflow.new_uuid()})
        taskflow.assert_done(done)
        listed = kinto_api.get(f"/buckets/{bucket}/collections").json()["data"]
        assert sorted(c["id"] for c in listed) == ["c1", "c2", "c3"]

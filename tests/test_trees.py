"""Recursive resource types end to end: a module whose one type nests in itself (tests/folders,
``parent: [top, entry]``) against a real nested-folder server (tests/folder_server.py):
discovery at depth, backups that store every file of a deep tree or fail loudly (maxDepth, a
loop), per-item hasSubresources, and restores that create folders before their files."""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.cli import main
from engine.language.loader import build, load_module, validate
from engine.settings import Settings
from tests.folder_server import FolderServer, Node, chain, serve

FOLDERS = Path(__file__).resolve().parent / "folders"
DEEP = 10
POLL_SECONDS = 0.02

Api = Callable[..., TestClient]


@pytest.fixture
def folders() -> Iterator[FolderServer]:
    """A server holding a chain 10 folders deep (a file in each) and a flat top folder."""
    tree = chain(DEEP) | {"/x": Node(), "/x/a.txt": Node("a\n"), "/x/b.txt": Node("b\n")}
    with serve(tree) as server:
        yield server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """Engines serving tests/folders (or a changed copy of its definition) on tmp_path."""
    with ExitStack() as stack:

        def make(change: Callable[[dict[str, Any]], None] | None = None) -> TestClient:
            raw = yaml.safe_load((FOLDERS / "module.yaml").read_text())
            if change is not None:
                change(raw)
            definition = build(raw, FOLDERS) if change else load_module(FOLDERS)
            app = create_app(definition, Settings(storage_allow=(str(tmp_path),)))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield make


def auth(server: FolderServer) -> dict[str, Any]:
    return {"settings": {"url": server.url}}


def call(client: TestClient, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    answer = client.post(path, json=body)
    return answer.status_code, answer.json()


def run(client: TestClient, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Starts a task and polls it until DONE or an error answer."""
    status, answer = call(client, path, body)
    deadline = time.monotonic() + 60
    while status == 200 and answer["status"] != "DONE":
        assert time.monotonic() < deadline, answer
        time.sleep(POLL_SECONDS)
        poll = {k: body[k] for k in ("auth", "taskUuid", "storage")} | {"ctx": answer["ctx"]}
        status, answer = call(client, "/api/status", poll)
    return status, answer


def backup(client: TestClient, server: FolderServer, place: Path, ctx: dict[str, Any]) -> Any:
    body = {"auth": auth(server), "taskUuid": str(uuid.uuid4()), "storage": {"url": str(place)}}
    return run(client, "/api/backup", body | {"ctx": ctx})


def restore(client: TestClient, server: FolderServer, place: Path, ctx: dict[str, Any]) -> Any:
    body = {"auth": auth(server), "taskUuid": str(uuid.uuid4()), "storage": {"url": str(place)}}
    return run(client, "/api/restore", body | {"ctx": ctx})


def roots(client: TestClient, server: FolderServer) -> dict[str, dict[str, Any]]:
    status, answer = call(client, "/api/roots", {"auth": auth(server)})
    assert status == 200, answer
    return {each["name"]: each for each in answer["resources"]}


def below(client: TestClient, server: FolderServer, ctx: dict[str, Any]) -> dict[str, Any]:
    status, answer = call(client, "/api/resources", {"auth": auth(server), "ctx": ctx})
    assert status == 200, answer
    return {each["name"]: each for each in answer["resources"]}


def descend(client: TestClient, server: FolderServer, *names: str) -> dict[str, Any]:
    """The resource at the end of a path of names, listed level by level from the roots."""
    found = roots(client, server)[names[0]]
    for name in names[1:]:
        found = below(client, server, found["ctx"])[name]
    return found


def manifest(place: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((place / "manifest.json").read_text())
    return data


def stored_files(document: dict[str, Any]) -> set[str]:
    return {
        entry["path"].removeprefix("tree").removesuffix(".zst")
        for entry in document["objects"]
        if entry["step"] == "file"
    }


# validation -------------------------------------------------------------------------------


def test_validate_accepts_a_type_that_names_itself_among_its_parents():
    assert [str(problem) for problem in validate([FOLDERS])] == []
    kinds = load_module(FOLDERS).types
    assert kinds["entry"].parents == ("top", "entry")
    assert kinds["entry"].recursive and not kinds["top"].recursive
    assert kinds["entry"].children == ("entry",) and kinds["top"].children == ("entry",)
    assert (kinds["entry"].depth, kinds["entry"].max_depth) == (1, 64)
    assert kinds["entry"].ctx_keys == ("path", "folder")


# discovery --------------------------------------------------------------------------------


def test_roots_and_resources_list_folders_at_any_depth_with_their_depth_in_the_ctx(
    api: Api, folders: FolderServer
):
    client = api()
    assert sorted(roots(client, folders)) == ["d1", "x"]
    names = ["d1", *[f"d{n}" for n in range(2, DEEP + 1)]]
    deepest = descend(client, folders, *names)
    assert deepest["ctx"]["values"] == {"path": "/" + "/".join(names), "folder": True}
    assert deepest["ctx"]["depth"] == DEEP - 1
    inside = below(client, folders, deepest["ctx"])
    assert inside[f"f{DEEP}.txt"]["hasSubresources"] is False
    assert inside[f"f{DEEP}.txt"]["ctx"]["depth"] == DEEP
    assert descend(client, folders, "d1", "d2")["ctx"].get("depth") is None  # its smallest


def test_a_listing_past_a_types_max_depth_is_an_error_not_a_deeper_level(
    api: Api, folders: FolderServer
):
    client = api(lambda raw: raw["resources"]["entry"].update(maxDepth=2))
    third = descend(client, folders, "d1", "d2", "d3")
    status, answer = call(client, "/api/resources", {"auth": auth(folders), "ctx": third["ctx"]})
    assert status == 200 and answer["resources"] == []
    assert "past maxDepth 2" in answer["errors"][0]["description"]


# backup -----------------------------------------------------------------------------------


def test_a_backup_of_a_tree_ten_levels_deep_stores_every_file_and_records_the_tree(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api()
    place = tmp_path / "deep"
    status, answer = backup(client, folders, place, roots(client, folders)["d1"]["ctx"])
    assert (status, answer["status"], answer["errors"]) == (200, "DONE", [])
    document = manifest(place)
    assert document["format"] == 2
    assert stored_files(document) == {p for p in folders.files() if p.startswith("/d1")}
    rows = {row["id"]: row for row in document["resources"]}
    deepest = max(rows.values(), key=lambda row: row["depth"])
    assert (deepest["type"], deepest["name"], deepest["depth"]) == ("entry", f"f{DEEP}.txt", DEEP)
    chain_names = []
    row: dict[str, Any] | None = deepest
    while row is not None:
        chain_names.append(row["name"])
        row = rows.get(row["parent"]) if row["parent"] is not None else None
    assert chain_names[-1] == "/d1"  # the requested root, named by its ctx values
    assert chain_names[:-1] == [f"f{DEEP}.txt", *[f"d{n}" for n in range(DEEP, 1, -1)]]
    assert all(entry["resource"] in rows for entry in document["objects"])


def test_a_file_item_with_has_subresources_false_gets_no_child_listing(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api()
    status, answer = backup(client, folders, tmp_path / "b", roots(client, folders)["x"]["ctx"])
    assert (status, answer["status"]) == (200, "DONE"), answer
    listed = [request.query["path"] for request in folders.received("/entries")]
    assert "/x" in listed
    assert not [path for path in listed if path.endswith(".txt")]


def test_a_tree_deeper_than_max_depth_fails_the_backup_naming_the_resource(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api(lambda raw: raw["resources"]["entry"].update(maxDepth=3))
    place = tmp_path / "shallow"
    status, answer = backup(client, folders, place, roots(client, folders)["d1"]["ctx"])
    assert status != 200, answer
    errors = answer["error"]["payload"]["errors"]
    named = [e for e in errors if "past maxDepth 3" in e["description"]]
    assert named and "entry 'd5'" in named[0]["description"]
    assert not (place / "manifest.json").exists()


def test_a_folder_listing_itself_among_its_children_fails_the_backup_naming_it(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api()
    folders.loop_at = "/d1/d2/d3"
    place = tmp_path / "loop"
    status, answer = backup(client, folders, place, roots(client, folders)["d1"]["ctx"])
    assert status != 200, answer
    errors = answer["error"]["payload"]["errors"]
    loops = [e for e in errors if "(a loop)" in e["description"]]
    assert (
        len(loops) == 1 and "entry 'd3' repeats its ancestor at depth 2" in loops[0]["description"]
    )
    assert not (place / "manifest.json").exists()
    assert [r.query["path"] for r in folders.received("/entries")].count("/d1/d2/d3") == 1


def test_an_optional_step_failing_leaves_done_with_the_resource_marked_incomplete(
    api: Api, folders: FolderServer, tmp_path: Path
):
    def optional_files(raw: dict[str, Any]) -> None:
        step = raw["resources"]["entry"]["backup"][1]
        step["required"] = False
        step["request"]["path"] = "/nowhere"

    client = api(optional_files)
    place = tmp_path / "partial"
    status, answer = backup(client, folders, place, roots(client, folders)["x"]["ctx"])
    assert (status, answer["status"]) == (200, "DONE"), answer
    assert len(answer["errors"]) == 2
    incomplete = {
        row["name"]: row["incomplete"]
        for row in manifest(place)["resources"]
        if "incomplete" in row
    }
    assert sorted(incomplete) == ["a.txt", "b.txt"]
    assert incomplete["a.txt"][0]["code"] == "SAAS_ERROR"


# restore ----------------------------------------------------------------------------------


def test_restore_into_an_emptied_server_creates_folders_before_their_files_at_every_depth(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api()
    place = tmp_path / "full"
    ctx = roots(client, folders)["d1"]["ctx"]
    assert backup(client, folders, place, ctx)[1]["status"] == "DONE"
    before = (folders.files(), folders.folders())
    folders.empty()
    folders.clear()
    status, answer = restore(client, folders, place, ctx)
    assert (status, answer["status"], answer["errors"]) == (200, "DONE", []), answer
    assert (folders.files(), folders.folders()) == (
        {p: c for p, c in before[0].items() if p.startswith("/d1")},
        {p for p in before[1] if p.startswith("/d1")},
    )
    assert all(request.method == "PUT" for request in folders.received("/file"))


def test_restore_of_one_nested_folder_restores_exactly_its_subtree(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api()
    place = tmp_path / "one"
    assert backup(client, folders, place, roots(client, folders)["d1"]["ctx"])[1]["status"] == (
        "DONE"
    )
    fifth = descend(client, folders, "d1", "d2", "d3", "d4", "d5")
    kept = {p: n for p, n in folders.tree.items() if not p.startswith("/d1/d2/d3/d4/d5")}
    folders.tree = kept
    folders.clear()
    status, answer = restore(client, folders, place, fifth["ctx"])
    assert (status, answer["status"], answer["errors"]) == (200, "DONE", []), answer
    written = [r.query["path"] for r in folders.requests if r.method == "PUT"]
    subtree = [p for p in chain(DEEP) if p.startswith("/d1/d2/d3/d4/d5")]
    assert sorted(written) == sorted(subtree)
    assert written.index("/d1/d2/d3/d4/d5") == 0


def remembering(raw: dict[str, Any]) -> None:
    """Each folder's write remembers the path the server answered; every write below it sends
    its nearest folder's remembered path as X-Parent."""
    for name in ("top", "entry"):
        for step in raw["resources"][name]["restore"]:
            step["request"]["headers"] = {"X-Parent": "{{ target.parent | default('none') }}"}
            if step["from"] == "folder":
                step["remember"] = {"parent": "{{ answer.path }}"}


def test_remember_passes_each_folders_answer_to_the_writes_below_it_at_every_depth(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api(remembering)
    place = tmp_path / "remembered"
    ctx = roots(client, folders)["d1"]["ctx"]
    assert backup(client, folders, place, ctx)[1]["status"] == "DONE"
    folders.empty()
    folders.clear()
    status, answer = restore(client, folders, place, ctx)
    assert (status, answer["status"], answer["errors"]) == (200, "DONE", []), answer
    sent = {r.query["path"]: r.headers["x-parent"] for r in folders.requests if r.method == "PUT"}
    assert len(sent) == 2 * DEEP
    assert sent == {path: posixpath.dirname(path) if path != "/d1" else "none" for path in sent}


def flat(raw: dict[str, Any]) -> None:
    """The module as one written before recursive types: files one level below the top
    folders, each with a ctx key of its own (so ctx values alone tell the tree)."""
    entry = raw["resources"]["entry"]
    text = json.dumps(entry).replace("ctx.path", "ctx.file").replace("target.path", "target.file")
    entry.clear()
    entry.update(json.loads(text))
    entry["parent"] = "top"
    entry["list"]["request"]["query"]["path"] = "{{ ctx.path }}"
    entry["ctx"] = {"file": "{{ item.path }}", "folder": "{{ item.folder }}"}


def test_a_format_one_manifest_still_restores(api: Api, folders: FolderServer, tmp_path: Path):
    client = api(flat)
    place = tmp_path / "old"
    ctx = roots(client, folders)["x"]["ctx"]
    assert backup(client, folders, place, ctx)[1]["status"] == "DONE"
    document = manifest(place)
    document["format"] = 1
    del document["resources"]
    for entry in document["objects"]:
        del entry["resource"]
    (place / "manifest.json").write_text(json.dumps(document))
    folders.empty()
    status, answer = restore(client, folders, place, ctx)
    assert (status, answer["status"], answer["errors"]) == (200, "DONE", []), answer
    assert folders.files() == {"/x/a.txt": "a\n", "/x/b.txt": "b\n"}


def test_engine_backups_show_draws_the_recorded_tree_at_every_depth(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api()
    place = tmp_path / "shown"
    assert backup(client, folders, place, roots(client, folders)["d1"]["ctx"])[1]["status"] == (
        "DONE"
    )
    env = {"ENGINE_STORAGE_ALLOW": str(tmp_path)}
    result = CliRunner().invoke(main, ["backups", "show", str(place)], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    deepest = next(line for line in lines if f"entry f{DEEP}.txt:" in line)
    assert deepest.startswith("  " * DEEP + "entry")  # below the root and nine folders
    shown = CliRunner().invoke(main, ["backups", "du", str(place), "--json"], env=env)
    assert json.loads(shown.output)["roots"][0]["objects"] == 2 * DEEP


def test_a_backup_of_a_nested_folder_starts_at_the_depth_its_ctx_states(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api(lambda raw: raw["resources"]["entry"].update(maxDepth=6))
    fifth = descend(client, folders, "d1", "d2", "d3", "d4", "d5")
    assert fifth["ctx"]["depth"] == 4
    status, answer = backup(client, folders, tmp_path / "nested", fifth["ctx"])
    assert status != 200, answer  # d7 is at depth 6, what it holds at 7: past maxDepth
    found = sorted(error["description"] for error in answer["error"]["payload"]["errors"])
    assert [text.split(": not walked")[0] for text in found] == [
        "entry 'd8' is at depth 7, past maxDepth 6",
        "entry 'f7.txt' is at depth 7, past maxDepth 6",
    ]
    status, answer = backup(client, folders, tmp_path / "bad", fifth["ctx"] | {"depth": 0})
    assert (status, answer["error"]["code"]) == (400, "BAD_CTX")  # entry is never a root


def exportable(raw: dict[str, Any]) -> None:
    raw["capabilities"]["features"] = ["EXPORT"]
    raw["export"] = {"description": "the folders and files, plain"}


def test_an_export_copies_every_file_at_every_depth_and_keeps_the_resources_table(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api(exportable)
    place, copy = tmp_path / "source", tmp_path / "copy"
    ctx = roots(client, folders)["d1"]["ctx"]
    assert backup(client, folders, place, ctx)[1]["status"] == "DONE"
    body = {"auth": auth(folders), "taskUuid": str(uuid.uuid4()), "storage": {"url": str(place)}}
    status, answer = run(
        client, "/api/export", body | {"ctx": ctx, "destination": {"url": str(copy)}}
    )
    assert (status, answer["status"]) == (200, "DONE"), answer
    copied = manifest(copy)
    assert copied["resources"] == manifest(place)["resources"]
    for path, content in folders.files().items():
        if path.startswith("/d1"):
            assert (copy / f"tree{path}").read_text() == content
    assert all("resource" in entry for entry in copied["objects"])


def test_excluding_the_recursive_type_leaves_out_every_level_below_the_roots(
    api: Api, folders: FolderServer, tmp_path: Path
):
    client = api()
    ctx = roots(client, folders)["d1"]["ctx"]
    status, config = call(client, "/api/config/backup", {"auth": auth(folders), "ctx": ctx})
    assert status == 200, config
    [rule] = config["possibleExcludes"]  # the recursive type once, not forever
    assert (rule["id"], rule.get("subResources", [])) == ("entry", [])
    place = tmp_path / "excluded"
    folders.clear()
    body = {"auth": auth(folders), "taskUuid": str(uuid.uuid4()), "storage": {"url": str(place)}}
    status, answer = run(client, "/api/backup", body | {"ctx": ctx, "excludes": [rule]})
    assert (status, answer["status"]) == (200, "DONE"), answer
    assert [entry["path"] for entry in manifest(place)["objects"]] == ["tree/d1/_folder.json.zst"]
    assert [r.query["path"] for r in folders.received("/entries")] == []

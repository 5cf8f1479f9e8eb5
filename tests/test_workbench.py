"""engine dev's workbench (engine/workbench): the live definition (reload on change, the last
good module kept serving through a broken save), the module API beside the page, the command."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from engine.cli import main
from engine.settings import Settings
from engine.workbench.app import create_workbench
from engine.workbench.live import attempt, stamp
from tests import taskflow

BROKEN_KEY = ("  vendor: Mozilla\n", "  vendor: Mozilla\n  colour: blue\n")
WITHIN = 1.0  # the issue: the page updates within a second of a save


def copy_module(target: Path) -> Path:
    """A copy of modules/kinto to edit."""
    return Path(shutil.copytree(taskflow.KINTO_MODULE, target / "kinto"))


def edit(folder: Path, old: str, new: str) -> None:
    file = folder / "module.yaml"
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new, 1))


@pytest.fixture
def workbench(tmp_path: Path) -> Iterator[tuple[Path, TestClient]]:
    folder = copy_module(tmp_path)
    with TestClient(create_workbench(folder, Settings.from_env(), poll=0.05)) as client:
        yield folder, client


def state_after(client: TestClient, generation: int, seconds: float = WITHIN) -> dict[str, Any]:
    """The workbench's state once it has read the module again (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state: dict[str, Any] = client.get("/dev/state").json()
        if state["generation"] > generation:
            return state
        time.sleep(0.02)
    raise AssertionError(f"the workbench did not reload within {seconds} s")


def test_a_good_module_is_served_beside_the_page_with_no_problems(
    workbench: tuple[Path, TestClient],
) -> None:
    _, client = workbench
    state = client.get("/dev/state").json()
    assert state["problems"] == [] and not state["broken"]
    assert state["serving"] == {"id": "kinto", "name": "Kinto", "version": "1.0.0"}
    assert client.get("/api/version").json()["id"] == "kinto"
    assert client.get("/api/schemas/auth").json()["schemaType"] == "hycu-layout"
    page = client.get("/")
    assert "listening on 127.0.0.1" in page.text and "Kinto 1.0.0" in page.text
    assert client.get("/static/workbench.js").status_code == 200


def test_a_broken_save_shows_located_errors_and_the_last_good_module_keeps_serving(
    workbench: tuple[Path, TestClient],
) -> None:
    folder, client = workbench
    before = client.get("/dev/state").json()["generation"]
    edit(folder, *BROKEN_KEY)
    state = state_after(client, before)
    assert state["broken"] and state["serving"]["id"] == "kinto"
    [problem] = [p for p in state["problems"] if not p["warning"]]
    assert (problem["file"], problem["line"], problem["pointer"]) == (
        "module.yaml",
        9,
        "/module/colour",
    )
    assert "colour" in problem["message"]
    assert client.get("/api/version").json()["id"] == "kinto"
    edit(folder, BROKEN_KEY[1], BROKEN_KEY[0])
    fixed = state_after(client, state["generation"])
    assert not fixed["broken"] and fixed["problems"] == []


def test_a_good_save_is_served_at_once(workbench: tuple[Path, TestClient]) -> None:
    folder, client = workbench
    before = client.get("/dev/state").json()["generation"]
    edit(folder, "  version: 1.0.0\n", "  version: 1.0.1\n")
    assert state_after(client, before)["serving"]["version"] == "1.0.1"
    assert client.get("/api/version").json()["version"] == "1.0.1"


def test_a_module_broken_from_the_start_shows_its_problems_and_serves_no_api(
    tmp_path: Path,
) -> None:
    folder = copy_module(tmp_path)
    edit(folder, "module:\n", "module: [\n")
    with TestClient(create_workbench(folder, Settings.from_env(), poll=0.05)) as client:
        state = client.get("/dev/state").json()
        assert state["broken"] and state["serving"] is None
        assert state["problems"][0]["file"] == "module.yaml"
        answer = client.get("/api/version")
        assert answer.status_code == 503
        assert "fix the problems" in answer.json()["error"]["description"]


def test_a_hooks_file_that_does_not_import_is_a_located_problem(tmp_path: Path) -> None:
    folder = copy_module(tmp_path)
    edit(folder, "module:\n", "hooks:\n  file: hooks.py\nmodule:\n")
    (folder / "hooks.py").write_text("import no_such_module_here\n")
    definition, problems = attempt(folder)
    assert definition is None
    [problem] = [p for p in problems if not p.warning]
    assert (problem.file, problem.line, problem.pointer) == ("module.yaml", 4, "/hooks/file")
    assert "no_such_module_here" in problem.message


def test_the_stamp_changes_with_any_watched_file(tmp_path: Path) -> None:
    folder = copy_module(tmp_path)
    first = stamp(folder)
    (folder / "hooks.py").write_text("X = 1\n")
    assert stamp(folder) != first
    second = stamp(folder)
    (folder / "notes.txt").write_text("not watched")
    assert stamp(folder) == second


@pytest.mark.parametrize("word", ["127.0.0.1", "reloaded"])
def test_engine_dev_says_it_listens_on_the_local_address_only(word: str) -> None:
    answer = CliRunner().invoke(main, ["dev", "--help"])
    assert answer.exit_code == 0 and word in answer.output


def test_engine_dev_refuses_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dev", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.output

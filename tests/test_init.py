"""`engine init DIR`: a new module from the template, for every sign-in kind with and without
hooks, that validates at once; it never overwrites a module and asks nothing without a
terminal (engine/authoring/scaffold.py, commands.py)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.authoring import signin
from engine.cli import main
from engine.language.loader import validate


def init(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["init", *map(str, args)])
    return result.exit_code, result.output


@pytest.mark.parametrize("hooks", [False, True], ids=["plain", "hooks"])
@pytest.mark.parametrize("auth", sorted(signin.KINDS))
def test_every_template_validates_with_no_problem_at_all(tmp_path: Path, auth: str, hooks: bool):
    folder = tmp_path / "acme"
    code, output = init(folder, "--auth", auth, *(["--hooks"] if hooks else []))
    assert code == 0, output
    assert validate([folder]) == []
    assert "engine validate: 0 error(s), 0 warning(s); 0 TODO line(s)" in output
    text = (folder / "module.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "docs/language.md" in text
    assert ("transform: tidy" in text) is hooks
    assert (folder / "hooks.py").exists() is hooks
    assert "## Tested against" in (folder / "README.md").read_text()


def test_the_schema_line_names_the_shipped_schema_relative_to_the_folder(tmp_path: Path):
    folder = tmp_path / "deep" / "er"
    init(folder)
    first = (folder / "module.yaml").read_text().splitlines()[0]
    relative = first.split("$schema=")[1]
    assert (folder / relative).resolve().name == "module.schema.json"
    assert (folder / relative).resolve().is_file()


def test_the_id_comes_from_the_folder_and_the_options_win(tmp_path: Path):
    code, _ = init(tmp_path / "My Module_2", "--name", "Acme Cloud")
    text = (tmp_path / "My Module_2" / "module.yaml").read_text()
    assert code == 0
    assert '  id: my-module-2\n  name: "Acme Cloud"\n' in text
    init(tmp_path / "9lives", "--id", "cats")
    assert "  id: cats\n" in (tmp_path / "9lives" / "module.yaml").read_text()


@pytest.mark.parametrize("existing", ["module.yaml", "README.md"])
def test_init_refuses_to_overwrite_a_module_s_file_with_exit_code_3(tmp_path: Path, existing: str):
    (tmp_path / existing).write_text("mine\n")
    code, output = init(tmp_path)
    assert code == 3
    assert f"Error: {tmp_path / existing} exists: engine init never overwrites" in output
    assert (tmp_path / existing).read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_hooks_py_is_refused_too_when_hooks_are_asked(tmp_path: Path):
    (tmp_path / "hooks.py").write_text("# mine\n")
    assert init(tmp_path, "--hooks")[0] == 3
    assert init(tmp_path)[0] == 0  # without --hooks, hooks.py is not the template's
    assert (tmp_path / "hooks.py").read_text() == "# mine\n"


def test_init_as_a_subprocess_with_stdin_not_a_terminal_asks_nothing(tmp_path: Path):
    folder = tmp_path / "quiet"
    done = subprocess.run(
        [sys.executable, "-m", "engine", "init", str(folder)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Module id" not in done.stdout + done.stderr
    assert "  id: quiet\n" in (folder / "module.yaml").read_text()


def test_init_asks_the_id_and_name_on_a_terminal_with_defaults(tmp_path: Path):
    folder = tmp_path / "asked"
    script = "from engine.cli import main; main()"
    argv = [sys.executable, "-c", script, "init", str(folder)]
    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    os.write(leader, b"\nAcme Cloud\n")  # the id's default, then a name
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0, output
    os.close(leader)
    assert b"Module id [asked]" in output
    assert '  id: asked\n  name: "Acme Cloud"\n' in (folder / "module.yaml").read_text()

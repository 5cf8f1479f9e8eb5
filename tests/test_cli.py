from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from engine.language.schema import schema_path

ROOT = Path(__file__).resolve().parents[1]
KINTO = ROOT / "modules" / "kinto"
CLEAN = ROOT / "modules" / "radicale"  # a module with neither errors nor warnings
BROKEN = ROOT / "tests" / "broken"
HEAVY = ("starlette", "httpx", "uvicorn", "fsspec")


def run(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_validate_reports_every_path_given_in_order_and_fails_on_any_error():
    unknown = BROKEN / "15-unknown-parent.yaml"
    warned = BROKEN / "40-warning-no-auth-check.yaml"
    code, lines, summary = run("validate", str(CLEAN), str(unknown), str(warned))
    assert code == 1
    assert [line.split(":", 1)[0] for line in lines] == [str(unknown), str(warned)]
    assert lines[1].endswith(
        "warning: no auth.check: /api/schemas/auth/validate can only check the form's rules"
    )
    assert summary == "3 module(s): 1 error(s), 1 warning(s)\n"


def test_validate_exits_zero_when_there_are_only_warnings():
    code, lines, summary = run("validate", str(BROKEN / "42-warning-plain-http.yaml"))
    assert code == 0
    assert len(lines) == 1
    assert summary == "1 module(s): 0 error(s), 1 warning(s)\n"


def test_validate_accepts_a_module_folder_or_its_module_yaml():
    assert run("validate", str(CLEAN))[:2] == (0, [])
    assert run("validate", str(CLEAN / "module.yaml"))[:2] == (0, [])
    # clean, though its attachment upload is a POST: the step says it is idempotent (a repeated
    # POST replaces the same record's attachment)
    assert run("validate", str(KINTO))[:2] == (0, [])


def test_validate_on_a_missing_path_reports_it_instead_of_failing(tmp_path):
    missing = tmp_path / "nope.yaml"
    folder = tmp_path / "empty-module"
    folder.mkdir()
    code, lines, _ = run("validate", str(missing), str(folder))
    assert code == 1
    assert lines == [
        f"{missing}:1:1: /: no such file",
        f"{folder / 'module.yaml'}:1:1: /: no such file",
    ]


def test_validate_without_a_path_is_a_usage_error():
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


def test_schema_prints_the_language_schema_as_valid_json():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(schema_path().read_text(encoding="utf-8"))
    assert result.stdout == (ROOT / "schemas" / "module.schema.json").read_text(encoding="utf-8")


def test_help_lists_the_commands():
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0
        for command in ("validate", "schema", "serve", "backups"):
            assert command in result.stdout


def modules_loaded_by(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded: list[str] = json.loads(done.stdout.strip().replace("'", '"'))
    return loaded


def test_importing_the_cli_loads_no_server_http_or_storage_machinery():
    assert modules_loaded_by("import engine.cli") == []


def test_engine_validate_runs_without_server_http_or_storage_machinery():
    code = (
        "from click.testing import CliRunner\n"
        "from engine.cli import main\n"
        f"assert CliRunner().invoke(main, ['validate', {str(KINTO)!r}]).exit_code == 0"
    )
    assert modules_loaded_by(code) == []

"""`engine serve` refuses a module with problems and starts on a valid one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KINTO = Path(__file__).resolve().parents[1] / "modules" / "kinto"


def serve(module: Path, **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "engine", "serve", str(module)]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env=env | {"PATH": ""}, check=False
    )


def test_serve_refuses_a_module_with_problems_and_lists_them(tmp_path):
    text = (KINTO / "module.yaml").read_text().replace("parent: bucket", "parent: buckt", 1)
    (tmp_path / "module.yaml").write_text(text)
    done = serve(tmp_path)
    assert done.returncode == 1
    assert (
        "/resources/collection/parent: unknown resource type 'buckt'; did you mean 'bucket'?"
        in done.stderr
    )
    assert "Error: the module definition has 1 problem(s)" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_bad_setting_naming_the_variable():
    done = serve(KINTO, PORT="http")
    assert done.returncode != 0
    assert "PORT: " in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_needs_a_module():
    argv = [sys.executable, "-m", "engine", "serve"]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env={"PATH": ""}, check=False
    )
    assert "no module given: pass a module folder or set ENGINE_MODULE" in done.stderr
    assert done.returncode != 0

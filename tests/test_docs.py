"""The README stays true: the tutorial's module validates and every setting is documented (the
Dockerfile's command and environment are checked against it in tests/test_deploy.py)."""

from __future__ import annotations

import re
from pathlib import Path

from engine.language.loader import validate
from engine.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_tutorial_module_is_valid(tmp_path):
    block = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)[0]
    (tmp_path / "module.yaml").write_text(block, encoding="utf-8")
    assert [str(p) for p in validate([tmp_path]) if not p.warning] == []


def test_every_engine_setting_is_in_the_readme_table_with_its_default():
    for variable in VARIABLES.values():
        default = f"`{variable.default}`" if variable.default is not None else "-"
        assert f"| `{variable.name}` | {default} |" in README, variable.name

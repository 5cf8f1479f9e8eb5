"""The README and the Dockerfile stay true: the tutorial's module validates, every setting is
documented, and the container's command and environment match what the README says."""

from __future__ import annotations

import re
from pathlib import Path

from engine.language.loader import validate
from engine.settings import VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_the_readme_tutorial_module_is_valid(tmp_path):
    block = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)[0]
    (tmp_path / "module.yaml").write_text(block, encoding="utf-8")
    assert [str(p) for p in validate([tmp_path]) if not p.warning] == []


def test_every_engine_setting_is_in_the_readme_table_with_its_default():
    for variable in VARIABLES.values():
        default = f"`{variable.default}`" if variable.default is not None else "-"
        assert f"| `{variable.name}` | {default} |" in README, variable.name


def _docker_env() -> dict[str, str]:
    lines = DOCKERFILE.replace("\\\n", " ").splitlines()
    env_line = next(line for line in lines if line.startswith("ENV "))
    return dict(re.findall(r"(\w+)=(\S+)", env_line))


def test_the_container_serves_the_module_named_by_its_environment():
    env = _docker_env()
    assert 'CMD ["engine", "serve"]' in DOCKERFILE
    assert "USER engine" in DOCKERFILE
    assert env["PORT"] == "8080"
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0"
    assert settings.module is not None
    module = ROOT / settings.module.relative_to("/app")
    assert [str(p) for p in validate([module]) if not p.warning] == []
    for name in env:
        if name.startswith(("ENGINE_", "PORT")):
            assert f"`{name}`" in README

"""The README stays true: the tutorial's module validates and every setting is documented (the
Dockerfile's command and environment are checked against it in tests/test_deploy.py)."""

from __future__ import annotations

import re
from pathlib import Path

from engine.language import checks, filters, templating
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


def _section(text: str, title: str) -> str:
    """A section of a markdown page, from its heading to the next one."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _listed(section: str, lead: str) -> set[str]:
    """The backticked names of the paragraph of ``section`` that starts with ``lead``."""
    paragraph = section.split(lead, 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([^`]+)`", paragraph))


def test_the_language_guide_lists_exactly_the_filters_tests_and_globals_of_the_sandbox():
    section = _section(
        (ROOT / "docs" / "language.md").read_text(encoding="utf-8"), "Filters and tests"
    )
    own = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, re.MULTILINE))
    assert own == set(filters.FILTERS)
    assert own | _listed(section, "Jinja's built-in filters") == templating.FILTERS
    assert _listed(section, "Tests (`is ...`)") == templating.TESTS
    assert _listed(section, "Globals besides") == checks._JINJA_GLOBALS

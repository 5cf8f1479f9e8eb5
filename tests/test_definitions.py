"""The corpus of broken definitions (tests/broken): each file states, in its leading comments,
exactly what `engine validate` reports; and every shipped module validates without errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.language.loader import validate

ROOT = Path(__file__).resolve().parents[1]
BROKEN = sorted((ROOT / "tests" / "broken").glob("*.yaml"))
MODULES = sorted(path for path in (ROOT / "modules").iterdir() if path.is_dir())
EXPECT = "# expect: "


def expectations(path: Path) -> list[str]:
    """The `# expect:` lines of a file's leading comment block, without the marker."""
    found: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith(EXPECT):
            found.append(line.removeprefix(EXPECT))
    return found


def test_the_corpus_holds_thirty_broken_definitions_and_some_that_only_warn():
    only_warned = [p for p in BROKEN if all(": warning: " in e for e in expectations(p))]
    assert len(BROKEN) - len(only_warned) >= 30
    assert len(only_warned) >= 2


@pytest.mark.parametrize("path", BROKEN, ids=[path.stem for path in BROKEN])
def test_a_broken_definition_reports_exactly_its_expected_problems(path):
    reported = [str(problem).removeprefix(f"{path}:") for problem in validate([path])]
    assert reported == expectations(path)


@pytest.mark.parametrize("path", BROKEN, ids=[path.stem for path in BROKEN])
def test_engine_validate_prints_the_expected_lines_and_exits_by_errors(path):
    expected = expectations(path)
    result = CliRunner().invoke(main, ["validate", str(path)])
    errors = [line for line in expected if ": warning: " not in line]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == (1 if errors else 0)
    assert result.stdout.splitlines() == [f"{path}:{line}" for line in expected]


@pytest.mark.parametrize("path", BROKEN, ids=[path.stem for path in BROKEN])
def test_every_corpus_file_states_at_least_one_expectation(path):
    assert expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("module", MODULES, ids=[path.name for path in MODULES])
def test_a_shipped_module_validates_without_errors(module):
    result = CliRunner().invoke(main, ["validate", str(module)])
    assert result.exit_code == 0, result.stdout
    assert [line for line in result.stdout.splitlines() if ": warning: " not in line] == []

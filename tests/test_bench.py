"""The benchmarks in smoke mode (tiny sizes, a few seconds each), so they cannot rot, and the
results writer. The full runs are not part of the suite: `scripts/bench` (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

from bench import authoring
from bench.core import Context, Figure, table, write_section


def smoke(tmp_path: Path) -> Context:
    return Context(smoke=True, runs=1, workdir=tmp_path)


def test_authoring_times_validate_beside_a_bare_interpreter(tmp_path: Path):
    [figure] = authoring.run(smoke(tmp_path))
    assert figure.engine > 0 and figure.baseline is not None and figure.baseline > 0
    assert figure.limit == 1.0 and figure.met is not None


def test_a_section_is_replaced_between_its_markers_and_the_rest_is_kept(tmp_path: Path):
    results = tmp_path / "benchmarks.md"
    results.write_text(
        "# B\n\nhand-written\n<!-- bench:x:start -->\nold\n<!-- bench:x:end -->\ntail\n"
    )
    write_section("x", "new", results)
    write_section("y", "added", results)
    text = results.read_text()
    assert "hand-written" in text and "tail" in text and "old" not in text
    assert "<!-- bench:x:start -->\nnew\n<!-- bench:x:end -->" in text
    assert text.rstrip().endswith("<!-- bench:y:start -->\nadded\n<!-- bench:y:end -->")


def test_the_table_shows_ratio_target_and_whether_it_is_met():
    figures = [
        Figure("b", "speed", "MB/s", 90.0, 100.0, target=0.9),
        Figure("b", "memory", "MiB", 250.0, higher=False, limit=200.0),
    ]
    text = table(figures)
    assert "| speed | 90 MB/s | 100 (direct) | 0.90x | >= 0.90x | yes |" in text
    assert "| memory | 250 MiB | - | - | <= 200 MiB | **no** |" in text

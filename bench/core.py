"""What every benchmark shares: figures (an engine value beside its baseline, as a ratio against
a target), medians of several runs, the machine's description, and writing results into
docs/benchmarks.md between markers, so the hand-written analysis around them survives a rerun."""

from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol, TypeVar

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks.md"
T = TypeVar("T")


@dataclass(frozen=True)
class Figure:
    """One measured quantity: the engine's value beside the direct baseline's.

    ``higher`` says which way is better (records/s: higher; seconds, MiB: lower). ``target`` is
    the least acceptable ratio engine/baseline (for higher-is-better figures) or the largest
    (lower-is-better), or None when the figure is only reported."""

    benchmark: str
    measure: str
    unit: str
    engine: float
    baseline: float | None = None
    baseline_name: str = "direct"
    higher: bool = True
    target: float | None = None
    limit: float | None = None  # an absolute bound on the engine value (max, or min if higher)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """engine / baseline, when there is a baseline."""
        if self.baseline in (None, 0):
            return None
        return self.engine / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the targets are met (None: none set)."""
        checks: list[bool] = []
        if self.target is not None and self.ratio is not None:
            checks.append(self.ratio >= self.target if self.higher else self.ratio <= self.target)
        if self.limit is not None:
            checks.append(self.engine >= self.limit if self.higher else self.engine <= self.limit)
        return all(checks) if checks else None


@dataclass(frozen=True)
class Context:
    """How a run is made: smoke (tiny sizes, a few seconds, used by the tests) or full; the
    number of runs each figure is the median of; a scratch folder."""

    smoke: bool
    runs: int
    workdir: Path


class Benchmark(Protocol):
    """A benchmark module: NAME, TITLE, and run()."""

    NAME: str
    TITLE: str

    def run(self, context: Context) -> list[Figure]: ...


def median_of(runs: int, measure: Callable[[], T], key: Callable[[T], float]) -> T:
    """The run whose key is the median of ``runs`` runs of ``measure`` (the upper median for an
    even count), so related numbers of one run stay together."""
    results = sorted((measure() for _ in range(runs)), key=key)
    return results[len(results) // 2]


def seconds(action: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median(values: Iterable[float]) -> float:
    """The median of some values."""
    return statistics.median(list(values))


def machine() -> str:
    """The machine and the software the figures were measured with."""
    memory = _memory_gib()
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in ("starlette", "uvicorn", "httpx", "fsspec", "s3fs", "zstandard")
    )
    return (
        f"- Machine: {os.cpu_count()} cores, {memory} GiB memory, {platform.machine()},"
        f" {platform.system()} {platform.release()}\n"
        f"- Python {platform.python_version()}; {versions}\n"
        f"- Command: `{shlex.join(['scripts/bench', *sys.argv[1:]])}`,"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )


def _memory_gib() -> str:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return "?"
    found = re.search(r"MemTotal:\s+(\d+) kB", text)
    return f"{int(found.group(1)) / 1024**2:.0f}" if found else "?"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def table(figures: Sequence[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| measure | engine | baseline | ratio | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for figure in figures:
        baseline = (
            f"{_number(figure.baseline)} ({figure.baseline_name})"
            if figure.baseline is not None
            else "-"
        )
        ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "-"
        sign = ">=" if figure.higher else "<="
        targets = [f"{sign} {figure.target:.2f}x"] if figure.target is not None else []
        targets += [f"{sign} {_number(figure.limit)} {figure.unit}"] if figure.limit else []
        target = ", ".join(targets) or "report"
        met = {True: "yes", False: "**no**", None: "-"}[figure.met]
        note = f" ({figure.note})" if figure.note else ""
        lines.append(
            f"| {figure.measure}{note} | {_number(figure.engine)} {figure.unit} | {baseline} |"
            f" {ratio} | {target} | {met} |"
        )
    return "\n".join(lines) + "\n"


CELLS_PER_X = 40  # chart cells for a ratio of 1.00x
MOST_CELLS = 60  # longer bars are cut (marked with >)


def chart(figures: Sequence[Figure]) -> str:
    """The ratios of the figures that have a target, as a text bar chart: a bar of blocks per
    figure, its target marked ``|`` beyond the bar or ``┃`` inside it (so the bar's length
    stays the ratio); empty when no figure has a target."""
    rows = [f for f in figures if f.ratio is not None and f.target is not None]
    if not rows:
        return ""
    width = min(max(len(f.measure) for f in rows), 40)
    lines = [f"engine / baseline ({CELLS_PER_X} blocks = 1.00x; | or ┃ = the target)"]
    for figure in rows:
        assert figure.ratio is not None and figure.target is not None
        filled = round(figure.ratio * CELLS_PER_X)
        mark = round(figure.target * CELLS_PER_X)
        cells = ["█" if cell < filled else " " for cell in range(max(filled, mark + 1))]
        cells[mark] = "┃" if mark < filled else "|"
        bar = "".join(cells[:MOST_CELLS]) + (">" if len(cells) > MOST_CELLS else "")
        label = figure.measure[:width].ljust(width)
        lines.append(f"{label} {bar} {figure.ratio:.2f}x")
    return "```text\n" + "\n".join(lines) + "\n```\n"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Replaces what stands between the markers of section ``name`` (added at the end when
    missing), leaving the rest of the file as it is."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    path.write_text(text)

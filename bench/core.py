"""What every benchmark shares: figures (an engine value beside its baseline, as a ratio against
a target: the median of the per-pair ratios of interleaved rounds, with their spread), rounds
run in pairs (engine, baseline, engine, baseline: a noisy moment hits both sides alike), the
machine's description, and writing results into docs/benchmarks.md between markers, so the
hand-written analysis around them survives a rerun."""

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
from typing import Any, Protocol, TypeVar

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
    ratios: tuple[float, ...] = ()  # engine / baseline of each interleaved pair of rounds
    differs: str = ""  # what each side does that the other does not

    @property
    def ratio(self) -> float | None:
        """The median of the per-pair ratios, or engine / baseline when there are none."""
        if self.ratios:
            return statistics.median(self.ratios)
        if self.baseline in (None, 0):
            return None
        return self.engine / self.baseline

    @property
    def spread(self) -> str:
        """The per-pair ratios' min-max, when there are several."""
        if len(self.ratios) < 2:
            return ""
        return f" ({min(self.ratios):.2f}-{max(self.ratios):.2f})"

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


def paired(
    runs: int, engine: Callable[[], T], baseline: Callable[[], T]
) -> tuple[list[T], list[T]]:
    """``runs`` pairs of rounds, interleaved A B A B: the engine's results and the baseline's."""
    engines: list[T] = []
    baselines: list[T] = []
    for _ in range(runs):
        engines.append(engine())
        baselines.append(baseline())
    return engines, baselines


def pair_ratios(engine: Sequence[float], baseline: Sequence[float]) -> tuple[float, ...]:
    """engine / baseline of each pair (values of the figure's unit: rates or MiB)."""
    return tuple(e / b for e, b in zip(engine, baseline, strict=True) if b)


def pair_figure(
    benchmark: str, measure: str, unit: str, engine: list[float], baseline: list[float], **more: Any
) -> Figure:
    """A figure of paired rounds: each side's median, and the per-pair ratios."""
    return Figure(
        benchmark,
        measure,
        unit,
        median(engine),
        median(baseline),
        ratios=pair_ratios(engine, baseline),
        **more,
    )


def rates(amount: float, times: Sequence[float]) -> list[float]:
    """amount / seconds of each round (records/s from seconds, say)."""
    return [amount / time for time in times]


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
        ratio = f"{figure.ratio:.2f}x{figure.spread}" if figure.ratio is not None else "-"
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
    return "\n".join(lines) + "\n" + _notes(figures)


def _notes(figures: Sequence[Figure]) -> str:
    """Below the table: how its ratios are made, and what each side does that the other
    does not."""
    text = ""
    if any(figure.ratios for figure in figures):
        text += "\nRatios: the median of per-pair ratios (min-max), rounds interleaved A B A B.\n"
    differs = [f"- {figure.measure}: {figure.differs}" for figure in figures if figure.differs]
    if differs:
        text += "\nWhat each side does that the other does not:\n" + "\n".join(differs) + "\n"
    return text


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

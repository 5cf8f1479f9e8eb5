"""`python -m bench.cpu_profile [--runs N] [--count N]`: where the CPU of a backup of many small
resources goes, in the engine and in bench/small.py's direct script, sampled by py-spy 0.4.1
(run through `uv tool run`, never a project dependency).

Both sides back up the same notes through the same 20 ms proxy: the engine as an `engine serve`
process, the direct script as a process of its own. Each is warmed up by one round, then sampled
(`py-spy record --gil`: only the thread holding the GIL, so a thread waiting on the network, the
disk or the GIL is not counted; C code that releases the GIL, such as zstd, hashing and fsync,
is not seen either) over ``runs`` rounds. A sample counts for the first layer its stack meets
from the innermost frame out (LIBRARIES); for the engine also for the innermost engine package
on it (which layer of ours asked for that work). Figures are milliseconds of GIL-held time per
resource; `scripts/bench --only small` measures the whole CPU per resource without a sampler.

`python -m bench.cpu_profile direct SAAS FOLDER RUNS` is the direct side's process: one warm-up
round, "ready" on stdout, then ``runs`` rounds once a line arrives on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench import serving, small
from bench.core import ROOT
from bench.notes_saas import WORKSPACE

PY_SPY = "py-spy==0.4.1"
RATE = 250  # samples a second
ATTACHED = 2.0  # seconds py-spy is given to attach before the measured rounds

# (the start of a frame's file, the layer it counts for), from the innermost frame out; py-spy
# names a frame `function (file:line)`, its file relative to its folder on sys.path
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("(json/", "json"),
    ("(jinja2/", "Jinja"),
    ("(tenacity/", "tenacity"),
    ("(fsspec/", "fsspec"),
    ("(httpx/", "httpx, httpcore, h11, anyio"),
    ("(httpcore/", "httpx, httpcore, h11, anyio"),
    ("(h11/", "httpx, httpcore, h11, anyio"),
    ("(anyio/", "httpx, httpcore, h11, anyio"),
    ("(starlette/", "Starlette, uvicorn"),
    ("(uvicorn/", "Starlette, uvicorn"),
    ("(engine/", "engine's own code"),
    ("(bench/", "the script's own code"),
    ("(asyncio/", "asyncio, selectors, threads"),
    ("(selectors.py", "asyncio, selectors, threads"),
    ("(threading.py", "asyncio, selectors, threads"),
    ("(concurrent/", "asyncio, selectors, threads"),
)
ENGINE_PACKAGE = re.compile(r"\(engine/(\w+)")
NO_ENGINE = "(no engine frame: a loop callback of a library, or a stack py-spy read only in part)"


def library(stack: Sequence[str]) -> str:
    """The layer of a sample: the first of LIBRARIES its frames meet, innermost first."""
    for frame in reversed(stack):
        for part, name in LIBRARIES:
            if part in frame:
                return name
    return "other"


def engine_package(stack: Sequence[str]) -> str:
    """The innermost engine package of a sample's stack (engine/saas, say)."""
    for frame in reversed(stack):
        found = ENGINE_PACKAGE.search(frame)
        if found:
            return f"engine/{found[1]}"
    return NO_ENGINE


def samples(raw: Path) -> Iterator[tuple[list[str], int]]:
    """py-spy's raw (collapsed) output: each stack, outermost frame first, and its count."""
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():  # py-spy's own notes are no stacks
            yield stack.split(";"), int(count)


def tally(raw: Path, key: Callable[[Sequence[str]], str]) -> Counter[str]:
    """The samples counted by what ``key`` makes of each stack."""
    found: Counter[str] = Counter()
    for stack, count in samples(raw):
        found[key(stack)] += count
    return found


# --------------------------------------------------------------------------- sampling


def _py_spy() -> list[str]:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to run py-spy (scripts/bootstrap.sh installs it)")
    return [uv, "tool", "run", "--from", PY_SPY, "py-spy"]


@contextmanager
def sampled(pid: int, out: Path) -> Iterator[None]:
    """py-spy sampling process pid into out (raw) while the block runs."""
    argv = [*_py_spy(), "record", "--pid", str(pid), "--gil", "--rate", str(RATE)]
    argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(ATTACHED)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        _, errors = spy.communicate(timeout=120)
        if not out.exists():
            raise RuntimeError(f"py-spy wrote nothing: {errors.decode(errors='replace')[-2000:]}")


def engine_side(peers: small.Peers, runs: int, work: Path) -> Path:
    """The engine's samples over ``runs`` backups of the workspace, after one warm-up."""
    env = {"ENGINE_STORAGE_ALLOW": f"file://{peers.out}", "ENGINE_LOG_LEVEL": "WARNING"}
    out = work / "engine.raw"
    with serving.start_engine(small.MODULE, work, env) as engine:
        ctx = serving.roots(engine.url, peers.auth)[WORKSPACE]
        serving.backup(engine.url, peers.auth, ctx, {"url": f"file://{peers.out}/engine-warm"})
        with sampled(engine.process.pid, out):
            for number in range(runs):
                storage = {"url": f"file://{peers.out}/engine-{number}"}
                serving.backup(engine.url, peers.auth, ctx, storage)
    return out


def direct_side(peers: small.Peers, runs: int, work: Path) -> Path:
    """The direct script's samples over ``runs`` rounds in a process of its own."""
    out = work / "direct.raw"
    argv = [sys.executable, "-m", "bench.cpu_profile", "direct", peers.saas, str(peers.out)]
    with subprocess.Popen(
        [*argv, str(runs)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as script:
        assert script.stdin is not None and script.stdout is not None
        if script.stdout.readline().strip() != "ready":
            raise RuntimeError("the direct script's warm-up round failed")
        with sampled(script.pid, out):
            script.stdin.write("go\n")
            script.stdin.flush()
            if script.stdout.readline().strip() != "done":
                raise RuntimeError("the direct script's rounds failed")
    return out


def direct_rounds(saas: str, folder: Path, runs: int) -> None:
    """The direct side's process (see the module's docstring)."""
    asyncio.run(small._direct(saas, folder / "direct-warm"))
    print("ready", flush=True)
    sys.stdin.readline()
    for number in range(runs):
        asyncio.run(small._direct(saas, folder / f"direct-{number}"))
    print("done", flush=True)


# --------------------------------------------------------------------------- the report


def report(engine: Path, direct: Path, resources: int) -> str:
    """Markdown: ms per resource by layer, both sides; the engine's by engine package."""

    def ms(count: int) -> str:
        return f"{1000 * count / RATE / resources:.3f}"

    ours, theirs = tally(engine, library), tally(direct, library)
    by_package = tally(engine, engine_package)
    layers = sorted(ours.keys() | theirs.keys(), key=lambda name: -ours[name])
    return "\n".join(
        [
            f"GIL-held time per resource, ms ({resources:,} resources, py-spy --gil at"
            f" {RATE} Hz; the warm-up round left out):",
            "",
            "| where the time is spent | engine | direct script |",
            "|---|---:|---:|",
            *(f"| {name} | {ms(ours[name])} | {ms(theirs[name])} |" for name in layers),
            f"| **all** | **{ms(sum(ours.values()))}** | **{ms(sum(theirs.values()))}** |",
            "",
            "The engine's, by the innermost engine package on the stack (who asked for it):",
            "",
            "| engine package | ms |",
            "|---|---:|",
            *(f"| {name} | {ms(count)} |" for name, count in by_package.most_common()),
        ]
    )


@contextmanager
def _notes(work: Path, count: int) -> Iterator[small.Peers]:
    with (
        small.start_peer("notes", work, "--count", str(count)) as saas,
        small.start_peer(
            "delay", work, "--upstream", small.address(saas), "--seconds", str(small.DELAY)
        ) as proxy,
    ):
        yield small.Peers(proxy.url, work / "out")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["direct"]:
        direct_rounds(arguments[1], Path(arguments[2]), int(arguments[3]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_profile", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="rounds per side (default 3)")
    parser.add_argument("--count", type=int, default=2000, help="notes (default 2000)")
    parser.add_argument("--save", type=Path, help="also keep the raw samples in this folder")
    args = parser.parse_args(arguments)
    work = Path(tempfile.mkdtemp(prefix="engine-profile-"))
    try:
        with _notes(work, args.count) as peers:
            engine = engine_side(peers, args.runs, work)
            direct = direct_side(peers, args.runs, work)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for raw in (engine, direct):
                shutil.copy(raw, args.save / raw.name)
        print(report(engine, direct, args.runs * args.count))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

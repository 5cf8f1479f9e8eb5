"""`python -m bench [--smoke] [--only NAME ...] [--runs N]`: runs the benchmarks (each starts the
servers it needs) and writes each one's results into docs/benchmarks.md as soon as it finishes.
--smoke runs tiny sizes and writes nothing (the test suite runs it so the benchmarks cannot
rot)."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.core import Benchmark, Context, chart, machine, table, write_section

# run order
BENCHMARKS = ("authoring", "records", "restore", "api", "binaries", "small", "files", "peers")


def load(name: str) -> Benchmark:
    """The benchmark module bench/<name>.py."""
    module: Benchmark = importlib.import_module(f"bench.{name}")
    return module


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; write nothing")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.smoke else 5)
    missed = 0
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        context = Context(smoke=args.smoke, runs=runs, workdir=Path(tmp))
        if not args.smoke:
            write_section("machine", machine())
        for name in args.only or BENCHMARKS:
            benchmark = load(name)
            figures = benchmark.run(context)
            text = table(figures) + "\n" + chart(figures)
            print(f"## {benchmark.TITLE}\n{text}", flush=True)
            missed += sum(figure.met is False for figure in figures)
            if not args.smoke:
                write_section(name, f"### {benchmark.TITLE}\n\n{text}")
    print(f"{missed} target(s) missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

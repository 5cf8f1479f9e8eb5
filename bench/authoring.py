"""Authoring: wall time of `engine validate modules/kinto` in a fresh process (target < 1 s),
beside a fresh interpreter that only starts (`python -c pass`), the floor of any CLI."""

from __future__ import annotations

import subprocess
import sys

from bench.core import ROOT, Context, Figure, median, pair_ratios, paired, seconds

NAME = "authoring"
TITLE = "Authoring: `engine validate modules/kinto` in a fresh process"


def _validate() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine", "validate", str(ROOT / "modules" / "kinto")],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"engine validate failed: {done.stderr.decode()[-500:]}")


def _bare() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def run(context: Context) -> list[Figure]:
    """The median wall time of both, over the context's runs, interleaved."""
    engine, bare = paired(context.runs, lambda: seconds(_validate), lambda: seconds(_bare))
    return [
        Figure(
            NAME,
            "validate wall time",
            "s",
            median(engine),
            median(bare),
            baseline_name="python -c pass",
            higher=False,
            limit=1.0,
            ratios=pair_ratios(engine, bare),
            differs="the engine imports itself, reads and checks the module against the"
            " language; the bare interpreter only starts",
        )
    ]

"""Authoring: wall time of `engine validate modules/kinto` in a fresh process (target < 1 s),
beside a fresh interpreter that only starts (`python -c pass`), the floor of any CLI."""

from __future__ import annotations

import subprocess
import sys

from bench.core import ROOT, Context, Figure, median, seconds

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
    """The median wall time of both, over the context's runs."""
    engine = median(seconds(_validate) for _ in range(context.runs))
    bare = median(seconds(_bare) for _ in range(context.runs))
    return [
        Figure(
            NAME,
            "validate wall time",
            "s",
            engine,
            bare,
            baseline_name="python -c pass",
            higher=False,
            limit=1.0,
        )
    ]

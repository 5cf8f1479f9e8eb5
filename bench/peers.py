"""Peers: the engine beside dlt's `rest_api` source and Airbyte's declarative CDK, each backing up
the same Kinto collection as the records benchmark (bench/records.py) as a process of its own:
the engine an `engine serve` of bench/peer_configs/engine_kinto (started per round, one backup
through its API, stopped), dlt and Airbyte the scripts in bench/peer_configs/, run by their own
virtual environments (`python -m scripts.servers install dlt airbyte-cdk`; never the project's).

Per process: records/s of the extraction (the engine: the task's start call to DONE; dlt: its
`extract` step, timed inside its process; Airbyte: the source's `read`, from the first message
asked for to the last record written) and of the whole process (start to exit, imports
included; the engine: start to its backup DONE), peak RSS and CPU seconds (the kernel's, for the
process: wait4 for the peers, /proc for the engine) and the lines of configuration each needs
(non-blank, non-comment). Every run must deliver every record. Rounds interleave (engine, dlt,
dlt with its defaults, Airbyte; again): each ratio is the median of the per-round ratios of the
engine to the fastest (or leanest) peer of that round.

--smoke seeds a tiny collection and runs every side on it, the peers included (installed once
into the peers' cache: about 20 s on a fresh machine), so the suite runs their scripts too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench import records
from bench.core import Context, Figure, median, pair_ratios, rates
from bench.peer_runs import (
    AIRBYTE,
    CONFIGS,
    DLT,
    ENGINE_MODULE,
    Collection,
    Run,
    WarmEngine,
    airbyte_run,
    dlt_run,
    engine_run,
    raw_run,
)
from scripts import servers

NAME = "peers"
TITLE = "Peers: one Kinto collection with dlt and Airbyte"
RAW = "Kinto's raw page fetch"
WARM = "the engine, warm"


# --------------------------------------------------------------------------- configuration


CONFIG_FILES = {
    "engine": ENGINE_MODULE / "module.yaml",
    "dlt": CONFIGS / "dlt_kinto.py",
    "airbyte": CONFIGS / "airbyte_kinto.yaml",
}
COMMENT = re.compile(r"^\s*(#|$)")


def config_lines(path: Path) -> int:
    """Non-blank lines that are not comments (`#`, in YAML and Python alike)."""
    return sum(not COMMENT.match(line) for line in path.read_text().splitlines())


# --------------------------------------------------------------------------- the run


@contextmanager
def _collection(context: Context) -> Iterator[Collection]:
    size = "smoke" if context.smoke else "full"
    work = context.workdir / NAME
    with servers.start_kinto(work / "kinto", paginate_by=records.PAGE[size]) as kinto:
        count = records.RECORDS[size]
        servers.seed_kinto(
            kinto.url, kinto.admin, buckets=1, collections=1, groups=0, records=count
        )
        yield Collection(kinto, count, work)


def _sides(context: Context, stack: ExitStack) -> dict[str, Callable[[Collection], Run]]:
    """Who runs: the engine (fresh and kept up), Kinto's raw fetch, and each peer (installed
    into its own environment the first time)."""
    servers.ensure_peer(DLT)
    servers.ensure_peer(AIRBYTE)
    return {
        "engine": engine_run,
        WARM: WarmEngine(stack),
        RAW: raw_run,
        "dlt": dlt_run,
        "dlt, defaults": lambda c: dlt_run(c, defaults=True),
        "airbyte": airbyte_run,
    }


def _rounds(
    context: Context, sides: Mapping[str, Callable[[Collection], Run]]
) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {name: [] for name in sides}
    with _collection(context) as collection:
        if not context.smoke:  # a first round untimed: Kinto's caches, the OS's file cache
            for side in sides.values():
                side(collection)
        for _ in range(context.runs):  # interleaved: a noisy moment hits every side alike
            for name, side in sides.items():
                results[name].append(side(collection))
    return results


def run(context: Context) -> list[Figure]:
    """Each side's rounds, then the figures: the engine against the best peer of each round."""
    with ExitStack() as stack:
        results = _rounds(context, _sides(context, stack))
    count = records.RECORDS["smoke" if context.smoke else "full"]
    return figures(results, count)


PEERS = ("dlt", "airbyte")  # the fastest and leanest are chosen among these per round
MEASURES: dict[str, tuple[str, str, bool, Callable[[Run, int], float]]] = {
    # name: (unit, what the best peer is, higher is better, the value of a run)
    "extraction": ("records/s", "fastest", True, lambda r, n: n / r.extract_seconds),
    "whole process": ("records/s", "fastest", True, lambda r, n: n / r.process_seconds),
    "peak RSS": ("MiB", "leanest", False, lambda r, n: r.peak_mib),
    "CPU": ("s", "most frugal", False, lambda r, n: r.cpu_seconds),
}
TARGETS = {"extraction": 1.5, "peak RSS": 0.75}
DIFFERS = {
    "dlt": "dlt infers a schema, normalizes (one table: nesting off) and keeps load packages and"
    " state; the engine serves the platform's API, hashes, fsyncs and writes a manifest",
    "dlt, defaults": "as dlt, with its default nesting: `tags` and `nested.level.deep` become"
    " child tables",
    RAW: "the ceiling: pages fetched pipelined as the engine fetches them, nothing parsed or"
    " written (in the benchmark's process)",
    "airbyte": "Airbyte wraps every record in a protocol message (a destination would load them)"
    " and checks the stream's schema; it writes no files of its own, the runner script does",
}

CONFIG_DIFFERS = {
    "dlt": "the engine's module holds the platform's sign-in form and the bucket and collection"
    " listings the platform browses; dlt's script holds the pipeline's steps and their timing",
    "airbyte": "the engine's module holds the platform's sign-in form and listings; Airbyte's"
    " manifest holds a stream schema and a connection spec (its runner script is not counted)",
}


def figures(results: Mapping[str, list[Run]], count: int) -> list[Figure]:
    """Per measure: the engine against the best peer of each round (with a target where the
    issue sets one), then against each peer; then the lines of configuration."""
    peers = [name for name in results if name not in {"engine", RAW, WARM}]
    made: list[Figure] = []
    for measure, (unit, best, higher, value) in MEASURES.items():
        engine = [value(run, count) for run in results["engine"]]
        sides = {name: [value(run, count) for run in results[name]] for name in peers}
        pick = max if higher else min
        bests = [pick(values) for values in zip(*(sides[name] for name in PEERS), strict=True)]
        made.append(
            Figure(
                NAME,
                f"{measure}, against the {best} peer",
                unit,
                median(engine),
                median(bests),
                baseline_name=f"{best} of {', '.join(PEERS)}",
                higher=higher,
                target=TARGETS.get(measure),
                ratios=pair_ratios(engine, bests),
            )
        )
        if measure == "extraction":
            warm = rates(count, [run.extract_seconds for run in results[WARM]])
            made.append(_warm_figure(warm, bests, unit))
        made += [_against(measure, unit, higher, engine, (name, sides[name])) for name in peers]
        if measure == "extraction":
            raw = rates(count, [run.extract_seconds for run in results[RAW]])
            made.append(_against(measure, unit, higher, engine, (RAW, raw)))
    return made + config_figures()


def _warm_figure(warm: list[float], bests: list[float], unit: str) -> Figure:
    return Figure(
        NAME,
        "extraction, the engine's process kept up across rounds, against the fastest peer",
        unit,
        median(warm),
        median(bests),
        baseline_name="fastest peer, a fresh process",
        ratios=pair_ratios(warm, bests),
        differs="a server's later backups: its imports, templates and connections are ready,"
        " where each peer's process (as each engine process above) starts cold",
    )


def _against(
    measure: str, unit: str, higher: bool, engine: list[float], peer: tuple[str, list[float]]
) -> Figure:
    name, values = peer
    return Figure(
        NAME,
        f"{measure}, {name}",
        unit,
        median(engine),
        median(values),
        baseline_name=name,
        higher=higher,
        ratios=pair_ratios(engine, values),
        differs=DIFFERS[name] if measure == "extraction" else "",
    )


def config_figures() -> list[Figure]:
    """The lines of configuration of each side (whether or not the peers are installed)."""
    engine = config_lines(CONFIG_FILES["engine"])
    return [
        Figure(
            NAME,
            "lines of configuration",
            "lines",
            engine,
            config_lines(CONFIG_FILES[name]),
            baseline_name=name,
            higher=False,
            note=f"bench/peer_configs/{CONFIG_FILES[name].relative_to(CONFIGS)}",
            differs=CONFIG_DIFFERS[name],
        )
        for name in PEERS
    ]

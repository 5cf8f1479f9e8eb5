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

import asyncio
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import harness, records, serving
from bench.core import ROOT, Context, Figure, median, pair_ratios, rates, seconds
from scripts import servers

NAME = "peers"
TITLE = "Peers: one Kinto collection with dlt and Airbyte"
CONFIGS = ROOT / "bench" / "peer_configs"
ENGINE_MODULE = CONFIGS / "engine_kinto"
DLT, AIRBYTE = "dlt", "airbyte-cdk"
RAW = "Kinto's raw page fetch"
WARM = "the engine, warm"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    """One process's figures."""

    extract_seconds: float
    process_seconds: float
    cpu_seconds: float
    peak_mib: float


@dataclass(frozen=True)
class Collection:
    """The seeded Kinto collection, what the peers' environment names, and scratch space."""

    kinto: servers.KintoServer
    records: int
    work: Path

    @property
    def env(self) -> dict[str, str]:
        user, password = self.kinto.admin
        return {
            "KINTO_URL": self.kinto.url,
            "KINTO_USER": user,
            "KINTO_PASSWORD": password,
            "KINTO_PATH": records.records_path(records.BUCKET, records.COLLECTION).lstrip("/"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",  # dlt sends none of its usage to its maker
        }

    def place(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


# --------------------------------------------------------------------------- the engine


def engine_run(collection: Collection) -> Run:
    """A fresh `engine serve` of the minimal module, one backup through its API, stopped."""
    backups = collection.place("engine")
    env = {"ENGINE_STORAGE_ALLOW": f"file://{backups}"}
    began = time.perf_counter()
    with serving.start_engine(ENGINE_MODULE, collection.work, env) as engine:
        with harness.api_client(engine) as http:
            extract = _backup(collection, http, backups)
        process = time.perf_counter() - began
        pid = engine.process.pid
        return Run(extract, process, _cpu_seconds(pid), serving.peak_mib(pid))


def _backup(collection: Collection, http: httpx.Client, backups: Path) -> float:
    """The records benchmark's backup of the collection through an engine's API; its seconds."""
    auth = harness.auth_of(collection.kinto)
    ctx = harness.collection_ctx(http, auth, records.BUCKET, records.COLLECTION)
    source = records.Source(collection.kinto, http, ctx, backups, collection.records)
    return records.engine_backup(source, with_permissions=False)


class WarmEngine:
    """The engine as the platform meets it after its first backup: one `engine serve` process
    kept up across the rounds (only its extraction is a figure)."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.http: httpx.Client | None = None

    def __call__(self, collection: Collection) -> Run:
        backups = collection.work / "engine-warm"
        if self.http is None:
            env = {"ENGINE_STORAGE_ALLOW": f"file://{backups}"}
            engine = serving.start_engine(ENGINE_MODULE, collection.work, env)
            self.stack.enter_context(engine)
            self.http = self.stack.enter_context(harness.api_client(engine))
        took = _backup(collection, self.http, collection.place("engine-warm"))
        return Run(took, took, math.nan, math.nan)


def raw_run(collection: Collection) -> Run:
    """Kinto's ceiling: records.pages fetched pipelined in this process, nothing parsed but the
    Next-Page header, nothing written (only its seconds are figures)."""

    async def fetch() -> None:
        async with records.kinto_client(collection.kinto) as client:
            path = records.records_path(records.BUCKET, records.COLLECTION)
            async for _ in records.pages(client, path):
                pass

    took = seconds(lambda: asyncio.run(fetch()))
    return Run(took, took, math.nan, math.nan)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15


# --------------------------------------------------------------------------- the peers


# A small process between the benchmark and each peer: a child's peak RSS as the kernel
# reports it (ru_maxrss) starts from the memory of the process it was forked from, which for
# the benchmark's own process is above 100 MiB; forked from this one, about 10.
WAIT = """
import json, os, sys, time
began = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - began
with open(sys.argv[1], "w") as file:
    json.dump({"exit": os.waitstatus_to_exitcode(status), "seconds": seconds,
               "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss}, file)
"""


def _child(argv: list[str | Path], env: Mapping[str, str], log: Path) -> Run:
    """Run a peer's process to its end (through WAIT): its figures, extract_seconds from the
    JSON of its last line of output. Fails, with its output's tail, unless it exits 0."""
    usage_file = log.with_suffix(".usage")
    waiter = [sys.executable, "-I", "-S", "-c", WAIT, usage_file, *argv]
    with log.open("wb") as out:
        subprocess.run(
            [str(a) for a in waiter], stdout=out, stderr=out, env=env, cwd=ROOT, check=True
        )
    text = log.read_text(errors="replace")
    usage = json.loads(usage_file.read_text())
    if usage["exit"] != 0:
        raise RuntimeError(f"{argv[1]} failed ({usage['exit']}):\n{text[-3000:]}")
    reported = json.loads(text.rstrip().rpartition("\n")[2])
    return Run(
        reported["extract_seconds"], usage["seconds"], usage["cpu"], usage["maxrss_kib"] / 1024
    )


def _peer_env(collection: Collection) -> dict[str, str]:
    return {**servers._clean_env(), **collection.env}


def dlt_run(collection: Collection, *, defaults: bool = False) -> Run:
    """dlt's rest_api source to the filesystem destination, JSON Lines (gzip, dlt's default)."""
    name = "dlt-defaults" if defaults else "dlt"
    out = collection.place(name)
    python = servers.PEERS[DLT].venv / "bin" / "python"
    argv: list[str | Path] = [python, CONFIGS / "dlt_kinto.py", out]
    run = _child([*argv, *(["--defaults"] if defaults else [])], _peer_env(collection), out / "log")
    files = list((out / "files").rglob("records/*.jsonl.gz"))
    _check(name, sum(_gzip_lines(path) for path in files), collection.records)
    return run


def _gzip_lines(path: Path) -> int:
    with gzip.open(path, "rb") as file:
        return sum(1 for _ in file)


def airbyte_run(collection: Collection) -> Run:
    """Airbyte's manifest runner, each RECORD message a line of a file."""
    out = collection.place("airbyte")
    python = servers.PEERS[AIRBYTE].venv / "bin" / "python"
    target = out / "records.jsonl"
    argv: list[str | Path] = [
        python,
        CONFIGS / "airbyte_run.py",
        CONFIGS / "airbyte_kinto.yaml",
        target,
    ]
    run = _child(argv, _peer_env(collection), out / "log")
    with target.open("rb") as file:
        count = sum(line.startswith(b'{"type":"RECORD"') for line in file)
    _check("airbyte", count, collection.records)
    return run


def _check(name: str, found: int, wanted: int) -> None:
    if found != wanted:
        raise RuntimeError(f"{name} delivered {found} records of {wanted}: a failure, not a figure")


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

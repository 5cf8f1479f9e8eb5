"""The sides of the peers benchmark (bench/peers.py), one round each: the engine as an `engine
serve` process of its own (fresh, or kept up across rounds), Kinto's raw page fetch, and dlt and
Airbyte each run by its own virtual environment under a small waiting process; each round gives
its extraction and process times, CPU seconds and peak RSS, and must deliver every record."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import harness, records, serving
from bench.core import ROOT, seconds
from scripts import servers

CONFIGS = ROOT / "bench" / "peer_configs"
ENGINE_MODULE = CONFIGS / "engine_kinto"
DLT, AIRBYTE = "dlt", "airbyte-cdk"
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

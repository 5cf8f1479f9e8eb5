"""Many small resources: a workspace of 2,000 notes of about 3 KiB each (bench/notes_saas.py), every
SaaS answer held 20 ms by a proxy, as a remote SaaS's would be. The module (bench/modules/small)
lists the notes 100 to a page as child resources of the workspace, and backs each one up with an
`object` step: the platform backs up one root, and the engine walks the thousands of resources
below it, which is how tenants, drives and projects hold their items (a bulk backup of 2,000 roots
would need the platform to list them first, and is rarer).

A real `engine serve` process backs the workspace up to a local folder at the module's default
concurrency and, served from a copy of the module with `connection.concurrency: 1`, one request
at a time; a direct script (httpx, a semaphore of the same size, zstandard at the engine's level,
fsspec) lists and fetches the same notes through the same proxy into the same kind of folder.
Engine and direct rounds alternate (A B A B, the engine process kept up between its rounds):
the ratio is the median of the per-pair ratios.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
import httpx
import yaml
import zstandard

from bench import serving
from bench.core import ROOT, Context, Figure, median, pair_figure, pair_ratios, rates
from bench.notes_saas import WORKSPACE
from engine.storage.transfers import CODECS
from scripts import servers

NAME = "small"
TITLE = "Many small resources: 2,000 notes of 3 KiB behind a 20 ms SaaS"
MODULE = ROOT / "bench" / "modules" / "small"
CONCURRENCY = 8  # the language's default connection.concurrency (docs/language.md)
DELAY = 0.020
PAGE_SIZE = 100  # as the module's pagination asks
LEVEL = CODECS["zstd"].level
SERIAL_RUNS = 3  # one request at a time takes about a minute a run: three bound the suite's time


@dataclass(frozen=True)
class Round:
    """One backup of the workspace: its wall seconds and the CPU seconds its process spent."""

    seconds: float
    cpu: float


@dataclass(frozen=True)
class Peers:
    """The notes SaaS behind the delay proxy, and the local folder backups land in."""

    saas: str  # the proxy's URL, which every client uses
    out: Path

    @property
    def auth(self) -> dict[str, Any]:
        return {"settings": {"server_url": self.saas}}


def start_peer(kind: str, logs: Path, *options: str) -> servers.Server:
    """`python -m bench.notes_saas kind *options` on a free port (kind: notes or delay)."""
    port = servers.free_port()
    url = f"http://{servers.HOST}:{port}"
    return servers.start_process(
        kind,
        [sys.executable, "-m", "bench.notes_saas", kind, "--port", str(port), *options],
        url=url,
        health_url=f"{url}/workspaces",
        log_path=logs / f"{kind}.log",
        cwd=ROOT,
    )


def address(server: servers.Server) -> str:
    """host:port of a server."""
    return server.url.removeprefix("http://")


def _serial_module(folder: Path) -> Path:
    """A copy of the module that sends one request at a time."""
    definition = yaml.safe_load((MODULE / "module.yaml").read_text())
    definition["connection"]["concurrency"] = 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "module.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
    return folder


# --------------------------------------------------------------------------- the engine


def _engine_runs(
    module: Path,
    peers: Peers,
    runs: int,
    count: int,
    logs: Path,
    *,
    between: Callable[[int], None],
) -> list[Round]:
    """Each of ``runs`` backups of the workspace by one engine process (its CPU seconds: the
    engine process's own, status polls included), calling between(number) after each (the
    baseline's round of the pair); the backups are removed once the process has stopped."""
    env = {"ENGINE_STORAGE_ALLOW": f"file://{peers.out}"}
    rounds, folders = [], []
    with serving.start_engine(module, logs, env) as engine:
        ctx = serving.roots(engine.url, peers.auth)[WORKSPACE]
        for number in range(runs):
            folders.append(peers.out / f"engine-{module.name}-{number}")
            storage = {"url": f"file://{folders[-1]}"}
            cpu = process_cpu(engine.process.pid)
            elapsed = serving.backup(engine.url, peers.auth, ctx, storage).seconds
            rounds.append(Round(elapsed, process_cpu(engine.process.pid) - cpu))
            _check(_stored(folders[-1]), count)
            between(number)
    for folder in folders:
        shutil.rmtree(folder)
    return rounds


def process_cpu(pid: int) -> float:
    """The user and system CPU seconds a live process has spent so far (/proc/pid/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored(folder: Path) -> int:
    return sum(1 for _ in (folder / WORKSPACE / "notes").glob("*.json.zst"))


def _check(stored: int, count: int) -> None:
    if stored != count:
        raise RuntimeError(f"{stored} notes were stored, not {count}")


# --------------------------------------------------------------------------- the direct script


async def _direct(saas: str, folder: Path) -> None:
    """What a hand-written module would do: list the notes page after page, fetching each
    listed note as it comes (at most CONCURRENCY requests at once) into its own object."""
    fs = fsspec.filesystem("file", auto_mkdir=True)
    compressor = zstandard.ZstdCompressor(level=LEVEL)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=saas, trust_env=False, timeout=60) as client:

        async def get(path: str, **params: int) -> httpx.Response:
            async with gate:
                answer = await client.get(path, params=params)
            answer.raise_for_status()
            return answer

        async def save(note: str) -> None:
            answer = await get(f"/workspaces/{WORKSPACE}/notes/{note}")
            path = f"{folder}/{WORKSPACE}/notes/{note}.json.zst"
            fs.pipe_file(path, compressor.compress(answer.content))

        async with asyncio.TaskGroup() as group:
            page = 1
            listing = f"/workspaces/{WORKSPACE}/notes"
            while items := (await get(listing, page=page, size=PAGE_SIZE)).json()["items"]:
                for item in items:
                    group.create_task(save(item["id"]))
                page += 1


def _direct_round(peers: Peers, count: int, number: int) -> Round:
    """One direct backup (checked, then removed), run in this process: its CPU seconds are
    this process's while it runs."""
    folder = peers.out / f"direct-{number}"
    began, cpu = time.perf_counter(), time.process_time()
    asyncio.run(_direct(peers.saas, folder))
    done = Round(time.perf_counter() - began, time.process_time() - cpu)
    _check(_stored(folder), count)
    shutil.rmtree(folder)
    return done


# --------------------------------------------------------------------------- measuring


def run(context: Context) -> list[Figure]:
    """Resources per second of the engine at both concurrencies and of the direct script,
    medians of the context's runs (at most SERIAL_RUNS one request at a time)."""
    count = 20 if context.smoke else 2000
    folder = context.workdir / NAME
    logs = folder / "logs"
    try:
        with (
            start_peer("notes", logs, "--count", str(count)) as saas,
            start_peer(
                "delay", logs, "--upstream", address(saas), "--seconds", str(DELAY)
            ) as proxy,
        ):
            peers = Peers(proxy.url, folder / "out")
            serial = _serial_module(folder / "small-serial")
            direct: list[Round] = []
            default = _engine_runs(
                MODULE,
                peers,
                context.runs,
                count,
                logs,
                between=lambda number: direct.append(_direct_round(peers, count, number)),
            )
            serial_runs = min(context.runs, SERIAL_RUNS)
            one = _engine_runs(serial, peers, serial_runs, count, logs, between=lambda number: None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    label = f"{count:,} resources"
    fast, slow, script = (
        rates(count, [r.seconds for r in rounds]) for rounds in (default, one, direct)
    )
    return [
        Figure(
            NAME,
            f"{label}, concurrency {CONCURRENCY} against 1",
            "resources/s",
            median(fast),
            median(slow),
            baseline_name="engine, concurrency 1",
            target=4.0,
            note="not paired: the runs of each concurrency follow each other",
        ),
        Figure(
            NAME,
            f"{label} at concurrency {CONCURRENCY}",
            "resources/s",
            median(fast),
            median(script),
            target=0.9,
            ratios=pair_ratios(fast, script),
            differs="the engine runs a task (HTTP API, status polls, journal), renders each"
            " step's request, path and meta templates, checks origins, retries, hashes each"
            " object, fsyncs and renames it, and writes a manifest; the script writes each note"
            " with one fsspec call and nothing else",
        ),
        pair_figure(
            NAME,
            f"CPU per resource at concurrency {CONCURRENCY}",
            "ms",
            [1000 * r.cpu / count for r in default],
            [1000 * r.cpu / count for r in direct],
            higher=False,
            target=1.3,
            differs="the engine process's CPU (its HTTP API and status polls included) against"
            " the direct script's own process; each does what the throughput row says",
        ),
    ]

"""A 1 GiB file through modules/webdav: backed up from a real WebDAV server (WsgiDAV 4.4.0 on
cheroot) to a local folder and restored to it (under another folder) by a real `engine serve`
process, beside a direct script doing the same work in the same run (httpx streams the file
from WebDAV through zstd, at the engine's level, into a local file; and back, decompressed, in a
streamed PUT), engine and direct rounds interleaved. The engine's peak resident memory is taken
per round (one fresh process for a backup and a restore) at 64 MiB and at 1 GiB: only the size
differs. The file is seeded random bytes (as photos, archives and videos are: zstd stores them
as they are, at its fastest)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import zstandard

from bench import serving
from bench.core import ROOT, Context, Figure, median, pair_figure, rates
from engine.storage.transfers import CHUNK_SIZE, CODECS
from scripts import files, servers

NAME = "files"
TITLE = "One large file through WebDAV: backup and restore, and the engine's memory"
MODULE = ROOT / "modules" / "webdav"
USER, PASSWORD = "bench", "bench-password"
LEVEL = CODECS["zstd"].level
MIB = 1 << 20
FULL_RUNS = 3  # a 1 GiB round (engine and direct, each way) takes about a minute


@dataclass(frozen=True)
class Sizes:
    big: int
    small: int


FULL = Sizes(big=1 << 30, small=64 * MIB)
SMOKE = Sizes(big=4 * MIB, small=MIB)


@dataclass
class Samples:
    """Seconds per round of each way, and the engine's peak MiB per round, of one size."""

    engine_backup: list[float] = field(default_factory=list)
    engine_restore: list[float] = field(default_factory=list)
    direct_backup: list[float] = field(default_factory=list)
    direct_restore: list[float] = field(default_factory=list)
    peak: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Subject:
    """The file the rounds move: its top folder, its name, size and SHA-256."""

    top: str
    name: str
    size: int
    digest: str


@dataclass(frozen=True)
class Bench:
    """The running WebDAV server, where backups land, and the engine's environment."""

    webdav: servers.WebdavServer
    out: Path
    logs: Path

    @property
    def auth(self) -> dict[str, Any]:
        settings = {"server_url": self.webdav.url, "username": USER, "password_secret": PASSWORD}
        return {"settings": settings}

    @property
    def env(self) -> dict[str, str]:
        return {"ENGINE_STORAGE_ALLOW": f"file://{self.out}"}

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.webdav.url, auth=(USER, PASSWORD), timeout=300, trust_env=False
        )

    def clean(self, *names: str) -> None:
        """Remove what a round wrote (backups and restored copies), and flush the disk."""
        for path in [self.out / name for name in names] + [self.webdav.root / "restored"]:
            shutil.rmtree(path, ignore_errors=True)
        os.sync()


# --------------------------------------------------------------------------- the direct script


def _direct_backup(bench: Bench, top: str, name: str, to: Path) -> None:
    """GET the file, streamed through zstd into a local file (what a hand-written module does)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    compressor = zstandard.ZstdCompressor(level=LEVEL)
    with (
        bench.client() as client,
        client.stream("GET", files.href(f"/{top}/{name}")) as answer,
        to.open("wb") as file,
        compressor.stream_writer(file, closefd=False) as sink,
    ):
        answer.raise_for_status()
        for chunk in answer.iter_raw(CHUNK_SIZE):
            sink.write(chunk)
        sink.flush(zstandard.FLUSH_FRAME)
        file.flush()
        os.fsync(file.fileno())


def _direct_restore(bench: Bench, top: str, name: str, source: Path, size: int) -> None:
    """MKCOL the folders, then PUT the local file back, decompressed as it streams."""

    def chunks() -> Iterator[bytes]:
        with source.open("rb") as file, zstandard.ZstdDecompressor().stream_reader(file) as data:
            while chunk := data.read(CHUNK_SIZE):
                yield chunk

    with bench.client() as client:
        for folder in ("/restored", f"/restored/{top}"):
            client.request("MKCOL", files.href(folder) + "/").raise_for_status()
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        path = files.href(f"/restored/{top}/{name}")
        client.put(path, content=chunks(), headers=headers).raise_for_status()


# --------------------------------------------------------------------------- the engine


def _engine_round(bench: Bench, top: str, run: str) -> tuple[float, float, float]:
    """A backup of the top folder, then its restore under /restored, by one fresh engine
    process: (backup seconds, restore seconds, the process's peak MiB)."""
    storage = {"url": f"file://{bench.out / run}"}
    with serving.start_engine(MODULE, bench.logs, bench.env) as engine:
        ctx = serving.roots(engine.url, bench.auth)[f"/{top}"]
        backup = serving.backup(engine.url, bench.auth, ctx, storage)
        start = {"taskUuid": str(uuid.uuid4()), "auth": bench.auth, "ctx": ctx}
        start |= {"storage": storage, "scenario": "AS_NEW", "options": {"folder": "/restored"}}
        with httpx.Client(base_url=engine.url, timeout=60, trust_env=False) as http:
            restore = serving.run_task(http, "/api/restore", start)
        peak = serving.peak_mib(engine.process.pid)
    return backup.seconds, restore.seconds, peak


def _check(bench: Bench, subject: Subject) -> None:
    """Fail unless the restored copy has the original's bytes."""
    got = files.sha256_of(bench.webdav.root / "restored" / subject.top / subject.name)
    if got != subject.digest:
        raise RuntimeError(f"the restored {subject.name} differs ({got} != {subject.digest})")


def _round(bench: Bench, subject: Subject, samples: Samples) -> None:
    """One engine round, then one direct round, each checked and cleaned up."""
    top, name = subject.top, subject.name
    run = f"engine-{uuid.uuid4().hex[:8]}"
    backup, restore, peak = _engine_round(bench, top, run)
    _check(bench, subject)
    samples.engine_backup.append(backup)
    samples.engine_restore.append(restore)
    samples.peak.append(peak)
    bench.clean(run)
    local = bench.out / "direct" / f"{name}.zst"
    samples.direct_backup.append(_timed(lambda: _direct_backup(bench, top, name, local)))
    samples.direct_restore.append(
        _timed(lambda: _direct_restore(bench, top, name, local, subject.size))
    )
    _check(bench, subject)
    bench.clean("direct")


def _timed(action: Callable[[], None]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _measure(bench: Bench, size: int, runs: int) -> Samples:
    """Rounds over one file of size bytes in its own top folder (removed afterwards)."""
    top, name = f"bench {size}", "file ✓.bin"
    digest = files.write_random(bench.webdav.root / top / name, size, f"bench {size}")
    samples = Samples()
    try:
        for _ in range(runs):
            _round(bench, Subject(top, name, size, digest), samples)
    finally:
        shutil.rmtree(bench.webdav.root / top)
    return samples


def run(context: Context) -> list[Figure]:
    """The throughput of each way at the big size, and the peak memory at both sizes."""
    sizes = SMOKE if context.smoke else FULL
    folder = context.workdir / NAME
    runs = min(context.runs, FULL_RUNS)
    try:
        with servers.start_webdav(folder / "webdav", {USER: PASSWORD}) as webdav:
            bench = Bench(webdav, folder / "out", folder / "logs")
            big = _measure(bench, sizes.big, runs)
            small = _measure(bench, sizes.small, runs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _figures(sizes, big, small)


ENGINE_EXTRAS = (
    "the engine runs a task (HTTP API, status polls, journal), hashes every byte (SHA-256) and"
    " checks it on restore, commits each object whole with a manifest; the script streams"
    " through zstd and nothing else"
)


def _figures(sizes: Sizes, big: Samples, small: Samples) -> list[Figure]:
    def speed(measure: str, engine: list[float], direct: list[float]) -> Figure:
        ours, theirs = rates(sizes.big / 1e6, engine), rates(sizes.big / 1e6, direct)
        return pair_figure(NAME, measure, "MB/s", ours, theirs, target=0.9, differs=ENGINE_EXTRAS)

    size, small_size = _size(sizes.big), _size(sizes.small)
    return [
        speed(f"backup of {size}", big.engine_backup, big.direct_backup),
        speed(f"restore of {size}", big.engine_restore, big.direct_restore),
        Figure(NAME, f"peak memory, backup and restore of {size}", "MiB", median(big.peak),
               median(small.peak), baseline_name=f"engine, {small_size}", higher=False,
               target=1.2, limit=200),
    ]  # fmt: skip


def _size(count: int) -> str:
    return f"{count / (1 << 30):g} GiB" if count >= 1 << 30 else f"{count / MIB:g} MiB"

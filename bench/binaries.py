"""Large binaries: 2 GiB of files (8 x 256 MiB) backed up by a real `engine serve` process from a
plain HTTP file server (bench/modules/files: one `download` step, one object per listed file) to
a local folder and to S3 (moto), beside a direct script doing the same work (httpx, zstandard at
the engine's level, fsspec, as many files at once as the engine), and beside `cp` (local only).
The engine's peak resident memory is compared between a 256 MiB backup and a 2 GiB backup of
the same shape (8 files), so only the size differs.

The data: half random bytes (as already-compressed attachments are: photos, PDFs, archives),
half CSV-like text rows (as exports and logs are), interleaved in 4 KiB pieces, so zstd sees
both kinds in every block and stores about 70% of the raw size. Each file is a 32 MiB palette of
such pieces, rotated per file and repeated: repeats are 32 MiB apart, beyond zstd's window at
the engine's level, so they compress as fresh data would.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
import fsspec.asyn  # type: ignore[import-untyped]  # as above
import httpx
import zstandard

from bench import serving
from bench.core import ROOT, Context, Figure, median
from engine.storage.transfers import CHUNK_SIZE, CODECS
from scripts import servers

NAME = "binaries"
TITLE = "Large binaries: 2 GiB of files streamed to storage, and the engine's memory"
MODULE = ROOT / "bench" / "modules" / "files"
CONCURRENCY = 8  # the language's default connection.concurrency (docs/language.md)
LEVEL = CODECS["zstd"].level
PIECE = 4096
# A local run takes about a minute (zstd on this data runs at 70-90 MB/s a core), an S3 one two
# (moto is slower still): these caps keep the suite within its 20 minutes.
LOCAL_RUNS = 3
S3_RUNS = 2
S3_KEY, S3_SECRET = "bench-key", "bench-secret"  # moto takes any
BUCKET = "bench"
MIB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    """How many files of what size each drive holds, and the palette they are cut from."""

    files: int
    big: int  # bytes per file of the large backup
    small: int  # bytes per file of the small backup (the memory comparison)
    palette: int


FULL = Sizes(files=8, big=256 * MIB, small=32 * MIB, palette=32 * MIB)
SMOKE = Sizes(files=4, big=MIB, small=256 * 1024, palette=256 * 1024)


@dataclass(frozen=True)
class Target:
    """Where backups land: a storage URL prefix, its fsspec filesystem and path, and what the
    engine's request carries."""

    name: str
    url: str  # a prefix; each run writes below it
    fs: Any
    path: str

    def storage(self, run: str) -> dict[str, Any]:
        """The request's ``storage`` for one run."""
        return {"url": f"{self.url}/{run}"}

    def remove(self, run: str) -> None:
        """Remove what a run wrote (and flush the disk's cache: the next run starts clean)."""
        if self.fs.exists(f"{self.path}/{run}"):
            self.fs.rm(f"{self.path}/{run}", recursive=True)
        os.sync()

    def manifest(self, run: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.fs.cat_file(f"{self.path}/{run}/manifest.json"))
        return found


@dataclass
class Samples:
    """The measurements of one target, one list per quantity, in runs."""

    engine: list[float]  # seconds of the large backup
    direct: list[float]
    peak_big: list[float]  # MiB
    peak_small: list[float]


# --------------------------------------------------------------------------- the data


def _rows(rng: random.Random, size: int) -> bytes:
    """CSV-like text rows, about size bytes."""
    statuses = ("paid", "open", "void", "refunded", "overdue")
    cities = ("Amsterdam", "Berlin", "Lisbon", "Prague", "Vienna", "Zagreb", "Oslo")
    out = bytearray()
    while len(out) < size:
        line = (
            f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:00Z,user-{rng.randint(1, 99999)},"
            f"INV-{rng.randint(1, 999999):06d},{rng.choice(statuses)},"
            f"{rng.randint(1, 99999) / 100:.2f},{rng.choice(cities)}\n"
        )
        out += line.encode()
    return bytes(out[:size])


def _palette(size: int) -> bytes:
    """size bytes of 4 KiB pieces, random bytes and text rows in turn."""
    rng = random.Random(20250101)
    noise, text = rng.randbytes(size // 2), _rows(rng, size // 2)
    pieces = (
        part[start : start + PIECE]
        for start in range(0, size // 2, PIECE)
        for part in (noise, text)
    )
    return b"".join(pieces)


def _write_drive(folder: Path, files: int, size: int, palette: bytes) -> None:
    folder.mkdir(parents=True)
    index = []
    for number in range(files):
        name = f"file-{number}.bin"
        shift = (number * 7919 * PIECE) % len(palette)
        rotated = palette[shift:] + palette[:shift]
        with (folder / name).open("wb") as file:
            for start in range(0, size, len(rotated)):
                file.write(rotated[: size - start])
        index.append({"name": name, "size": size})
    (folder / "index.json").write_text(json.dumps(index))


def _make_source(folder: Path, sizes: Sizes) -> None:
    """The file server's folder: drives.json, and drives big and small."""
    palette = _palette(sizes.palette)
    _write_drive(folder / "big", sizes.files, sizes.big, palette)
    _write_drive(folder / "small", sizes.files, sizes.small, palette)
    (folder / "drives.json").write_text(json.dumps([{"id": "big"}, {"id": "small"}]))


def _start_file_server(folder: Path, logs: Path) -> servers.Server:
    port = servers.free_port()
    url = f"http://{servers.HOST}:{port}"
    argv = [sys.executable, "-m", "http.server", "--bind", servers.HOST, str(port)]
    return servers.start_process(
        "files",
        [*argv, "--directory", folder],
        url=url,
        health_url=f"{url}/drives.json",
        log_path=logs / "files.log",
    )


# --------------------------------------------------------------------------- the direct script


def _direct(source: str, drive: str, fs: Any, root: str) -> None:
    """What a hand-written module would do: list the drive, then stream each file through zstd
    into its own object, CONCURRENCY files at a time."""
    with httpx.Client(base_url=source, timeout=120, trust_env=False) as client:
        names = [entry["name"] for entry in client.get(f"/{drive}/index.json").json()]

        def copy(name: str) -> None:
            compressor = zstandard.ZstdCompressor(level=LEVEL)
            with (
                client.stream("GET", f"/{drive}/{name}") as answer,
                fs.open(f"{root}/files/{name}.zst", "wb") as file,
                compressor.stream_writer(file, closefd=False) as sink,
            ):
                answer.raise_for_status()
                for chunk in answer.iter_raw(CHUNK_SIZE):
                    sink.write(chunk)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(copy, names))


def _cp(source: Path, destination: Path) -> None:
    """cp of the files, then sync of the copies: on disk, as the engine's objects are at DONE."""
    subprocess.run(["cp", "-r", source, destination], check=True)
    subprocess.run(["sync", *destination.iterdir()], check=True)


# --------------------------------------------------------------------------- the engine


def _engine_run(
    folder: Path, target: Target, env: dict[str, str], drive: str, run: str
) -> tuple[float, float]:
    """One backup of a drive by a fresh engine process: (seconds, peak MiB of the process)."""
    with serving.start_engine(MODULE, folder / "logs", env) as engine:
        auth = {"settings": {"server_url": env["BENCH_FILES_URL"]}}
        ctx = serving.roots(engine.url, auth)[drive]
        done = serving.backup(engine.url, auth, ctx, target.storage(run))
        peak = serving.peak_mib(engine.process.pid)
    _check(target, run, folder / "source" / drive)
    return done.seconds, peak


def _check(target: Target, run: str, drive: Path) -> None:
    """Fail unless the manifest lists every file of the drive with its raw size."""
    objects = target.manifest(run)["objects"]
    want = {f"files/{path.name}.zst": path.stat().st_size for path in drive.glob("*.bin")}
    got = {entry["path"]: entry["rawSize"] for entry in objects}
    if got != want:
        raise RuntimeError(f"the backup in {target.url}/{run} holds {got}, not {want}")


# --------------------------------------------------------------------------- measuring


def _measure(
    folder: Path, target: Target, env: dict[str, str], runs: int, source_url: str
) -> Samples:
    """Each run: the engine backs up both drives (each in a fresh process, for its peak), then
    the direct script the big one. Written data is removed and flushed between runs, so no run
    pays for an earlier one's writes."""
    samples = Samples([], [], [], [])
    for number in range(runs):
        for drive, peaks in (("big", samples.peak_big), ("small", samples.peak_small)):
            run = f"engine-{drive}-{number}"
            seconds, peak = _engine_run(folder, target, env, drive, run)
            target.remove(run)
            peaks.append(peak)
            if drive == "big":
                samples.engine.append(seconds)
        run = f"direct-{number}"
        began = time.perf_counter()
        _direct(source_url, "big", target.fs, f"{target.path}/{run}")
        samples.direct.append(time.perf_counter() - began)
        target.remove(run)
    return samples


def _cp_seconds(folder: Path, runs: int) -> float:
    def once() -> float:
        destination = folder / "out" / "cp"
        began = time.perf_counter()
        _cp(folder / "source" / "big", destination)
        elapsed = time.perf_counter() - began
        shutil.rmtree(destination)
        return elapsed

    return median(once() for _ in range(runs))


@contextmanager
def _s3_target(folder: Path) -> Iterator[tuple[Target, dict[str, Any]]]:
    """A bucket on a fresh moto server, and the engine's storage options for it."""
    with servers.start_moto(folder) as moto:
        options = {"key": S3_KEY, "secret": S3_SECRET, "client_kwargs": {"endpoint_url": moto.url}}
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
        fs.mkdir(BUCKET)
        try:
            yield Target("S3 (moto)", f"s3://{BUCKET}", fs, BUCKET), options
        finally:
            if getattr(fs, "_s3creator", None) is not None:  # close its aiohttp session
                fsspec.asyn.sync(fs.loop, fs._s3creator.__aexit__, None, None, None)


def run(context: Context) -> list[Figure]:
    """Both targets' throughput and memory figures: medians of the context's runs, at most
    LOCAL_RUNS to the local folder and S3_RUNS to S3."""
    sizes = SMOKE if context.smoke else FULL
    folder = context.workdir / NAME
    _make_source(folder / "source", sizes)
    out = folder / "out"
    local = Target(
        "a local folder", f"file://{out}", fsspec.filesystem("file", auto_mkdir=True), str(out)
    )
    try:
        with (
            _start_file_server(folder / "source", folder / "logs") as files,
            _s3_target(folder) as (s3, options),
        ):
            env = {
                "BENCH_FILES_URL": files.url,
                "ENGINE_STORAGE_ALLOW": f"{local.url},{s3.url}",
                "ENGINE_STORAGE_OPTIONS": json.dumps({"s3": options}),
            }
            measured = [
                (local, _measure(folder, local, env, min(context.runs, LOCAL_RUNS), files.url)),
                (s3, _measure(folder, s3, env, min(context.runs, S3_RUNS), files.url)),
            ]
            cp = _cp_seconds(folder, context.runs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _figures(sizes, measured, cp)


def _figures(sizes: Sizes, measured: list[tuple[Target, Samples]], cp: float) -> list[Figure]:
    total = sizes.files * sizes.big
    size = _size(total)

    def rate(seconds: list[float]) -> float:
        return total / median(seconds) / 1e6

    [(_, local), (_, s3)] = measured
    figures = [
        Figure(
            NAME,
            f"{size} to a local folder",
            "MB/s",
            rate(local.engine),
            rate(local.direct),
            target=0.9,
            note="the engine fsyncs each object before its rename, the script does not",
        ),
        Figure(
            NAME,
            f"{size} to a local folder, against cp",
            "MB/s",
            rate(local.engine),
            total / cp / 1e6,
            baseline_name="cp + sync",
            note="the disk's limit: no compression",
        ),
        Figure(NAME, f"{size} to S3 (moto)", "MB/s", rate(s3.engine), rate(s3.direct), target=0.9),
    ]
    small = _size(sizes.files * sizes.small)
    for target, samples in measured:
        figures.append(
            Figure(
                NAME,
                f"peak memory, {size} to {target.name}",
                "MiB",
                median(samples.peak_big),
                median(samples.peak_small),
                baseline_name=f"engine, {small}",
                higher=False,
                target=1.2,
                limit=200,
            )
        )
    return figures


def _size(count: int) -> str:
    return f"{count / (1 << 30):g} GiB" if count >= 1 << 30 else f"{count / MIB:g} MiB"

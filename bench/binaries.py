"""Large binaries: 2 GiB of files (8 x 256 MiB) backed up by a real `engine serve` process from a
plain HTTP file server (bench/modules/files: one `download` step, one object per listed file) to
a local folder and to S3 (moto), beside a direct script doing the same work (httpx, zstandard at
the engine's level, fsspec, as many files at once as the engine), and beside `cp` (local only).
The engine's peak resident memory is compared with the direct script's (run in a process of its
own, so its peak is its own), and between a 256 MiB backup and a 2 GiB backup of the same shape
(8 files), so only the size differs. Engine and direct rounds alternate (A B A B): each ratio
against the script is the median of the per-pair ratios.

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
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
import fsspec.asyn  # type: ignore[import-untyped]  # as above
import httpx
import zstandard

from bench import serving
from bench.core import ROOT, Context, Figure, median, pair_figure
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
S3_PART = 5 << 20  # the engine's S3 part size (engine/storage/locations.py)
MIB = 1 << 20
OPTIONS_VARIABLE = "BENCH_STORAGE_OPTIONS"  # the direct process's storage options


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
    options: dict[str, Any] = field(default_factory=dict)  # fsspec's, for the direct process

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

    engine: list[float] = field(default_factory=list)  # seconds of the large backup
    direct: list[float] = field(default_factory=list)
    peak_big: list[float] = field(default_factory=list)  # MiB
    peak_small: list[float] = field(default_factory=list)
    peak_direct: list[float] = field(default_factory=list)


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


def _direct_process(source: str, drive: str, target: Target, root: str) -> tuple[float, float]:
    """The direct script in a process of its own: (seconds of its transfer, its peak MiB). The
    target's storage options reach it in its environment, never on its command line."""
    argv = [sys.executable, "-m", "bench.binaries", source, drive, target.url, root]
    env = {**os.environ, OPTIONS_VARIABLE: json.dumps(target.options)}
    done = subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    seconds, peak = done.stdout.split()
    return float(seconds), float(peak)


def _direct_main(argv: list[str]) -> None:
    """`python -m bench.binaries SOURCE DRIVE URL ROOT`: one direct run; prints its seconds and
    its peak resident MiB."""
    source, drive, url, root = argv
    options = json.loads(os.environ.get(OPTIONS_VARIABLE, "{}"))
    fs = fsspec.filesystem(url.split("://")[0], **options)
    began = time.perf_counter()
    _direct(source, drive, fs, root)
    elapsed = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{elapsed} {peak}")


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
    """Each run: the engine backs up the big drive, the direct script (a process of its own)
    does too, then the engine backs up the small drive (each engine run in a fresh process, for
    its peak). Written data is removed and flushed between runs, so no run pays for an earlier
    one's writes."""
    samples = Samples()
    for number in range(runs):
        run = f"engine-big-{number}"
        seconds, peak = _engine_run(folder, target, env, "big", run)
        target.remove(run)
        samples.engine.append(seconds)
        samples.peak_big.append(peak)
        run = f"direct-{number}"
        seconds, peak = _direct_process(source_url, "big", target, f"{target.path}/{run}")
        target.remove(run)
        samples.direct.append(seconds)
        samples.peak_direct.append(peak)
        run = f"engine-small-{number}"
        samples.peak_small.append(_engine_run(folder, target, env, "small", run)[1])
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
            # the direct script writes parts of the engine's size (s3fs's default is 50 MiB)
            direct = {**options, "default_block_size": S3_PART}
            yield Target("S3 (moto)", f"s3://{BUCKET}", fs, BUCKET, direct), options
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
        "a local folder",
        f"file://{out}",
        fsspec.filesystem("file", auto_mkdir=True),
        str(out),
        {"auto_mkdir": True},
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


ENGINE_EXTRAS = (
    "the engine runs a task (HTTP API, status polls, journal), hashes every stored byte"
    " (SHA-256), and commits each object whole (local: fsync and rename; S3: its own multipart"
    " upload within a byte budget) with a manifest; the script streams each file through zstd"
    " into fsspec and nothing else"
)


def _figures(sizes: Sizes, measured: list[tuple[Target, Samples]], cp: float) -> list[Figure]:
    total = sizes.files * sizes.big
    size = _size(total)

    def speeds(seconds: list[float]) -> list[float]:
        return [total / second / 1e6 for second in seconds]

    def speed(name: str, samples: Samples) -> Figure:
        engine, direct = speeds(samples.engine), speeds(samples.direct)
        measure = f"{size} to {name}"
        return pair_figure(NAME, measure, "MB/s", engine, direct, target=0.9, differs=ENGINE_EXTRAS)

    [(_, local), (_, s3)] = measured
    figures = [
        speed("a local folder", local),
        Figure(
            NAME,
            f"{size} to a local folder, against cp",
            "MB/s",
            median(speeds(local.engine)),
            total / cp / 1e6,
            baseline_name="cp + sync",
            note="the disk's limit: no compression",
        ),
        speed("S3 (moto)", s3),
    ]
    small = _size(sizes.files * sizes.small)
    for target, samples in measured:
        figures += [
            pair_figure(
                NAME,
                f"peak memory, {size} to {target.name}",
                "MiB",
                samples.peak_big,
                samples.peak_direct,
                baseline_name="direct script",
                higher=False,
                limit=200,
                differs="the engine process also holds its web app, the language, the module,"
                " and the task's journal; the script imports only httpx, zstd and fsspec",
            ),
            Figure(
                NAME,
                f"peak memory, {size} against {small} to {target.name}",
                "MiB",
                median(samples.peak_big),
                median(samples.peak_small),
                baseline_name=f"engine, {small}",
                higher=False,
                target=1.2,
                note="flatness: only the size differs",
            ),
        ]
    return figures


def _size(count: int) -> str:
    return f"{count / (1 << 30):g} GiB" if count >= 1 << 30 else f"{count / MIB:g} MiB"


if __name__ == "__main__":
    _direct_main(sys.argv[1:])

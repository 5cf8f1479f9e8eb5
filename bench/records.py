"""Records: backing up one Kinto collection through a separate `engine serve` process (start
call, then /api/status polled every 50 ms), beside a direct script doing the same transfer with
the same libraries and settings (httpx.AsyncClient following Next-Page, the records as zstd JSON
Lines written through fsspec to a local folder), and beside the raw page fetch, Kinto's limit.
Both baselines pipeline as the engine does: the next page is asked for as soon as this one's
headers are in, while this one is read, parsed and written (the writing in a worker thread, as
the engine's storage writes). Rounds run in pairs (engine, direct, raw; again): each ratio is the
median of the per-pair ratios.

The throughput figure uses the listing-only path (`with_permissions: false`). With permissions
the module reads every record on its own (one GET each, 8 at a time), which costs Kinto far more:
that figure is measured on a smaller collection in a Kinto of its own, and only reported."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
import httpx
import zstandard

from bench import harness, serving
from bench.core import Context, Figure, median, pair_ratios, rates, seconds
from scripts import servers

NAME = "records"
TITLE = "Records: backing up one Kinto collection"
RECORDS = {"full": 20_000, "smoke": 200}
PAGE = {"full": 1000, "smoke": 50}  # Kinto's paginate_by
WITH_PERMISSIONS = {"full": 2_000, "smoke": 30}
COMPRESSION_LEVEL = 3  # the engine's zstd level (storage/transfers.py CODECS, backup COMPRESSION)
CONCURRENCY = 8  # the Kinto module's connection.concurrency (the engine's default)
BUCKET, COLLECTION = "b000", "c000"  # what servers.seed_kinto names the first ones
ENGINE_EXTRAS = (
    "the engine runs a task (HTTP API, status polls, journal), renders the step's templates,"
    " checks each request's origin, retries, hashes what it stores (SHA-256), fsyncs and renames"
    " the object and writes a manifest; the script does none of that"
)


@dataclass(frozen=True)
class Source:
    """A seeded Kinto, the API of an engine serving modules/kinto, and where backups go."""

    kinto: servers.KintoServer
    http: httpx.Client
    ctx: dict[str, Any]
    folder: Path  # in the engine's allowed storage; each run writes a fresh place below it
    records: int

    def place(self, name: str) -> Path:
        path = self.folder / name
        shutil.rmtree(path, ignore_errors=True)
        return path


# --------------------------------------------------------------------------- the engine


def engine_backup(source: Source, *, with_permissions: bool) -> float:
    """One backup task through the API; its seconds. Checks that every record was stored."""
    place = source.place("engine")
    body = harness.new_task(harness.auth_of(source.kinto), f"file://{place}", source.ctx)
    body["options"] = {"with_permissions": with_permissions}
    elapsed = serving.run_task(source.http, "/api/backup", body).seconds
    manifest = json.loads((place / "manifest.json").read_text())
    stored = sum(
        entry.get("records", 0) for entry in manifest["objects"] if "records" in entry["step"]
    )
    if stored != source.records:
        raise RuntimeError(f"the engine stored {stored} records of {source.records}")
    return elapsed


# --------------------------------------------------------------------------- direct baselines


def kinto_client(kinto: servers.KintoServer) -> httpx.AsyncClient:
    """The engine's client settings (engine/saas/client.py, the module's connection)."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(
        base_url=kinto.url,
        auth=kinto.admin,
        headers={"Accept": "application/json"},
        timeout=httpx.Timeout(60, connect=10),
        limits=limits,
        follow_redirects=False,
        trust_env=False,
    )


def records_path(bucket: str, collection: str) -> str:
    return f"/buckets/{bucket}/collections/{collection}/records"


def json_lines(records: list[Any]) -> bytes:
    """Records as the engine writes them in a JSON Lines object."""
    lines = (json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    return "".join(lines).encode()


async def pages(client: httpx.AsyncClient, url: str) -> AsyncIterator[httpx.Response]:
    """Every page from url on, read whole; each next page asked for as soon as the headers of
    the one before are in (Next-Page), so Kinto works on it while this one is handled."""

    def ask(where: str) -> asyncio.Future[httpx.Response]:
        return asyncio.ensure_future(client.send(client.build_request("GET", where), stream=True))

    pending: asyncio.Future[httpx.Response] | None = ask(url)
    while pending is not None:
        answer = await pending
        answer.raise_for_status()
        following = answer.headers.get("Next-Page")
        pending = ask(following) if following else None
        await answer.aread()
        yield answer


async def direct_backup(source: Source) -> int:
    """The listing-only backup without the engine: every page's records, each wrapped as the
    module's selector `data[].{data: @}` does, into one zstd JSON Lines file written in a worker
    thread while the next page comes. The count."""
    fs = fsspec.filesystem("file", auto_mkdir=True)
    target = source.place("direct") / "records.jsonl.zst"
    count = 0
    async with kinto_client(source.kinto) as client:
        with fs.open(str(target), "wb") as file:
            compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)
            with compressor.stream_writer(file, closefd=False) as out:
                async for answer in pages(client, records_path(BUCKET, COLLECTION)):
                    page = answer.json()["data"]
                    lines = json_lines([{"data": record} for record in page])
                    await asyncio.to_thread(out.write, lines)
                    count += len(page)
    return count


async def direct_backup_with_permissions(source: Source) -> int:
    """The backup with permissions without the engine: each page listed, then each of its
    records read on its own by CONCURRENCY workers, the answers written as JSON Lines."""
    fs = fsspec.filesystem("file", auto_mkdir=True)
    target = source.place("direct") / "records.jsonl.zst"
    count = 0
    base = records_path(BUCKET, COLLECTION)
    async with kinto_client(source.kinto) as client:

        async def read(ids: list[str], into: dict[str, Any]) -> None:
            while ids:
                record_id = ids.pop()
                answer = await client.get(f"{base}/{record_id}")
                answer.raise_for_status()
                into[record_id] = answer.json()

        with fs.open(str(target), "wb") as file:
            compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)
            with compressor.stream_writer(file, closefd=False) as out:
                url: str | None = base
                while url:
                    answer = await client.get(url)
                    answer.raise_for_status()
                    ids = [record["id"] for record in answer.json()["data"]]
                    bodies: dict[str, Any] = {}
                    pending = list(reversed(ids))
                    await asyncio.gather(*(read(pending, bodies) for _ in range(CONCURRENCY)))
                    out.write(json_lines([bodies[record_id] for record_id in ids]))
                    count += len(ids)
                    url = answer.headers.get("Next-Page")
    return count


async def raw_fetch(source: Source) -> int:
    """Kinto's limit: every page fetched, pipelined as above, nothing parsed but the Next-Page
    header, nothing written. The bytes read."""
    size = 0
    async with kinto_client(source.kinto) as client:
        async for answer in pages(client, records_path(BUCKET, COLLECTION)):
            size += len(answer.content)
    return size


def timed(source: Source, direct: Callable[[Source], Coroutine[Any, Any, int]]) -> float:
    """Seconds of one direct run (checking it saw every record, when it counts them)."""
    result: list[int] = []
    elapsed = seconds(lambda: result.append(asyncio.run(direct(source))))
    if direct is not raw_fetch and result[0] != source.records:
        raise RuntimeError(f"{direct.__name__} saw {result[0]} records of {source.records}")
    return elapsed


# --------------------------------------------------------------------------- the run


@contextmanager
def _source(
    context: Context, http: httpx.Client, name: str, records: int, page: int
) -> Iterator[Source]:
    """A Kinto of its own with one collection of ``records`` records, stopped on the way out."""
    folder = context.workdir / NAME
    with servers.start_kinto(folder / name, paginate_by=page) as kinto:
        servers.seed_kinto(
            kinto.url, kinto.admin, buckets=1, collections=1, groups=0, records=records
        )
        ctx = harness.collection_ctx(http, harness.auth_of(kinto), BUCKET, COLLECTION)
        yield Source(kinto, http, ctx, folder / "backups" / name, records)


def _listing_figures(context: Context, http: httpx.Client) -> list[Figure]:
    size = "smoke" if context.smoke else "full"
    records, page = RECORDS[size], PAGE[size]
    engine: list[float] = []
    direct: list[float] = []
    raw: list[float] = []
    with _source(context, http, "listing", records, page) as source:
        if not context.smoke:  # a first round untimed: connections, caches, lazy imports
            engine_backup(source, with_permissions=False)
            timed(source, direct_backup)
        for _ in range(context.runs):  # interleaved, so a noisy moment hits all three alike
            engine.append(engine_backup(source, with_permissions=False))
            direct.append(timed(source, direct_backup))
            raw.append(timed(source, raw_fetch))
    note = f"{records:,} records, pages of {page:,}, with_permissions: false"
    speed = rates(records, engine)
    return [
        Figure(
            NAME,
            "backup throughput",
            "records/s",
            median(speed),
            median(rates(records, direct)),
            baseline_name="direct httpx + zstd + fsspec, pipelined",
            target=0.9,
            note=note,
            ratios=pair_ratios(speed, rates(records, direct)),
            differs=ENGINE_EXTRAS,
        ),
        Figure(
            NAME,
            "backup vs Kinto's raw page fetch, pipelined (the limit)",
            "records/s",
            median(speed),
            median(rates(records, raw)),
            baseline_name="pages fetched, not parsed nor written",
            ratios=pair_ratios(speed, rates(records, raw)),
            differs="the raw fetch parses nothing and writes nothing: the most Kinto gives",
        ),
    ]


def _permissions_figure(context: Context, http: httpx.Client) -> Figure:
    size = "smoke" if context.smoke else "full"
    records = WITH_PERMISSIONS[size]
    engine: list[float] = []
    direct: list[float] = []
    with _source(context, http, "permissions", records, PAGE[size]) as source:
        for _ in range(context.runs):  # interleaved
            engine.append(engine_backup(source, with_permissions=True))
            direct.append(timed(source, direct_backup_with_permissions))
    speed, baseline = rates(records, engine), rates(records, direct)
    return Figure(
        NAME,
        "backup with permissions, one GET per record",
        "records/s",
        median(speed),
        median(baseline),
        baseline_name=f"direct, {CONCURRENCY} concurrent GETs",
        note=f"{records:,} records in a Kinto of their own",
        ratios=pair_ratios(speed, baseline),
        differs=ENGINE_EXTRAS,
    )


def run(context: Context) -> list[Figure]:
    """The listing-only backup beside its direct baseline and Kinto's limit, then the backup
    with permissions beside its own direct baseline; one engine process serves both Kintos."""
    backups = context.workdir / NAME / "backups"
    backups.mkdir(parents=True, exist_ok=True)
    env = {"ENGINE_STORAGE_ALLOW": f"file://{backups}"}
    with (
        harness.start_engine(context.workdir / NAME, env) as engine,
        harness.api_client(engine) as http,
    ):
        return [*_listing_figures(context, http), _permissions_figure(context, http)]

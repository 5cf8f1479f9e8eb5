"""Restore: one Kinto collection's records written back in place, into the emptied collection,
through a separate `engine serve` process, beside a direct script making the same writes with
the same libraries and settings: the backup's manifest read and its objects' SHA-256 checked,
the collection PUT, then one PUT per record with `If-None-Match: *`, as many at once as the
module's connection.concurrency allows, through the engine's httpx client settings.

Kinto's memory backend scans its whole permission store on each record write, so a write costs
more as the collection fills: both sides pay that alike. The figure is only reported."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import zstandard

from bench import harness, records, serving
from bench.core import Context, Figure, median, pair_ratios, rates, seconds
from scripts import servers

NAME = "restore"
TITLE = "Restore: writing one Kinto collection back"
RECORDS = {"full": 20_000, "smoke": 100}
MAX_RUNS = 3  # a full run writes 20,000 records twice in a few minutes: 3 runs bound the wait
BUCKET, COLLECTION = records.BUCKET, records.COLLECTION


@dataclass(frozen=True)
class Target:
    """A Kinto, the API of an engine serving modules/kinto, and a complete backup of the
    collection (made by that engine)."""

    kinto: servers.KintoServer
    http: httpx.Client
    ctx: dict[str, Any]
    backup: Path
    records: int

    def empty(self) -> None:
        """Delete the collection (its records with it), as a user losing it would."""
        with kinto_sync(self.kinto) as client:
            client.delete(f"/buckets/{BUCKET}/collections/{COLLECTION}").raise_for_status()

    def count(self) -> int:
        """The records the collection holds."""
        with kinto_sync(self.kinto) as client:
            answer = client.head(f"{records.records_path(BUCKET, COLLECTION)}?_limit=1")
            answer.raise_for_status()
            return int(answer.headers["Total-Objects"])


def kinto_sync(kinto: servers.KintoServer) -> httpx.Client:
    return httpx.Client(base_url=kinto.url, auth=kinto.admin, timeout=60, trust_env=False)


# --------------------------------------------------------------------------- the engine


def engine_restore(target: Target) -> float:
    """One in-place restore task through the API, into the emptied collection; its seconds."""
    target.empty()
    auth = harness.auth_of(target.kinto)
    body = harness.new_task(auth, f"file://{target.backup}", target.ctx)
    body["scenario"] = "IN_PLACE"
    elapsed = serving.run_task(target.http, "/api/restore", body).seconds
    _check(target, "the engine")
    return elapsed


def _check(target: Target, who: str) -> None:
    found = target.count()
    if found != target.records:
        raise RuntimeError(f"{who} restored {found} records of {target.records}")


# --------------------------------------------------------------------------- the baseline


def _objects(backup: Path) -> dict[str, bytes]:
    """Every object of the backup by its step, after checking it against the manifest."""
    manifest = json.loads((backup / "manifest.json").read_bytes())
    found: dict[str, bytes] = {}
    for entry in manifest["objects"]:
        data = (backup / entry["path"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise RuntimeError(f"{entry['path']}: checksum mismatch")
        found[entry["step"]] = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return found


def _lines(data: bytes) -> Iterator[Any]:
    return (json.loads(line) for line in data.splitlines() if line.strip())


async def direct_restore(target: Target) -> int:
    """The same writes without the engine; the number of records written."""
    objects = _objects(target.backup)
    collection = json.loads(objects["collection"])
    base = f"/buckets/{quote(BUCKET, safe='')}/collections/{quote(COLLECTION, safe='')}"
    headers = {"If-None-Match": "*", "Content-Type": "application/json"}
    written = 0
    async with records.kinto_client(target.kinto) as client:

        async def put(path: str, body: Any) -> bool:
            """Whether it was written (412: it exists, skipped)."""
            answer = await client.put(path, content=json.dumps(body).encode(), headers=headers)
            if answer.status_code == 412:
                return False
            answer.raise_for_status()
            return True

        data = collection["data"] | {"id": COLLECTION}
        await put(base, {"data": data, "permissions": collection["permissions"]})
        queue = _lines(objects["records_without_permissions"])

        async def worker() -> None:
            nonlocal written
            for record in queue:  # one shared iterator: each record goes to one worker
                path = f"{base}/records/{quote(record['data']['id'], safe='')}"
                if await put(path, {"data": record["data"], "permissions": {}}):
                    written += 1  # after the await: no other worker runs between read and write

        await asyncio.gather(*(worker() for _ in range(records.CONCURRENCY)))
    return written


def direct(target: Target) -> float:
    """One direct restore into the emptied collection; its seconds."""
    target.empty()
    written: list[int] = []
    elapsed = seconds(lambda: written.append(asyncio.run(direct_restore(target))))
    if written[0] != target.records:
        raise RuntimeError(f"the direct restore wrote {written[0]} of {target.records}")
    _check(target, "the direct restore")
    return elapsed


# --------------------------------------------------------------------------- the run


def _backup(http: httpx.Client, kinto: servers.KintoServer, folder: Path) -> dict[str, Any]:
    """Back the collection up (listing only: records without permissions) into folder; the
    collection's ctx."""
    auth = harness.auth_of(kinto)
    ctx = harness.collection_ctx(http, auth, BUCKET, COLLECTION)
    body = harness.new_task(auth, f"file://{folder}", ctx)
    body["options"] = {"with_permissions": False}
    serving.run_task(http, "/api/backup", body)
    return ctx


def run(context: Context) -> list[Figure]:
    """The in-place restore through the engine beside the direct one, interleaved."""
    count = RECORDS["smoke" if context.smoke else "full"]
    folder = context.workdir / NAME
    backups = folder / "backups"
    backups.mkdir(parents=True, exist_ok=True)
    env = {"ENGINE_STORAGE_ALLOW": f"file://{backups}"}
    engine: list[float] = []
    baseline: list[float] = []
    with (
        servers.start_kinto(folder, paginate_by=1000) as kinto,
        harness.start_engine(folder, env) as server,
        harness.api_client(server) as http,
    ):
        servers.seed_kinto(
            kinto.url, kinto.admin, buckets=1, collections=1, groups=0, records=count
        )
        ctx = _backup(http, kinto, backups / "source")
        target = Target(kinto, http, ctx, backups / "source", count)
        for _ in range(min(context.runs, MAX_RUNS)):  # interleaved: noise hits both alike
            engine.append(engine_restore(target))
            baseline.append(direct(target))
    speed, script = rates(count, engine), rates(count, baseline)
    return [
        Figure(
            NAME,
            "restore in place",
            "records/s",
            median(speed),
            median(script),
            ratios=pair_ratios(speed, script),
            differs="the engine runs a task, reads and checks the backup's manifest and hashes,"
            " renders each record's request and journals its progress; the script PUTs the"
            " records it reads from the file",
            baseline_name=f"direct, {records.CONCURRENCY} concurrent PUTs",
            note=f"{count:,} records into the emptied collection, median of"
            f" {min(context.runs, MAX_RUNS)} runs",
        )
    ]

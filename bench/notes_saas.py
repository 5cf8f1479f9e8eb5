"""The SaaS side of the small-resources benchmark, each run as its own process (so its CPU is not
the benchmark's): a notes SaaS (Starlette) whose workspace holds many small JSON notes behind a
paged listing, and a TCP proxy that holds every answer a fixed time, as the network to a remote
SaaS would.

`python -m bench.notes_saas notes --port P --count N` and
`python -m bench.notes_saas delay --port P --upstream HOST:PORT --seconds S`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOST = "127.0.0.1"
WORKSPACE = "ws-1"
MAX_PAGE = 1000
VOCABULARY = (
    "invoice meeting roadmap budget review draft customer release sprint backlog "
    "design quarterly estimate contract onboarding migration incident summary follow-up decision"
)
WORDS = VOCABULARY.split()
READ_SIZE = 65536


def note(index: int) -> dict[str, Any]:
    """Note number index: about 3 KiB of JSON, the same in every run."""
    rng = random.Random(index)
    paragraphs = [" ".join(rng.choices(WORDS, k=60)) for _ in range(5)]
    return {
        "id": f"n{index:05d}",
        "workspace": WORKSPACE,
        "title": " ".join(rng.choices(WORDS, k=4)).capitalize(),
        "created": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T09:00:00Z",
        "author": {"id": f"u{rng.randint(1, 500):04d}", "name": f"User {rng.randint(1, 500)}"},
        "tags": rng.sample(WORDS, 3),
        "body": "\n\n".join(paragraphs),
    }


def notes_app(count: int) -> Starlette:
    """The notes SaaS: /workspaces, /workspaces/{ws}/notes?page=&size= (1-based; an empty page
    past the end) and /workspaces/{ws}/notes/{id}."""
    bodies = {f"n{index:05d}": json.dumps(note(index)).encode() for index in range(count)}
    summaries = [{"id": key, "title": json.loads(body)["title"]} for key, body in bodies.items()]

    async def workspaces(request: Request) -> Response:
        return JSONResponse([{"id": WORKSPACE, "name": "Workspace 1"}])

    async def listing(request: Request) -> Response:
        if request.path_params["ws"] != WORKSPACE:
            return JSONResponse({"error": "no such workspace"}, status_code=404)
        page = int(request.query_params.get("page", "1"))
        size = min(int(request.query_params.get("size", "100")), MAX_PAGE)
        return JSONResponse({"items": summaries[(page - 1) * size : page * size]})

    async def one(request: Request) -> Response:
        body = bodies.get(request.path_params["id"])
        if request.path_params["ws"] != WORKSPACE or body is None:
            return JSONResponse({"error": "no such note"}, status_code=404)
        return Response(body, media_type="application/json")

    return Starlette(
        routes=[
            Route("/workspaces", workspaces),
            Route("/workspaces/{ws}/notes", listing),
            Route("/workspaces/{ws}/notes/{id}", one),
        ]
    )


async def serve_delayed(port: int, upstream: str, seconds: float) -> None:
    """A TCP proxy to upstream (host:port) that holds every piece of every answer ``seconds``
    after it arrived, as a network's latency does: each HTTP answer comes ``seconds`` late,
    requests pass as they are, and nothing is parsed (the proxy costs next to no CPU)."""
    host, _, upstream_port = upstream.rpartition(":")

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(upstream_port))
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer, 0), _pipe(up_reader, writer, seconds))
        except OSError:
            pass  # either side went away: close both
        finally:
            writer.close()
            up_writer.close()

    server = await asyncio.start_server(connection, HOST, port)
    async with server:
        await server.serve_forever()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each piece written ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await pieces.get()
            if not data:
                writer.write_eof()
                return
            await asyncio.sleep(due - loop.time())
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(READ_SIZE)
            pieces.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    finally:
        sender.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notes_saas", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    notes = kinds.add_parser("notes", help="the notes SaaS")
    notes.add_argument("--count", type=int, required=True, help="notes in the workspace")
    delay = kinds.add_parser("delay", help="the fixed-delay proxy")
    delay.add_argument("--upstream", required=True, help="host:port to forward to")
    delay.add_argument("--seconds", type=float, required=True, help="the delay per request")
    for kind in (notes, delay):
        kind.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.kind == "delay":
        asyncio.run(serve_delayed(args.port, args.upstream, args.seconds))
    else:
        app = notes_app(args.count)
        uvicorn.run(app, host=HOST, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

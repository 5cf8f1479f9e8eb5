"""The API benchmark's load generator where wrk is missing: a closed loop of keep-alive HTTP/1.1
connections, each sending the same request again as soon as the previous answer is read, for a
given time; prints the requests per second and latency percentiles as JSON.

It speaks HTTP over bare asyncio streams (answers must carry Content-Length), because a client
library such as httpx spends more time per request than the servers it would measure; even so
one Python process drives less load than wrk, so its figures are lower bounds.

    python -m bench.loadgen URL [--connections 32] [--seconds 10] [--method POST]
                                [--body FILE] [--header 'Name: value' ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class Tally:
    """What the connections measured: each answer's latency, and the failed ones."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0


def request_bytes(url: str, method: str, body: bytes, headers: Sequence[str]) -> bytes:
    """The whole request, sent again and again."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target or '/'} HTTP/1.1", f"Host: {parts.netloc}", *headers]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(host: str, port: int, request: bytes, until: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if length is None:
                raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
            await reader.readexactly(int(length.group(1)))
            tally.latencies.append(time.perf_counter() - started)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                tally.failures += 1
    finally:
        writer.close()


async def load(url: str, request: bytes, connections: int, seconds: float) -> dict[str, float]:
    """Drive the load; requests/s, p50 and p99 latency in ms, and failed answers."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(_connection(host, port, request, until, tally) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(tally.latencies, n=100, method="inclusive")
    return {
        "requests_per_second": len(tally.latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "failures": tally.failures,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", type=Path, help="a file: the request body")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    args = parser.parse_args(argv)
    body = args.body.read_bytes() if args.body else b""
    request = request_bytes(args.url, args.method, body, args.header)
    result = asyncio.run(load(args.url, request, args.connections, args.seconds))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

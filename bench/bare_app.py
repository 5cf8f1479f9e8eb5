"""The API benchmark's baseline: a bare Starlette app answering /api/version with a given JSON
body, served by uvicorn exactly as `engine serve` serves the engine (engine/serving.py: one
worker, uvicorn's default event loop and HTTP implementation, log_config=None, no access log).

    python -m bench.bare_app --port PORT --body FILE
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOST = "127.0.0.1"


def create_app(body: Any) -> Starlette:
    """An app whose /api/version answers ``body`` (and /healthz answers ok)."""

    async def version(request: Request) -> Response:
        return JSONResponse(body)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/api/version", version, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="a JSON file: the answer")
    args = parser.parse_args(argv)
    app = create_app(json.loads(args.body.read_text()))
    uvicorn.run(app, host=HOST, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()

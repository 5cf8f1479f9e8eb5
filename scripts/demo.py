"""Serve the example Kinto module: a seeded Kinto behind `engine serve modules/kinto`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from scripts import servers

ROOT = Path(__file__).resolve().parents[1]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so both servers stop as on Ctrl-C."""
    raise KeyboardInterrupt


def _how_to_call(kinto: servers.KintoServer, port: int, summary: servers.SeedSummary) -> str:
    user, password = kinto.admin
    settings = {"server_url": kinto.url, "username": user, "password_secret": password}
    body = {"auth": {"settings": settings}}
    curl = shlex.join(
        [
            "curl", "-s", "-X", "POST", f"http://127.0.0.1:{port}/api/roots",
            "-H", "Content-Type: application/json", "-d", json.dumps(body),
        ]
    )  # fmt: skip
    variables = " ".join(
        f"ENGINE_SETTINGS_{key.upper()}={shlex.quote(value)}" for key, value in settings.items()
    )
    setup = f"export KINTO={kinto.url} AUTH={shlex.quote(json.dumps(body['auth']))}"
    return (
        f"Kinto:    {kinto.url}  (user {user!r}, password {password!r})\n"
        f"Data:     {len(summary.buckets)} buckets, "
        f"{sum(map(len, summary.collections.values()))} collections, "
        f"{sum(map(len, summary.groups.values()))} groups, {summary.record_count} records\n"
        f"Kinto log: {kinto.log_path}\n"
        f"Try first, in another shell (the module API in process, no server needed):\n"
        f"  export {variables}\n"
        f"  .venv/bin/engine run modules/kinto tree\n"
        f'The HTTP API by hand, served here on :{port} (README: "The HTTP API by hand"):\n'
        f"  {setup}\n"
        f"  {curl}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Start and seed Kinto, then run the engine on the Kinto module until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8080")), help="engine port"
    )
    parser.add_argument("--no-serve", action="store_true", help="start and seed Kinto, then exit")
    parser.add_argument(
        "--dev", action="store_true", help="serve `engine dev` (the workbench page) instead"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="engine-demo-") as tmp,
            servers.start_kinto(Path(tmp)) as kinto,
        ):
            summary = servers.seed_kinto(
                kinto.url, kinto.admin, buckets=3, collections=4, groups=2, records=50
            )
            print(_how_to_call(kinto, args.port, summary), flush=True)
            if args.dev:
                print(f"Workbench: http://127.0.0.1:{args.port}/ (sign in with the above)\n")
            if args.no_serve:
                return 0
            return _serve(args.port, "dev" if args.dev else "serve")
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0


def _serve(port: int, command: str) -> int:
    """Run `engine serve|dev modules/kinto` as a child process; stop it on the way out."""
    engine = Path(sys.executable).parent / "engine"
    argv = [str(engine), command, "modules/kinto", "--port", str(port)]
    process = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
    try:
        return process.wait()
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(servers.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    sys.exit(main())

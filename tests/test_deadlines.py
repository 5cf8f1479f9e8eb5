"""Storage deadlines and the bounded storage workers, against an S3 endpoint that accepts
connections and never answers (a real socket; these are wall-clock tests of short deadlines)."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import StorageError
from engine.storage import Limits, Storage, merge_options, open_storage
from engine.storage.workers import Workers

pytestmark = pytest.mark.anyio

SECRET = "sEcReT-must-never-show-4711"


class _Silent:
    """A TCP server that accepts every connection, holds it and never sends a byte."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed by close()
                return
            self.held.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent() -> Iterator[_Silent]:
    server = _Silent()
    yield server
    server.close()


def _hung_s3(silent: _Silent, workers: Workers, name: str = "t1") -> Storage:
    options = {"key": "x", "secret": SECRET, "client_kwargs": {"endpoint_url": silent.url}}
    return open_storage(f"s3://bucket/backups/{name}", options, allow=["s3://"], workers=workers)


async def test_a_storage_call_to_an_endpoint_that_never_answers_times_out_within_its_deadline(
    silent: _Silent,
):
    workers = Workers(Limits(timeout=1.5))
    async with _hung_s3(silent, workers) as storage:
        started = time.monotonic()
        with pytest.raises(StorageError) as looked:
            await storage.exists("a.json")
        with pytest.raises(StorageError) as wrote:
            await storage.write_json("objects/a.json", {"id": 1})
        elapsed = time.monotonic() - started
    assert elapsed < 2 * 1.5 + 1.5  # two calls, each given up at its deadline
    assert looked.value.message == (
        "cannot look for a.json under s3://bucket/backups/t1: timed out after 1.5 s"
    )
    assert wrote.value.message.startswith(
        "cannot write objects/a.json under s3://bucket/backups/t1"
    )
    assert (looked.value.status, looked.value.url, looked.value.path) == (
        503,
        "s3://bucket/backups/t1",
        "a.json",
    )
    for error in (looked.value, wrote.value):
        assert SECRET not in error.message
        assert silent.url not in error.message


async def test_eight_calls_hung_on_one_endpoint_leave_local_and_memory_storage_working(
    silent: _Silent, tmp_path: Path
):
    workers = Workers(Limits(timeout=2.0, threads=4, per_endpoint=2))
    hung = [_hung_s3(silent, workers, f"t{index}") for index in range(8)]
    calls = [asyncio.ensure_future(storage.exists("a.json")) for storage in hung]
    await asyncio.sleep(0.3)  # all eight are under way
    key = f"s3://{silent.url.removeprefix('http://')}"
    assert workers.busy(key) == 2  # the other six wait for its slots, not for threads
    started = time.monotonic()
    local = open_storage(f"{tmp_path}/backups/t1", None, allow=[str(tmp_path)], workers=workers)
    memory = open_storage("memory://backups/t1", None, allow=["memory://"], workers=workers)
    for storage in (local, memory):
        async with storage:
            await storage.write_json("objects/a.json", {"id": 1})
            assert await storage.read_json("objects/a.json") == {"id": 1}
    assert time.monotonic() - started < 1.0
    assert not any(call.done() for call in calls)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, StorageError) for result in results), results
    assert all(
        "timed out" in result.message for result in results if isinstance(result, StorageError)
    )
    for storage in hung:
        await storage.aclose()


def test_backend_timeouts_stay_within_the_deadline_and_a_request_may_only_lower_them():
    request = {
        "client_kwargs": {"endpoint_url": "http://s3.example"},
        "config_kwargs": {
            "read_timeout": 3600,
            "connect_timeout": 1,
            "retries": {"max_attempts": 50},
        },
    }
    config = merge_options("s3", request, timeout=60)["config_kwargs"]
    assert config == {"read_timeout": 30, "connect_timeout": 1, "retries": {"max_attempts": 1}}
    assert merge_options("s3", None, timeout=4)["config_kwargs"] == {
        "read_timeout": 2,
        "connect_timeout": 2,
        "retries": {"max_attempts": 1},
    }
    gcs = merge_options("gs", {"requests_timeout": "forever"}, timeout=60)
    assert gcs["requests_timeout"] == 30
    assert "requests_timeout" not in merge_options("memory", None, timeout=60)

"""`engine serve` refuses a module with problems, starts on a valid one, and stops within its
grace period on SIGTERM even with a task stuck on a storage endpoint that never answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
from fsspec.implementations.memory import MemoryFileSystem

from engine.serving import longest_stop
from engine.settings import Settings
from scripts import servers
from tests.taskflow import Shape, auth_of, new_uuid, root_ctxs, seed, start_task

KINTO = Path(__file__).resolve().parents[1] / "modules" / "kinto"


def serve(module: Path, **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "engine", "serve", str(module)]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env=env | {"PATH": ""}, check=False
    )


def test_serve_refuses_a_module_with_problems_and_lists_them(tmp_path):
    text = (KINTO / "module.yaml").read_text().replace("parent: bucket", "parent: buckt", 1)
    (tmp_path / "module.yaml").write_text(text)
    done = serve(tmp_path)
    assert done.returncode == 1
    assert (
        "/resources/collection/parent: unknown resource type 'buckt'; did you mean 'bucket'?"
        in done.stderr
    )
    assert "Error: the module definition has 1 problem(s)" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_bad_setting_naming_the_variable():
    done = serve(KINTO, PORT="http")
    assert done.returncode != 0
    assert "PORT: " in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_needs_a_module():
    argv = [sys.executable, "-m", "engine", "serve"]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env={"PATH": ""}, check=False
    )
    assert "no module given: pass a module folder or set ENGINE_MODULE" in done.stderr
    assert done.returncode != 0


GRACE = 6.0
HANG_FLAG = "ENGINE_TEST_HANG_FLAG"  # a file: once it exists, every write hangs


class _HangingStore(dict[str, Any]):
    """A memory store whose commits of data objects (and, once the flag file exists, of
    anything) never return: a storage endpoint that stopped answering, inside the engine
    process. (The fault proxy cannot sit in front of moto for s3fs's uploads, so this hangs
    where the engine's worker thread waits: no mock of the engine, a backend that hangs.)"""

    def __setitem__(self, path: str, value: Any) -> None:
        flag = os.environ.get(HANG_FLAG)
        if path.endswith(".zst") or (flag and Path(flag).exists()):
            time.sleep(3600)
        super().__setitem__(path, value)


class HangingFileSystem(MemoryFileSystem):
    """hang:// storage for the SIGTERM test, served by the engine process it starts."""

    protocol = ("hang",)
    store: ClassVar[dict[str, Any]] = _HangingStore()
    pseudo_dirs: ClassVar[list[str]] = [""]

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return MemoryFileSystem._strip_protocol(path.replace("hang://", "memory://", 1))


def test_sigterm_stops_serve_within_its_grace_with_a_task_hung_on_storage(
    kinto: servers.KintoServer,
    engine_process: Callable[..., servers.Server],
    tmp_path: Path,
):
    bucket = f"sigterm-{uuid.uuid4().hex[:10]}"
    seed(kinto, Shape({bucket: [20]}, {bucket: 0}))
    flag = tmp_path / "hang-everything"
    engine = engine_process(
        ENGINE_STORAGE_ALLOW="hang://backups",
        ENGINE_STORAGE_CLASSES=json.dumps({"hang": "tests.test_serving:HangingFileSystem"}),
        ENGINE_SHUTDOWN_GRACE=str(GRACE),
        ENGINE_HEARTBEAT_SECONDS="1",
        **{HANG_FLAG: str(flag)},
    )
    with httpx.Client(base_url=engine.url, timeout=30) as client:
        ctx = root_ctxs(client, auth_of(kinto))[bucket]
        storage = {"url": "hang://backups/backup-1"}
        body = {"auth": auth_of(kinto), "taskUuid": new_uuid(), "storage": storage, "ctx": ctx}
        task = start_task(client, "/api/backup", body)
        assert task.status == 200, task.answer
        time.sleep(1.5)  # its first data object hangs; a heartbeat goes through
        task.poll(client)
        assert task.answer["status"] == "RUNNING", task.answer
    flag.touch()  # from now on the record's saves (the lease release) hang too
    started = time.monotonic()
    engine.process.send_signal(signal.SIGTERM)
    engine.process.wait(timeout=30)
    took = time.monotonic() - started
    print(f"SIGTERM to exit with a task hung on storage: {took:.2f} s (grace {GRACE:g} s)")
    # the figure deploy/kubernetes sizes the pod's termination grace period from
    assert took < longest_stop(Settings(shutdown_grace=GRACE)) + 2

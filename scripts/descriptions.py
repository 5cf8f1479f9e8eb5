"""Real published API descriptions for the draft's tests (engine init --from-openapi), taken
from the packages that ship them, pinned, into the peers' cache: nothing is committed."""

from __future__ import annotations

import tarfile
from pathlib import Path

from scripts.servers import _install_once, _run, cache_dir, node_tool

# GitHub's REST API description (OpenAPI 3.0.3, MIT licence), as @octokit/openapi ships it
GITHUB = ("@octokit/openapi", "23.0.2", "package/generated/api.github.com.json")


def github() -> Path:
    """GitHub's api.github.com description, fetched once with `npm pack` (about 29 MB) and
    only its one file kept (13 MB)."""
    package, version, member = GITHUB
    folder = cache_dir() / f"octokit-openapi-{version}"
    _install_once(folder, f"{package}@{version}", lambda into: _unpack(into, member))
    return folder / Path(member).name


def _unpack(folder: Path, member: str) -> None:
    package, version, _ = GITHUB
    folder.mkdir(parents=True)
    _run([node_tool("npm"), "pack", f"{package}@{version}", "--loglevel=error"], cwd=folder)
    tarball = next(folder.glob("*.tgz"))
    with tarfile.open(tarball) as archive:
        source = archive.extractfile(member)
        assert source is not None, member
        (folder / Path(member).name).write_bytes(source.read())
    tarball.unlink()

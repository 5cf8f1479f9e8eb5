"""Folder trees for the WebDAV tests and benchmark: files of seeded random bytes written in
chunks (never whole in memory), a tree of folders and files at any depth, and a tree's
fingerprint (the SHA-256 of every file and the set of folders) to compare two trees.

Trees are made and read on the disk a WebDAV server serves (scripts/servers.start_webdav's
``root``), which is the server's own storage: what the server answers is what is there."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

CHUNK = 1 << 20  # 1 MiB
MiB = 1 << 20


def random_chunks(size: int, seed: int | str, chunk: int = CHUNK) -> Iterator[bytes]:
    """size bytes of random data in chunks; the same seed gives the same bytes."""
    generator = random.Random(seed)  # test data, not secrets: any generator will do
    left = size
    while left > 0:
        part = min(chunk, left)
        yield generator.randbytes(part)
        left -= part


def write_random(path: Path, size: int, seed: int | str) -> str:
    """Write size seeded random bytes to path in chunks; their SHA-256 (hex)."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        for chunk in random_chunks(size, seed):
            digest.update(chunk)
            file.write(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """What a tree holds: every file's SHA-256 and every folder, by path below its top."""

    files: dict[str, str]
    folders: frozenset[str]


def fingerprint(top: Path) -> Fingerprint:
    """The fingerprint of the tree at top (its own folder left out)."""
    files: dict[str, str] = {}
    folders: set[str] = set()
    for path in sorted(top.rglob("*")):
        name = path.relative_to(top).as_posix()
        if path.is_dir():
            folders.add(name)
        else:
            files[name] = sha256_of(path)
    return Fingerprint(files, frozenset(folders))


# every name needs quoting in a URL: spaces, non-ASCII letters, and characters URLs reserve
NAMES = ("Ünïcødé Földer ✓", "a b", "日本語", "100% #1 & more+;=?", "l'été")


def make_tree(top: Path, *, depth: int = 10, file_size: int = 4096) -> Fingerprint:
    """A tree under top: at each of depth nested levels (named from NAMES) a file of seeded
    random bytes, a 0-byte file and an empty folder; beside the chain a folder of small text
    files. Returns its fingerprint."""
    folder = top
    for level in range(depth):
        folder = folder / f"{NAMES[level % len(NAMES)]} {level}"
        write_random(folder / f"data {level}.bin", file_size + level, f"{top.name}/{level}")
        (folder / f"empty file {level} ∅").write_bytes(b"")
        (folder / f"empty folder {level}").mkdir()
    notes = top / "notes"
    notes.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(NAMES):
        (notes / f"{name}.txt").write_text(f"note {index}: {name}\n" * (index + 1))
    return fingerprint(top)


def delete(url: str, auth: tuple[str, str], paths: Iterable[str]) -> None:
    """DELETE each path (decoded, below url) on the WebDAV server, each answered 204."""
    with httpx.Client(base_url=url, auth=auth, timeout=60, trust_env=False) as client:
        for path in paths:
            answer = client.delete(href(path))
            if answer.status_code != 204:
                raise RuntimeError(f"DELETE {path}: {answer.status_code} {answer.text}")


def href(path: str) -> str:
    """A decoded path (``/a b/é``) as an href, each segment percent-quoted."""
    return "/".join(quote(part, safe="") for part in path.split("/"))

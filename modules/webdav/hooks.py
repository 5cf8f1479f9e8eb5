"""Hooks of the WebDAV module: PROPFIND answers (207 multistatus XML, read by
engine.language.dav) turned into the entries the engine lists and the properties it stores.

An entry is a folder or a file, named by its path below the server URL: ``path`` is the decoded
path (``/photos/été 2024/a b.jpg``, for people and storage paths) and ``href`` the same path
with each segment percent-quoted (what requests are sent to). Both are built from the listed
folder's own path and each child's last href segment, so a server that answers absolute URLs,
or hrefs under a prefix (``/remote.php/dav/files/alice/...``), gives the same paths.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from engine.language.dav import DAV, Response, multistatus, tag

COLLECTION = tag(DAV, "collection")
PROPERTIES = {  # record key -> DAV property
    "contentType": tag(DAV, "getcontenttype"),
    "size": tag(DAV, "getcontentlength"),
    "etag": tag(DAV, "getetag"),
    "lastModified": tag(DAV, "getlastmodified"),
    "displayName": tag(DAV, "displayname"),
}


class Answer(Protocol):
    """What the hooks read of the engine's answer (engine.saas.client.Answer)."""

    @property
    def body(self) -> bytes: ...
    @property
    def url(self) -> str: ...


def _path_of(href: str) -> str:
    """The decoded path of an href (absolute URL or path), without a trailing slash."""
    return unquote(urlsplit(href).path).rstrip("/")


def _entry(response: Response, parent: str) -> dict[str, Any]:
    """One folder or file below the folder at path parent ("" for the server's top)."""
    path = f"{parent}/{response.name}"
    folder = COLLECTION in response.types()
    found = {key: response.text(prop) for key, prop in PROPERTIES.items()}
    size = found.pop("size")
    return {
        "name": response.name,
        "path": path,
        "href": "/".join(quote(part, safe="") for part in path.split("/")),
        "folder": folder,
        "size": None if folder or size is None else int(size),
    } | found


def entries(answer: Answer, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """parse (listing): the folders and files of a folder's ``PROPFIND`` (Depth 1), the folder
    itself left out; ctx.path is the listed folder's path (absent for the top)."""
    listed = _path_of(answer.url)
    parent = str(ctx.get("path", ""))
    return [
        _entry(response, parent)
        for response in multistatus(answer.body)
        if _path_of(response.href) != listed
    ]


def properties(answer: Answer, ctx: dict[str, Any]) -> dict[str, Any]:
    """parse (object step): the one entry of a ``PROPFIND`` (Depth 0) on a folder or file."""
    responses = multistatus(answer.body)
    if len(responses) != 1:
        raise ValueError(f"expected the entry's one response, found {len(responses)}")
    parent = str(ctx["path"]).rsplit("/", 1)[0]
    found = _entry(responses[0], parent)
    if found["path"] != ctx["path"]:
        raise ValueError(f"asked for {ctx['path']!r}, the server answered {found['path']!r}")
    return found

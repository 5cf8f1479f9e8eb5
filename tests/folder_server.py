"""A small real nested-folder JSON API for the recursive-tree tests: a tree of folders and text
files of any depth, served by the paged test server's machinery (Starlette under uvicorn, in a
background thread, on a free loopback port, every request recorded), all below ``/api``.

``GET /entries?path=/a/b`` lists a folder's children (``{"entries": [{name, path, folder}]}``),
``GET /folder?path=`` answers a folder's own description, ``GET /file?path=`` a file's bytes;
``PUT /folder?path=`` creates a folder and ``PUT /file?path=`` (body: the content) a file, each
only inside an existing folder (409 otherwise, so a restore must create parents first).
``loop_at`` makes a folder list itself among its children (a SaaS with a loop in its tree)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tests.paged_server import PREFIX, PagedServer


@dataclass
class Node:
    """A folder (content None) or a text file."""

    content: str | None = None

    @property
    def folder(self) -> bool:
        return self.content is None


class FolderServer(PagedServer):
    """The server: ``tree`` maps each path (``/a/b``) to its Node; ``/`` is the root folder."""

    def __init__(self, tree: dict[str, Node] | None = None) -> None:
        self.tree: dict[str, Node] = {"/": Node()} | (tree or {})
        self.loop_at: str | None = None
        super().__init__(items=0)

    def _app(self) -> Starlette:
        routes = [
            Route("/entries", self._entries),
            Route("/folder", self._folder, methods=["GET", "PUT"]),
            Route("/file", self._file, methods=["GET", "PUT"]),
        ]
        return Starlette(routes=[Mount(PREFIX, routes=routes)])

    def children(self, path: str) -> list[str]:
        """The paths directly inside a folder, sorted."""
        return sorted(p for p in self.tree if p != "/" and posixpath.dirname(p) == path)

    def files(self) -> dict[str, str]:
        """Every file's path and content."""
        return {p: n.content for p, n in self.tree.items() if n.content is not None}

    def folders(self) -> set[str]:
        """Every folder's path but the root's."""
        return {p for p, n in self.tree.items() if n.folder and p != "/"}

    def empty(self) -> None:
        """Removes everything: only the root folder is left."""
        self.tree = {"/": Node()}

    def _entry(self, path: str) -> dict[str, object]:
        name = posixpath.basename(path)
        return {"name": name, "path": path, "folder": self.tree[path].folder}

    async def _entries(self, request: Request) -> Response:
        path = request.query_params.get("path", "/")
        node = self.tree.get(path)
        if node is None or not node.folder:
            return JSONResponse({"error": f"{path} is not a folder"}, status_code=404)
        paths = self.children(path) + ([path] if path == self.loop_at else [])
        return JSONResponse({"entries": [self._entry(each) for each in paths]})

    async def _folder(self, request: Request) -> Response:
        path = request.query_params["path"]
        if request.method == "PUT":
            return self._create(path, None)
        if path not in self.tree or not self.tree[path].folder:
            return JSONResponse({"error": f"no folder {path}"}, status_code=404)
        return JSONResponse(self._entry(path))

    async def _file(self, request: Request) -> Response:
        path = request.query_params["path"]
        if request.method == "PUT":
            return self._create(path, (await request.body()).decode())
        node = self.tree.get(path)
        if node is None or node.content is None:
            return JSONResponse({"error": f"no file {path}"}, status_code=404)
        return Response(node.content.encode(), media_type="application/octet-stream")

    def _create(self, path: str, content: str | None) -> Response:
        parent = self.tree.get(posixpath.dirname(path))
        if parent is None or not parent.folder:
            return JSONResponse({"error": f"no folder to hold {path}"}, status_code=409)
        self.tree[path] = Node(content)
        return JSONResponse(self._entry(path), status_code=201)


def chain(depth: int, top: str = "d") -> dict[str, Node]:
    """Folders ``/d1/d2/.../d<depth>``, each holding a file ``f<n>.txt`` (and the next folder)."""
    tree: dict[str, Node] = {}
    path = ""
    for level in range(1, depth + 1):
        path += f"/{top}{level}" if level == 1 else f"/d{level}"
        tree[path] = Node()
        tree[f"{path}/f{level}.txt"] = Node(f"file {level} at {path}\n")
    return tree


@contextmanager
def serve(tree: dict[str, Node] | None = None) -> Iterator[FolderServer]:
    """A started FolderServer, stopped on leaving the block."""
    server = FolderServer(tree)
    server.start()
    try:
        yield server
    finally:
        server.stop()

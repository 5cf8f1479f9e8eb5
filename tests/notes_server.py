"""A small real SaaS for the restore tests: shelves hold books, books hold notes, and creating a
note whose id exists answers 500 with a "duplicate id" body (as some SaaS do), where Kinto
would answer 412. The note ``explode`` always fails with a plain 500; the books of shelf ``s2``
and the notes of book ``b3`` cannot be listed. It runs as the paged server does (Starlette under
uvicorn on a free loopback port, every request recorded)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tests.paged_server import PREFIX, PagedServer

SHELVES = [{"id": "s1", "title": "Kitchen shelf"}, {"id": "s2", "title": "Broken shelf"}]
BOOKS = {
    "s1": [
        {"id": "b1", "title": "First book"},
        {"id": "b2", "title": "Second book"},
        {"id": "b3", "title": "Torn book"},
    ]
}
NOTES = {
    "b1": [{"id": "n1", "text": "one"}, {"id": "n2", "text": "two"}, {"id": "explode"}],
    "b2": [{"id": "n3", "text": "three"}, {"id": "n4", "text": "four"}, {"id": "skipme"}],
}
DUPLICATE = "duplicate id"


class NotesServer(PagedServer):
    """The server; ``notes`` is its live state (book id -> notes), ``posts`` every note id
    POSTed, in order."""

    def __init__(self) -> None:
        self.notes: dict[str, list[dict[str, Any]]] = copy.deepcopy(NOTES)
        self.posts: list[str] = []
        super().__init__()

    def _app(self) -> Starlette:
        routes = [
            Route("/shelves", self._shelves),
            Route("/shelves/{shelf}/books", self._books),
            Route("/books/{book}/notes", self._list_notes, methods=["GET"]),
            Route("/books/{book}/notes", self._create_note, methods=["POST"]),
        ]
        return Starlette(routes=[Mount(PREFIX, routes=routes)])

    async def _shelves(self, request: Request) -> Response:
        return JSONResponse({"items": SHELVES})

    async def _books(self, request: Request) -> Response:
        shelf = request.path_params["shelf"]
        if shelf not in BOOKS:
            return JSONResponse({"error": "the shelf fell over"}, status_code=500)
        return JSONResponse({"items": BOOKS[shelf]})

    async def _list_notes(self, request: Request) -> Response:
        book = request.path_params["book"]
        if book not in self.notes:
            return JSONResponse({"error": "the pages are torn"}, status_code=500)
        return JSONResponse({"items": self.notes[book]})

    async def _create_note(self, request: Request) -> Response:
        note = await request.json()
        self.posts.append(note["id"])
        if note["id"] == "explode":
            return JSONResponse({"error": "boom"}, status_code=500)
        book = self.notes.setdefault(request.path_params["book"], [])
        if any(each["id"] == note["id"] for each in book):
            return JSONResponse({"error": DUPLICATE, "id": note["id"]}, status_code=500)
        book.append(note)
        return JSONResponse(note, status_code=201)

    def delete(self, book: str, note_id: str) -> None:
        """Removes a note, as a user of the SaaS would."""
        self.notes[book] = [note for note in self.notes[book] if note["id"] != note_id]


@contextmanager
def serve() -> Iterator[NotesServer]:
    """A started NotesServer, stopped on leaving the block."""
    server = NotesServer().start()
    try:
        yield server
    finally:
        server.stop()

"""A small real file server for the binary backup and restore tests (the paged test server's
life cycle and request log, other routes): drives of files, each served as raw bytes with its
Content-Type, as base64 text and inside a JSON answer as base64; written back by a raw PUT, a
multipart/form-data POST, or a JSON PUT carrying base64. What it receives it keeps, by drive."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from email.parser import BytesParser

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tests.paged_server import PREFIX, PagedServer


@dataclass(frozen=True)
class File:
    """One stored file: its bytes and media type (and, for a multipart upload, the fields
    that came beside it)."""

    data: bytes
    content_type: str
    fields: tuple[tuple[str, str], ...] = ()


class FilesServer(PagedServer):
    """Drives (name -> files by name); ``damaged`` names files whose listed sha256 is wrong."""

    def __init__(self) -> None:
        self.drives: dict[str, dict[str, File]] = {}
        self.damaged: set[str] = set()
        super().__init__()

    def _app(self) -> Starlette:
        routes = [
            Route("/drives", self._drives),
            Route("/drives/{drive}/files", self._files),
            Route("/drives/{drive}/files/{name}", self._raw, methods=["GET", "PUT"]),
            Route("/drives/{drive}/text/{name}", self._text),
            Route("/drives/{drive}/json/{name}", self._json, methods=["GET", "PUT"]),
            Route("/drives/{drive}/upload", self._upload, methods=["POST"]),
        ]
        return Starlette(routes=[Mount(PREFIX, routes=routes)])

    def _file(self, request: Request) -> File | None:
        drive = self.drives.get(request.path_params["drive"], {})
        return drive.get(request.path_params["name"])

    def _keep(self, request: Request, file: File) -> Response:
        self.drives.setdefault(request.path_params["drive"], {})[file_name(request)] = file
        return JSONResponse({"size": len(file.data)}, status_code=201)

    async def _drives(self, request: Request) -> Response:
        return JSONResponse([{"id": name} for name in sorted(self.drives)])

    async def _files(self, request: Request) -> Response:
        files = self.drives.get(request.path_params["drive"], {})
        return JSONResponse([self._listed(name, file) for name, file in sorted(files.items())])

    def _listed(self, name: str, file: File) -> dict[str, object]:
        digest = hashlib.sha256(file.data + (b"!" if name in self.damaged else b""))
        sizes = {"size": len(file.data), "md5": hashlib.md5(file.data).hexdigest()}
        return {"name": name, "type": file.content_type, "sha256": digest.hexdigest()} | sizes

    async def _raw(self, request: Request) -> Response:
        if request.method == "PUT":
            kind = request.headers.get("content-type", "")
            return self._keep(request, File(await request.body(), kind))
        file = self._file(request)
        if file is None:
            return Response(status_code=404)
        return Response(file.data, media_type=file.content_type)

    async def _text(self, request: Request) -> Response:
        file = self._file(request)
        if file is None:
            return Response(status_code=404)
        return Response(base64.encodebytes(file.data), media_type="text/plain")  # 76-char lines

    async def _json(self, request: Request) -> Response:
        if request.method == "PUT":
            body = json.loads(await request.body())
            data = base64.b64decode(body["data"]["content"], validate=True)
            return self._keep(request, File(data, body["data"]["type"]))
        file = self._file(request)
        if file is None:
            return Response(status_code=404)
        content = base64.b64encode(file.data).decode()
        # the base64 text between other fields, with "/" escaped as some encoders do
        text = json.dumps({"meta": {"name": request.path_params["name"], "n": [1, "x\\"]}})
        text = text[:-1] + ', "file": {"content": "' + content.replace("/", "\\/") + '"}}'
        return Response(text, media_type="application/json")

    async def _upload(self, request: Request) -> Response:
        kind = request.headers.get("content-type", "")
        head = f"Content-Type: {kind}\r\n\r\n".encode()
        form = BytesParser().parsebytes(head + await request.body())  # headers as sent
        if not form.is_multipart():
            return Response("not multipart", status_code=400)
        fields: list[tuple[str, str]] = []
        stored: File | None = None
        name = ""
        for part in form.get_payload():
            field = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes) and isinstance(field, str)
            if field == "file":
                name = str(part.get_filename())
                stored = File(payload, str(part.get("content-type")))
            else:
                fields.append((field, payload.decode()))
        if stored is None:
            return Response("no file part", status_code=400)
        drive = self.drives.setdefault(request.path_params["drive"], {})
        drive[name] = File(stored.data, stored.content_type, tuple(fields))
        return JSONResponse({"size": len(stored.data)}, status_code=201)


def file_name(request: Request) -> str:
    return str(request.path_params["name"])

"""DAV multistatus answers (RFC 4918, 207) read into plain values, for modules' parse hooks:
the shipped DAV modules (modules/radicale, modules/webdav) share this reading instead of each
parsing the XML its own way. Pure parsing of bytes: no I/O, no engine state.

Elements are matched by namespace URI (ElementTree's ``{uri}name``), never by prefix. A
multistatus is a list of ``D:response``; each has one ``D:href`` and ``D:propstat`` blocks, of
which only the ones with a 200 status hold properties (the others list what is missing)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote
from xml.etree import ElementTree

DAV = "DAV:"


def tag(namespace: str, name: str) -> str:
    """ElementTree's name of an element: ``{namespace}name``."""
    return f"{{{namespace}}}{name}"


RESOURCETYPE = tag(DAV, "resourcetype")


def segment(path: str) -> str:
    """The last segment of a URL path, percent-decoded (``a/caf%C3%A9/`` is ``café``)."""
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Response:
    """One ``D:response`` of a multistatus: its href and its found (200) properties by tag."""

    href: str
    props: dict[str, ElementTree.Element]

    @property
    def name(self) -> str:
        """The last segment of the href, percent-decoded."""
        return segment(self.href)

    @property
    def is_collection(self) -> bool:
        """Whether the href names a collection (collection hrefs end in a slash)."""
        return self.href.endswith("/")

    def text(self, tag: str) -> str | None:
        """The text of a found property; None when it is absent or empty."""
        found = self.props.get(tag)
        return found.text if found is not None and found.text else None

    def types(self) -> list[str]:
        """The element names ``D:resourcetype`` holds (``{DAV:}collection``, ...)."""
        found = self.props.get(RESOURCETYPE)
        return [child.tag for child in found] if found is not None else []


def multistatus(body: bytes) -> list[Response]:
    """The responses of a 207 multistatus body; ValueError when the body is not one."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"the answer is not XML ({exc})") from None
    if root.tag != tag(DAV, "multistatus"):
        raise ValueError(f"the answer is not a DAV multistatus but <{root.tag}>")
    return [_response(node) for node in root.iterfind(tag(DAV, "response"))]


def _response(node: ElementTree.Element) -> Response:
    props = {
        prop.tag: prop
        for propstat in node.iterfind(tag(DAV, "propstat"))
        if _is_ok(propstat.findtext(tag(DAV, "status"), ""))
        for prop in propstat.iterfind(f"{tag(DAV, 'prop')}/*")
    }
    return Response(node.findtext(tag(DAV, "href"), ""), props)


def _is_ok(status: str) -> bool:
    """Whether a status line (``HTTP/1.1 200 OK``) says 200."""
    parts = status.split()
    return len(parts) > 1 and parts[1] == "200"

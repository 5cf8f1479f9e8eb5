"""Hooks of the Radicale module: DAV answers (XML) turned into the JSON records the engine lists,
stores and restores. See docs/radicale-dav.md for the requests and the answers they parse; the
multistatus itself is read by engine.language.dav, shared with the WebDAV module.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

from engine.language.dav import DAV, Response, multistatus, segment
from engine.language.dav import tag as _tag

CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
ICAL = "http://apple.com/ns/ical/"
CALENDARSERVER = "http://calendarserver.org/ns/"
RADICALE = "http://radicale.org/ns/"


KINDS = {_tag(CALDAV, "calendar"): "calendar", _tag(CARDDAV, "addressbook"): "addressbook"}
CALENDAR_DESCRIPTION = _tag(CALDAV, "calendar-description")
ADDRESSBOOK_DESCRIPTION = _tag(CARDDAV, "addressbook-description")
COMPONENTS = _tag(CALDAV, "supported-calendar-component-set")
DISPLAYNAME = _tag(DAV, "displayname")
# Properties the server computes (from the collection's kind, content, owner or version): they
# are not backed up, as a restore cannot set them.
LIVE = frozenset(
    {
        *(_tag(DAV, name) for name in ("resourcetype", "getetag", "getlastmodified", "owner")),
        *(_tag(DAV, name) for name in ("getcontentlength", "getcontenttype", "sync-token")),
        *(_tag(DAV, name) for name in ("current-user-principal", "current-user-privilege-set")),
        *(_tag(DAV, name) for name in ("supported-report-set", "principal-collection-set")),
        _tag(CALENDARSERVER, "getctag"),
        _tag(RADICALE, "version"),
        _tag(CARDDAV, "supported-address-data"),
    }
)
UTF8 = "utf-8"


class Answer(Protocol):
    """What the hooks read of the engine's answer (engine.client.Answer)."""

    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def url(self) -> str: ...


def _kind(response: Response) -> str | None:
    """``calendar`` or ``addressbook`` by the resource type; None for anything else."""
    found = [KINDS[name] for name in response.types() if name in KINDS]
    return found[0] if found else None


def _displayname(response: Response) -> str | None:
    """The displayname; None when there is none (Radicale then answers the collection's path,
    ``alice/work``, which is not a property to back up)."""
    text = response.text(DISPLAYNAME)
    path = "/" + unquote(response.href).strip("/")  # with any prefix Radicale is served under
    return None if text is None or ("/" in text and path.endswith("/" + text)) else text


def _multistatus(answer: Answer) -> list[Response]:
    """The responses of a 207 multistatus answer; ValueError when the body is not one."""
    return multistatus(answer.body)


def _summary(response: Response) -> dict[str, Any]:
    """What a collection is, for people and the platform: names, kind and appearance."""
    components = response.props.get(COMPONENTS)
    return {
        "href": response.href,
        "name": response.name,
        "kind": _kind(response),
        "displayname": _displayname(response),
        "description": response.text(CALENDAR_DESCRIPTION)
        or response.text(ADDRESSBOOK_DESCRIPTION),
        "color": response.text(_tag(ICAL, "calendar-color")),
        "components": [comp.get("name", "") for comp in components or ()],
    }


def _fragment(element: ElementTree.Element) -> str:
    """A property as a self-contained XML element (escaped, its namespaces declared), ready to
    be put in a MKCALENDAR, MKCOL or PROPPATCH body."""
    alone = copy.copy(element)
    alone.tail = None  # the whitespace after it in the answer, if any
    return ElementTree.tostring(alone, encoding="unicode")


def _stored_properties(response: Response) -> list[str]:
    """Every property a restore can set back, as XML fragments: all but the computed ones."""
    computed = set(LIVE)
    if _displayname(response) is None:
        computed.add(DISPLAYNAME)
    return sorted(_fragment(prop) for tag, prop in response.props.items() if tag not in computed)


# --------------------------------------------------------------------------- the hooks


def collections(answer: Answer, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """parse (roots listing): the calendars and address books of a ``PROPFIND /<user>/``
    (Depth 1); the home itself and collections of any other kind are left out."""
    found = [response for response in _multistatus(answer) if response.is_collection]
    return [_summary(response) for response in found if _kind(response) is not None]


def collection_properties(answer: Answer, ctx: dict[str, Any]) -> dict[str, Any]:
    """parse (object step): a collection's ``PROPFIND`` without a body (allprop, Depth 0) as
    its summary plus ``properties``, every stored property as an XML fragment (what restore
    sends back, unchanged)."""
    responses = [response for response in _multistatus(answer) if response.is_collection]
    if len(responses) != 1:
        raise ValueError(f"expected the collection's one response, found {len(responses)}")
    return _summary(responses[0]) | {"properties": _stored_properties(responses[0])}


def items(answer: Answer, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """parse (collection step list): the items of a collection's ``PROPFIND`` (Depth 1), each
    ``{href, name, etag, contentType}``; the collection itself is left out."""
    return [
        {
            "href": response.href,
            "name": response.name,
            "etag": response.text(_tag(DAV, "getetag")),
            "contentType": response.text(_tag(DAV, "getcontenttype")),
        }
        for response in _multistatus(answer)
        if not response.is_collection
    ]


def item_body(answer: Answer, ctx: dict[str, Any]) -> dict[str, Any]:
    """parse (each): an item's ``GET`` as ``{name, contentType, etag, body}``, the body being
    the iCalendar or vCard text exactly as the server sent it."""
    content_type = answer.headers.get("Content-Type")
    # a 200 that is not an item (a sign-in page of a proxy in front, say) must not be stored
    if not content_type or not content_type.startswith(("text/calendar", "text/vcard")):
        raise ValueError(f"expected an iCalendar or vCard body, got {content_type or 'none'}")
    return {
        "name": segment(urlsplit(answer.url).path),
        "contentType": content_type,
        "etag": answer.headers.get("ETag"),
        "body": answer.body.decode(UTF8),
    }

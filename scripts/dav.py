"""Seed a Radicale (CalDAV/CardDAV) with calendars, address books and items, read it back in a
comparable form, and delete collections: the data side of the Radicale tests and benchmarks.

A dump is plain data: `{collection name: {"properties": {...}, "items": {item name: form}}}`,
names being the last, percent-decoded segment of an href, so a collection restored under another
name compares by renaming one key. See docs/radicale-dav.md for the requests and answers.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

import httpx

from scripts import dav_items

PREFIXES = {
    "DAV:": "D",
    "urn:ietf:params:xml:ns:caldav": "C",
    "urn:ietf:params:xml:ns:carddav": "CR",
    "http://apple.com/ns/ical/": "ICAL",
    "http://calendarserver.org/ns/": "CS",
    "http://radicale.org/ns/": "RADICALE",
}
# computed by the server (change with every write, or follow from the collection's kind)
LIVE_PROPERTIES = frozenset(
    {
        *("D:getetag", "D:getlastmodified", "D:getcontentlength", "D:getcontenttype"),
        *("D:sync-token", "CS:getctag", "D:owner", "D:current-user-principal"),
        *("D:current-user-privilege-set", "D:supported-report-set", "D:principal-collection-set"),
        *("RADICALE:version", "CR:supported-address-data"),
    }
)
# content lines Radicale may rewrite: it puts its own PRODID on items of a whole-collection PUT
# (which also rebuilds their VTIMEZONEs: add "VTIMEZONE" to compare after one)
VOLATILE = frozenset({"PRODID"})
WORKERS = 4
MULTIGET_BATCH = 200
XML = {"Content-Type": "application/xml; charset=utf-8"}
KINDS = {  # resourcetype -> (multiget report, data property, item content type)
    "C:calendar": ("C:calendar-multiget", "C:calendar-data", "text/calendar; charset=utf-8"),
    "CR:addressbook": ("CR:addressbook-multiget", "CR:address-data", "text/vcard; charset=utf-8"),
}

MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" \
xmlns:ICAL="http://apple.com/ns/ical/">
  <D:set><D:prop>
    <D:displayname>{displayname}</D:displayname>
    <C:calendar-description>{description}</C:calendar-description>
    <ICAL:calendar-color>{color}</ICAL:calendar-color>
    <C:supported-calendar-component-set>{components}</C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""
MKCOL_ADDRESSBOOK = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
    <D:displayname>{displayname}</D:displayname>
    <CR:addressbook-description>{description}</CR:addressbook-description>
  </D:prop></D:set>
</D:mkcol>"""
RESOURCETYPE = '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>'
MULTIGET = """<?xml version="1.0" encoding="utf-8"?>
<{report} xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" \
xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><{data}/></D:prop>
  {hrefs}
</{report}>"""


class DavError(RuntimeError):
    """A DAV request answered with an unexpected status (the message names it)."""


@dataclass(frozen=True)
class DavSeed:
    """What seed_radicale created: item names by calendar and by address book name."""

    home: str
    calendars: dict[str, list[str]] = field(default_factory=dict)
    address_books: dict[str, list[str]] = field(default_factory=dict)

    def href(self, name: str) -> str:
        """The href of the collection called name."""
        return f"{self.home}{quote(name)}/"

    @property
    def item_count(self) -> int:
        """The number of items created."""
        books = self.address_books.values()
        return sum(len(names) for names in [*self.calendars.values(), *books])


# --------------------------------------------------------------------------- HTTP


def client(url: str, user: str, password: str) -> httpx.Client:
    """A client for a local Radicale (never through a proxy from the environment)."""
    return httpx.Client(
        base_url=url.rstrip("/"), auth=(user, password), timeout=30, trust_env=False
    )


def _checked(answer: httpx.Response, expect: Collection[int]) -> httpx.Response:
    if answer.status_code not in expect:
        request = answer.request
        raise DavError(f"{request.method} {request.url.path}: {answer.status_code} {answer.text}")
    return answer


def _request(
    http: httpx.Client,
    method: str,
    href: str,
    expect: Collection[int],
    body: str = "",
    **headers: str,
) -> httpx.Response:
    answer = http.request(method, href, content=body.encode(), headers=headers)
    return _checked(answer, expect)


def _send_all(
    http: httpx.Client, requests: Iterable[httpx.Request], expect: Collection[int]
) -> None:
    """Send requests on a small thread pool (Radicale serialises writes, not the HTTP work)."""
    with ThreadPoolExecutor(WORKERS) as pool:
        for answer in pool.map(http.send, requests):
            _checked(answer, expect)


def put_items(
    http: httpx.Client, collection: str, bodies: Mapping[str, str], *, create_only: bool = False
) -> None:
    """PUT each body at the collection's href + quoted name (If-None-Match: * when create_only)."""
    headers = {"If-None-Match": "*"} if create_only else {}
    requests = [
        http.build_request(
            "PUT",
            f"{collection}{quote(name)}",
            content=body.encode(),
            headers={"Content-Type": _content_type(name), **headers},
        )
        for name, body in bodies.items()
    ]
    _send_all(http, requests, (201, 204))


def _content_type(name: str) -> str:
    return KINDS["CR:addressbook" if name.endswith(".vcf") else "C:calendar"][2]


def delete_collections(url: str, user: str, password: str, hrefs: Iterable[str]) -> None:
    """DELETE each collection (with its items)."""
    with client(url, user, password) as http:
        _send_all(http, [http.build_request("DELETE", href) for href in hrefs], (200, 204))


# --------------------------------------------------------------------------- seeding


def seed_radicale(
    url: str,
    user: str,
    password: str,
    *,
    calendars: int,
    address_books: int,
    events: int,
    contacts: int,
    only: Collection[str] | None = None,
) -> DavSeed:
    """Create calendars cal000.. holding `events` items and address books book000.. holding
    `contacts` vCards; the same arguments give the same data. only: create just these names."""
    seed = DavSeed(f"/{user}/")
    with client(url, user, password) as http:
        _request(http, "PROPFIND", seed.home, (207,), Depth="0")  # creates the user's home
        for name in _names("cal", calendars, only):
            items = dict(dav_items.event(name, i) for i in range(events))
            _create(
                http, seed.href(name), "MKCALENDAR", mkcalendar(dav_items.calendar(name)), items
            )
            seed.calendars[name] = list(items)
        for name in _names("book", address_books, only):
            items = dict(dav_items.contact(name, i) for i in range(contacts))
            _create(http, seed.href(name), "MKCOL", mkcol(dav_items.address_book(name)), items)
            seed.address_books[name] = list(items)
    return seed


def _names(prefix: str, count: int, only: Collection[str] | None) -> list[str]:
    names = [f"{prefix}{n:03d}" for n in range(count)]
    return [name for name in names if only is None or name in only]


def _create(
    http: httpx.Client, href: str, method: str, body: str, items: Mapping[str, str]
) -> None:
    _request(http, method, href, (201,), body, **XML)
    put_items(http, href, items, create_only=True)


def mkcalendar(properties: Mapping[str, Any]) -> str:
    """The MKCALENDAR body giving a calendar these displayname, description, color, components."""
    components = "".join(f'<C:comp name="{c}"/>' for c in properties["components"])
    texts = {key: escape(properties[key]) for key in ("displayname", "description", "color")}
    return MKCALENDAR.format(components=components, **texts)


def mkcol(properties: Mapping[str, str]) -> str:
    """The extended MKCOL body making an address book with this displayname and description."""
    return MKCOL_ADDRESSBOOK.format(**{key: escape(value) for key, value in properties.items()})


# --------------------------------------------------------------------------- reading back


def dump_radicale(
    url: str, user: str, password: str, *, ignore: Collection[str] = VOLATILE
) -> dict[str, Any]:
    """Every collection of the user: its properties (LIVE_PROPERTIES left out) and the normal
    form of every item's body as the server returns it (content lines named in ignore left out)."""
    home = f"/{user}/"
    dump: dict[str, Any] = {}
    with client(url, user, password) as http:
        listing = _request(http, "PROPFIND", home, (207,), Depth="1")  # no body: allprop
        for href, props in _responses(listing):
            if href != home:
                items = read_items(http, href)
                dump[_name(href)] = {
                    "properties": properties(props),
                    "items": {name: normal_form(text, ignore) for name, text in items.items()},
                }
    return dump


def read_items(http: httpx.Client, collection: str) -> dict[str, str]:
    """The body of every item of a calendar or address book, by name, as the server returns it
    (line ends are LF: XML parsing turns the CRLF Radicale sends into LF)."""
    listing = _request(http, "PROPFIND", collection, (207,), RESOURCETYPE, Depth="1", **XML)
    found = dict(_responses(listing))
    own = found.pop(next(h for h in found if unquote(h) == unquote(collection)))
    kinds = properties(own).get("D:resourcetype", [])
    kind = next((k for k in kinds if k in KINDS), None)
    if kind is None:  # not a calendar nor an address book
        return {}
    report, data = KINDS[kind][:2]
    hrefs = list(found)
    texts: dict[str, str] = {}
    for start in range(0, len(hrefs), MULTIGET_BATCH):
        chunk = "".join(
            f"<D:href>{escape(h)}</D:href>" for h in hrefs[start : start + MULTIGET_BATCH]
        )
        body = MULTIGET.format(report=report, data=data, hrefs=chunk)
        answer = _request(http, "REPORT", collection, (207,), body, Depth="1", **XML)
        for href, props in _responses(answer):
            texts[_name(href)] = properties(props)[data]
    return texts


def item_etags(http: httpx.Client, collection: str) -> dict[str, str]:
    """The ETag of every item of a collection, by name: a hash of the text the server keeps.
    (The collection's own ETag hashes them in directory order: it may change when none does.)"""
    body = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
    answer = _request(http, "PROPFIND", collection, (207,), body, Depth="1", **XML)
    found = {_name(href): props[0].text or "" for href, props in _responses(answer)}
    found.pop(_name(collection))
    return found


def _responses(answer: httpx.Response) -> Iterator[tuple[str, list[ET.Element]]]:
    """(href, the properties found) of each response of a 207 multistatus."""
    for response in ET.fromstring(answer.content).iterfind("{DAV:}response"):
        found = [
            prop
            for propstat in response.iterfind("{DAV:}propstat")
            if " 200 " in propstat.findtext("{DAV:}status", "")
            for prop in propstat.iterfind("{DAV:}prop/*")
        ]
        yield response.findtext("{DAV:}href", ""), found


def _name(href: str) -> str:
    return unquote(href.rstrip("/").rsplit("/", 1)[-1])


def _human(tag: str) -> str:
    """ElementTree's {namespace}name as Radicale's prefix:name (unknown namespaces stay)."""
    namespace, _, name = tag[1:].partition("}")
    return f"{PREFIXES[namespace]}:{name}" if namespace in PREFIXES else tag


def properties(props: Iterable[ET.Element]) -> dict[str, Any]:
    """Properties by prefixed name, LIVE_PROPERTIES left out: a text, or for a property holding
    elements the sorted list of their names (C:comp elements: their name attributes)."""
    found: dict[str, Any] = {}
    for prop in props:
        name = _human(prop.tag)
        if name not in LIVE_PROPERTIES:
            children = sorted(child.get("name") or _human(child.tag) for child in prop)
            found[name] = children if len(prop) else prop.text or ""
    return found


# --------------------------------------------------------------------------- comparing items


def content_lines(text: str) -> list[str]:
    """The unfolded content lines of iCalendar or vCard text (CRLF or LF line ends)."""
    unfolded = text.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "")
    return [line for line in unfolded.split("\n") if line]


def normal_form(text: str, ignore: Collection[str] = VOLATILE) -> dict[str, Any]:
    """The item's one top-level component as {"name", "properties", "components"}: properties
    are content lines with upper-case names and sorted parameters, both lists sorted, so the
    order Radicale writes lines in, its folding and its line ends do not count. ignore: names
    of content lines and of components to leave out."""
    stack: list[dict[str, Any]] = [{"name": "", "properties": [], "components": []}]
    for line in content_lines(text):
        name, params, value = _split(line)
        if name == "BEGIN":
            stack.append({"name": value.upper(), "properties": [], "components": []})
        elif name == "END":
            if len(stack) == 1 or stack[-1]["name"] != value.upper():
                raise ValueError(f"END:{value} without its BEGIN")
            done = stack.pop()
            done["properties"].sort()
            done["components"].sort(key=lambda c: json.dumps(c, sort_keys=True))
            if done["name"] not in ignore:
                stack[-1]["components"].append(done)
        elif name not in ignore:
            stack[-1]["properties"].append(f"{';'.join([name, *params])}:{value}")
    if len(stack) != 1 or len(stack[0]["components"]) != 1:
        raise ValueError("not one complete top-level component")
    component: dict[str, Any] = stack[0]["components"][0]
    return component


def _split(line: str) -> tuple[str, list[str], str]:
    """(NAME, sorted NAME=value parameters, value) of a content line; quotes protect ; and :."""
    parts: list[str] = []
    start, quoted = 0, False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char in ";:" and not quoted:
            parts.append(line[start:index])
            start = index + 1
            if char == ":":
                params = [f"{p.partition('=')[0].upper()}={p.partition('=')[2]}" for p in parts[1:]]
                return parts[0].upper(), sorted(params), line[start:]
    raise ValueError(f"not a content line: {line!r}")

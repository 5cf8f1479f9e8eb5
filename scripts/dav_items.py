"""What seed_radicale writes: the properties of its calendars and address books and the texts
of their items, the same for the same names and indexes (so a collection deleted and seeded
again compares equal to the first one)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

STAMP = "DTSTAMP:20260101T000000Z"  # always given: Radicale adds the time of upload when absent
ZONE = "TZID=Europe/Paris"
# sent with the items that use it, as clients do: without it Radicale builds one from its time
# zone database, which costs it some 50 ms per item
VTIMEZONE = [
    *("BEGIN:VTIMEZONE", "TZID:Europe/Paris", "BEGIN:STANDARD", "DTSTART:20001029T030000"),
    *("RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", "TZNAME:CET", "TZOFFSETFROM:+0200"),
    *("TZOFFSETTO:+0100", "END:STANDARD", "BEGIN:DAYLIGHT", "DTSTART:20000326T020000"),
    *("RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "TZNAME:CEST", "TZOFFSETFROM:+0100"),
    *("TZOFFSETTO:+0200", "END:DAYLIGHT", "END:VTIMEZONE"),
]
PEOPLE = [
    "Zoë Ångström",
    "Jürgen Müller",
    "Łukasz Wójcik",
    "José Núñez",
    "Mei Chen 陈美",
    "Ann Lee",
]
COLORS = ["#FF8800FF", "#1E90FFFF", "#2E8B57FF", "#8A2BE2FF"]


def calendar(name: str) -> dict[str, str | tuple[str, ...]]:
    """The properties of calendar calNNN: displayname, description, color, components."""
    number = int(name[-3:])
    return {
        "displayname": f"Calendar {number} — café ✓",
        "description": f"Seeded calendar {name} <&>",
        "color": COLORS[number % len(COLORS)],
        "components": ("VEVENT", "VTODO") + (("VJOURNAL",) if number % 2 else ()),
    }


def address_book(name: str) -> dict[str, str]:
    """The properties of address book bookNNN: displayname, description."""
    number = int(name[-3:])
    return {
        "displayname": f"Address book {number} — ünïcode",
        "description": f"Seeded address book {name} <&>",
    }


def event(calendar: str, index: int) -> tuple[str, str]:
    """(name, iCalendar text) of a calendar's index-th item: VEVENTs (timed, all-day, weekly in a
    time zone, some with a moved occurrence, some non-ASCII) and every tenth a VTODO."""
    uid = f"{calendar}-{index:04d}@seed.test"
    day = date(2026, 1, 1) + timedelta(days=index)
    text = _summary(index)
    if index % 10 == 9:
        body = ["BEGIN:VTODO", f"UID:{uid}", STAMP, f"DUE:{day:%Y%m%d}T170000Z", f"SUMMARY:{text}"]
        body += ["STATUS:NEEDS-ACTION", "END:VTODO"]
    else:
        body = ["BEGIN:VEVENT", f"UID:{uid}", STAMP, *_when(index, day), f"SUMMARY:{text}"]
        body += [f"DESCRIPTION:{_description(index)}", "END:VEVENT"]
    if index % 20 == 2:  # weekly (see _when): move its second occurrence
        moved = f"{day + timedelta(days=7):%Y%m%d}"
        body += ["BEGIN:VEVENT", f"UID:{uid}", STAMP, f"RECURRENCE-ID;{ZONE}:{moved}T090000"]
        body += [f"DTSTART;{ZONE}:{moved}T140000", f"DTEND;{ZONE}:{moved}T150000"]
        body += [f"SUMMARY:{text} (moved)", "END:VEVENT"]
    if ZONE in "".join(body):
        body = [*VTIMEZONE, *body]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//module-engine//dav seed//EN", *body]
    return f"{uid}.ics", "\r\n".join([*lines, "END:VCALENDAR", ""])


def _when(index: int, day: date) -> list[str]:
    if index % 5 == 1:
        return [f"DTSTART;VALUE=DATE:{day:%Y%m%d}", f"DTEND;VALUE=DATE:{day + timedelta(1):%Y%m%d}"]
    if index % 4 == 2:
        start, end = f"{day:%Y%m%d}T090000", f"{day:%Y%m%d}T100000"
        return [f"DTSTART;{ZONE}:{start}", f"DTEND;{ZONE}:{end}", "RRULE:FREQ=WEEKLY;COUNT=10"]
    return [f"DTSTART:{day:%Y%m%d}T100000Z", f"DTEND:{day:%Y%m%d}T110000Z"]


def _summary(index: int) -> str:
    return f"Réunion n°{index} — café ✓ 会议" if index % 3 == 0 else f"Event {index}"


def _description(index: int) -> str:
    return (
        f"Agenda for item {index}\\, first line\\nsecond line: long enough to be folded at "
        "seventy-five octets by the server — ünïcode too; and a semicolon"
    )


def contact(book: str, index: int) -> tuple[str, str]:
    """(name, vCard text) of a book's index-th contact: 3.0 for even indexes, 4.0 (urn:uuid
    UID, as Apple and Google clients write them) for odd ones."""
    person = PEOPLE[index % len(PEOPLE)]
    given, family = person.split(" ", 1)
    if index % 2:
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"{book}/{index}")
        name, lines = f"{key}.vcf", ["VERSION:4.0", f"UID:urn:uuid:{key}", "KIND:individual"]
        lines += [
            f"EMAIL;TYPE=work:c{index}@example.org",
            f"TEL;VALUE=uri;TYPE=cell:tel:+1-555-{index:04d}",
        ]
    else:
        uid = f"{book}-{index:04d}"
        name, lines = f"{uid}.vcf", ["VERSION:3.0", f"UID:{uid}", f"ORG:Café {index % 7} Ltd"]
        lines += [
            f"EMAIL;TYPE=INTERNET,HOME:c{index}@example.com",
            f"TEL;TYPE=CELL:+33 6 00 00 {index:04d}",
        ]
        lines += [f"NOTE:Seeded contact {index}\\, note\\nsecond line ✓", "BDAY:1990-02-03"]
    lines += [f"FN:{person} {index}", f"N:{family};{given};;;"]
    if index % 4 == 0:
        lines.append("ADR;TYPE=HOME:;;1 rue de la Paix;Paris;;75002;France")
    return name, "\r\n".join(["BEGIN:VCARD", *lines, "END:VCARD", ""])

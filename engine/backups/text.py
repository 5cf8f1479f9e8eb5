"""What ``engine backups`` prints for people: sizes in binary units, aligned tables, the
resource tree, the verdict of a verification. (--json prints each report's to_json().)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.backups.catalog import Listed
from engine.backups.layout import Resource, Totals, Usage
from engine.backups.verification import Report
from engine.storage import MANIFEST
from engine.tasks.manifest import Entry, Manifest

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 MiB``."""
    value, unit = float(count), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def ratio(totals: Totals) -> str:
    """The compression ratio: ``6.9x`` (``-`` when nothing is stored)."""
    return "-" if totals.ratio is None else f"{totals.ratio:.1f}x"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: int = 0) -> list[str]:
    """Rows under a header, each column as wide as its widest cell; the last ``right``
    columns (numbers) aligned to the right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    first_right = len(header) - right

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(width) if column >= first_right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [line(header), *map(line, rows)]


def sums(totals: Totals) -> str:
    """``3 objects, 120 records, 1.2 KiB stored, 8.0 KiB raw (6.7x)``."""
    return (
        f"{plural(totals.objects, 'object')}, {plural(totals.records, 'record')}, "
        f"{size(totals.stored)} stored, {size(totals.raw)} raw ({ratio(totals)})"
    )


# --------------------------------------------------------------------------- ls


def listing(found: Sequence[Listed], url: str) -> list[str]:
    if not found:
        return [f"no backups under {url}"]
    header = ["BACKUP", "STATE", "TASK", "MODULE", "STARTED", "FINISHED"]
    header += ["ITEMS", "OBJECTS", "STORED", "RAW"]
    rows = [
        [
            one.path or ".",
            one.state_text,
            one.task_uuid or "-",
            " ".join(str(one.module.get(key, "")) for key in ("id", "version")).strip() or "-",
            one.started or "-",
            one.finished or "-",
            str(one.items),
            str(one.totals.objects),
            size(one.totals.stored),
            size(one.totals.raw),
        ]
        for one in found
    ]
    problems = [f"{one.path or '.'}: {one.problem}" for one in found if one.problem]
    return table(header, rows, right=4) + problems


# --------------------------------------------------------------------------- show


def heading(found: Manifest, url: str) -> list[str]:
    """Which backup this is: task, module, times, totals."""
    raw = found.raw
    module = f"{found.module.get('id')} {found.module.get('version', '')}".strip()
    times = f"started {raw.get('startedAt', '-')}, finished {raw.get('finishedAt', '-')}"
    totals = Totals()
    for entry in found.entries:
        totals.add(entry.info)
    return [
        f"backup {found.task_uuid} of {module} at {url}",
        f"{times}; {plural(len(found.items), 'item')}, {sums(totals)}",
    ]


def tree(found: Manifest, roots: Sequence[Resource], url: str) -> list[str]:
    lines = heading(found, url)
    for root in roots:
        lines += _resource(root, depth=0)
    lines += backup_errors(found.raw.get("errors") or [])
    return lines


def _resource(resource: Resource, depth: int) -> Iterator[str]:
    indent = "  " * depth
    yield f"{indent}{resource.name}: {sums(resource.totals())}"
    for entry in resource.objects:
        yield f"{indent}  {_object(entry)}"
    for child in resource.children:
        yield from _resource(child, depth + 1)


def _object(entry: Entry) -> str:
    info = entry.info
    return (
        f"{entry.path}  {entry.format}  {plural(info.records, 'record')}  "
        f"{size(info.size)} stored  {size(info.raw_size)} raw"
    )


def backup_errors(errors: Sequence[Any]) -> list[str]:
    """The backup's own non-fatal errors, as its manifest keeps them."""
    if not errors:
        return []
    lines = [f"{plural(len(errors), 'error')} during the backup:"]
    for error in errors:
        fields = error if isinstance(error, Mapping) else {"description": str(error)}
        where = f"{fields['resource']}: " if fields.get("resource") else ""
        lines.append(f"  {fields.get('code', 'ERROR')} {where}{fields.get('description', '')}")
    return lines


# --------------------------------------------------------------------------- du


def sizes(found: Manifest, used: Usage, url: str) -> list[str]:
    header = ["", "OBJECTS", "RECORDS", "STORED", "RAW", "RATIO"]

    def row(name: str, totals: Totals) -> list[str]:
        counts = [str(totals.objects), str(totals.records)]
        return [name, *counts, size(totals.stored), size(totals.raw), ratio(totals)]

    rows = [row(f"type {name}", totals) for name, totals in sorted(used.types.items())]
    rows += [row(root.name, totals) for root, totals in used.roots]
    rows.append(row("total", used.total))
    return heading(found, url)[:1] + table(header, rows, right=5)


# --------------------------------------------------------------------------- verify


def verdict(report: Report) -> list[str]:
    depth = "structure and data" if report.read_data else "structure only (--read-data reads it)"
    read = f", {size(report.read)} read" if report.read_data else ""
    lines = heading(report.manifest, report.url)[:1]
    lines.append(f"checked {plural(report.objects, 'object')}: {depth}{read}")
    lines += [f"damaged {problem.path}: {problem.what}" for problem in report.damaged]
    lines += [f"orphan  {path}: stored but not listed in {MANIFEST}" for path in report.orphans]
    orphans = f" ({plural(len(report.orphans), 'orphan')})" if report.orphans else ""
    if report.damaged:
        damaged = {problem.path for problem in report.damaged}
        lines.append(f"DAMAGED: {plural(len(damaged), 'object')}{orphans}")
    else:
        lines.append(f"intact{orphans}")
    return lines

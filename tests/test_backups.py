"""engine.backups' pure parts: the resource tree read from a manifest's entries without the
module, sizes per type and root, which folders under a prefix are backups, and --option pairs.
(The commands themselves run end to end in test_backups_cli.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from engine.backups.access import parse_options
from engine.backups.catalog import _roots
from engine.backups.layout import resource_tree, usage
from engine.errors import RequestError
from engine.storage import ObjectInfo
from engine.tasks.manifest import Entry


def entry(kind: str, values: dict[str, Any], size: int = 10, records: int = 1) -> Entry:
    path = "/".join([*map(str, values.values()), f"{kind}.json.zst"])
    info = ObjectInfo(path, size, "0" * 64, 4 * size, "zstd", records)
    return Entry(info, kind, kind, values, "json")


def test_each_resource_hangs_under_the_closest_one_whose_values_its_own_include():
    entries = [
        entry("collection", {"collection": "c1", "bucket": "b1"}),  # keys in another order
        entry("bucket", {"bucket": "b1"}),
        entry("record", {"bucket": "b1", "collection": "c1", "record": "r1"}),
        entry("attachment", {"bucket": "b1", "collection": "c2", "record": "r2", "file": "f"}),
        entry("bucket", {"bucket": "b2"}),
    ]

    [b1, b2] = resource_tree(entries)

    assert [b1.name, b2.name] == ["bucket b1", "bucket b2"]
    [c1, attachment] = b1.children  # c2 and r2 were not backed up: it hangs from b1
    assert c1.name == "collection c1"
    assert [child.name for child in c1.children] == ["record r1"]
    assert attachment.name == "attachment collection=c2, record=r2, file=f"
    assert b1.totals().objects == 4


def test_usage_sums_per_type_per_root_and_in_all_with_the_ratio():
    entries = [
        entry("bucket", {"bucket": "b1"}, size=10, records=1),
        entry("collection", {"bucket": "b1", "collection": "c1"}, size=30, records=5),
        entry("bucket", {"bucket": "b2"}, size=20, records=1),
    ]

    used = usage(entries)

    assert used.types["bucket"].stored == 30
    assert [(root.name, totals.records) for root, totals in used.roots] == [
        ("bucket b1", 6),
        ("bucket b2", 1),
    ]
    assert (used.total.objects, used.total.stored, used.total.raw) == (3, 60, 240)
    assert used.total.ratio == 4.0
    assert used.to_json()["total"]["ratio"] == 4.0


def test_a_backup_is_a_folder_with_a_manifest_or_a_task_record_and_not_one_inside_another():
    paths = [
        "a/manifest.json",
        "a/.engine/tasks/t1.json",
        "a/data/manifest.json",  # a module's own object named so, inside backup a
        "b/.engine/tasks/t2.json",  # no manifest: under way, failed or damaged
        "c/d/manifest.json",
        "e/data.json",
    ]

    assert _roots(paths) == {"a": (["t1"], True), "b": (["t2"], False), "c/d": ([], True)}
    assert _roots(["manifest.json", "x/manifest.json"]) == {"": ([], True)}


def test_option_pairs_nest_by_dotted_keys_and_read_json_values():
    pairs = ["key=id", "client_kwargs.endpoint_url=http://h:1", "anon=true", "a.b.c=3"]

    assert parse_options(pairs) == {
        "key": "id",
        "client_kwargs": {"endpoint_url": "http://h:1"},
        "anon": True,
        "a": {"b": {"c": 3}},
    }


@pytest.mark.parametrize("pair", ["secret-value", "=secret-value", "a..b=secret-value"])
def test_a_bad_option_pair_is_a_usage_error_that_never_shows_its_value(pair: str):
    with pytest.raises(RequestError) as err:
        parse_options([pair])
    assert err.value.exit_code == 2
    assert "secret-value" not in err.value.message

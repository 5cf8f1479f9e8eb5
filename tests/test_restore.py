"""engine.tasks.restore's pure parts: the conflict policy, which stored objects a request
selects, and the records a stored object holds in each format, read back as backups write
them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import BackupDamaged, NotText, RequestError, SaasError, TemplateError
from engine.language.model import Conflict, Scenario, build
from engine.storage import CHUNK_SIZE
from engine.tasks.manifest import Named
from engine.tasks.restore import (
    OUTCOMES,
    conflict_policy,
    records_of,
    scenario_names,
    selected,
    totals,
)
from tests.taskparts import entry, memory_storage, shelf, write_object

pytestmark = pytest.mark.anyio

CHOSEN = "{{ options.conflict }}"


# --------------------------------------------------------------------------- conflict policy


@pytest.mark.parametrize("policy", ["skip", "overwrite", "fail"])
def test_the_conflict_policy_renders_from_the_options(policy: str):
    assert conflict_policy(CHOSEN, {"conflict": policy}) == policy
    assert conflict_policy(policy, {}) == policy


@pytest.mark.parametrize(
    ("chosen", "shown"),
    [("replace", "replace"), ("", ""), ("SKIP", "SKIP"), (["skip"], "['skip']")],
)
def test_a_conflict_policy_that_is_none_of_the_three_is_a_bad_request_naming_it(
    chosen: Any, shown: str
):
    with pytest.raises(RequestError) as caught:
        conflict_policy(CHOSEN, {"conflict": chosen})
    assert caught.value.message == (
        f"the conflict policy is '{shown}'; expected one of skip, overwrite, fail"
    )


def test_a_conflict_policy_naming_a_missing_option_is_a_template_error_at_its_place():
    with pytest.raises(TemplateError) as caught:
        conflict_policy(CHOSEN, {})
    assert caught.value.place == "/restore/conflict"


# --------------------------------------------------------------------------- selection

B1 = entry("bucket", "bucket", {"bucket": "b1"})
B1_C1 = entry("collection", "records", {"bucket": "b1", "collection": "c1"})
B1_C2 = entry("collection", "records", {"bucket": "b1", "collection": "c2"})
B2 = entry("bucket", "bucket", {"bucket": "b2"})
B2_C1 = entry("collection", "records", {"bucket": "b2", "collection": "c1"})
ALL = [B1, B1_C1, B1_C2, B2, B2_C1]


def item(**values: str) -> dict[str, Any]:
    return {"type": "any", "values": values}


def test_a_selected_resource_brings_its_descendants_and_nothing_else():
    assert selected(ALL, [item(bucket="b1")]) == [B1, B1_C1, B1_C2]


def test_a_selected_child_brings_only_itself_not_its_parent_or_namesakes_elsewhere():
    assert selected(ALL, [item(bucket="b1", collection="c1")]) == [B1_C1]


def test_several_selected_resources_keep_the_stored_order():
    chosen = [item(bucket="b2", collection="c1"), item(bucket="b1", collection="c2")]

    assert selected(ALL, chosen) == [B1_C2, B2_C1]


def test_nothing_is_selected_by_no_items_or_an_unknown_resource():
    assert selected(ALL, []) == []
    assert selected(ALL, [item(bucket="b3")]) == []


# --------------------------------------------------------------------------- stored records


async def records(data: bytes, data_format: str) -> list[Any]:
    """The records of data stored (as a backup stores it) at b1/records.<format>.zst."""
    with memory_storage() as storage:
        info = await write_object(storage, f"b1/records.{data_format}.zst", data)
        stored = entry("bucket", "records", {"bucket": "b1"}, info=info, data_format=data_format)
        assert stored.info.compression == "zstd"
        return [record async for record in records_of(storage, stored)]


async def test_json_lines_are_read_one_record_a_line_skipping_blank_ones():
    data = b'{"id": 1}\n\n{"id": 2, "text": "caf\xc3\xa9"}\r\n  \n[3]'

    assert await records(data, "jsonl") == [{"id": 1}, {"id": 2, "text": "café"}, [3]]


async def test_json_lines_spanning_several_read_chunks_come_back_whole():
    lines = [{"id": n, "pad": "x" * 1000} for n in range(3 * CHUNK_SIZE // 1000)]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()

    assert await records(data, "jsonl") == lines


async def test_a_json_array_is_read_item_by_item():
    assert await records(b'[{"id": 1}, "two", 3]', "json") == [{"id": 1}, "two", 3]


@pytest.mark.parametrize(("data", "value"), [(b'{"id": 1}', {"id": 1}), (b'"x"', "x"), (b"7", 7)])
async def test_any_other_json_value_is_one_record(data: bytes, value: Any):
    assert await records(data, "json") == [value]


async def test_a_raw_object_is_one_text_record():
    text = "BEGIN:VCALENDAR\r\nSUMMARY:caf\u00e9\r\nEND:VCALENDAR\r\n"

    assert await records(text.encode(), "raw") == [text]


async def test_a_raw_object_that_is_not_utf8_is_no_text_record_and_the_error_says_upload():
    with pytest.raises(NotText) as caught:
        await records(b"\xff\xfe binary", "raw")
    assert caught.value.message.startswith("b1/records.raw.zst is not UTF-8 text")
    assert "`upload`" in caught.value.message


@pytest.mark.parametrize(
    ("data", "data_format"),
    [
        (b'{"id": 1}\n{"id": 2\n{"id": 3}\n', "jsonl"),
        (b'{"id": 1}\nnot json', "jsonl"),
        (b"[1,", "json"),
    ],
)
async def test_a_stored_record_that_is_not_json_is_a_damaged_backup_naming_the_object(
    data: bytes, data_format: str
):
    path = f"b1/records.{data_format}.zst"

    with pytest.raises(BackupDamaged) as caught:
        await records(data, data_format)
    assert (caught.value.code, caught.value.status) == ("BACKUP_DAMAGED", 400)
    assert caught.value.message == f"the backup is damaged: {path} holds a record that is not JSON"
    assert caught.value.path == path


# --------------------------------------------------------------------------- conflicts, counts


def conflict(**spec: Any) -> Conflict:
    return build(Conflict, spec)


@pytest.mark.parametrize(
    ("spec", "status", "body", "matches"),
    [
        ({"status": [412]}, 412, b"", True),
        ({"status": [412]}, 409, b"", False),
        ({"status": [500], "body": "duplicate id"}, 500, b'{"error": "duplicate id"}', True),
        ({"status": [500], "body": "duplicate id"}, 500, b'{"error": "boom"}', False),
        ({"status": [500], "body": "duplicate id"}, 409, b'{"error": "duplicate id"}', False),
        ({"body": "duplicate id"}, 409, b"duplicate id", True),
        ({"body": "duplicate id"}, 503, b"<p>duplicate id</p>", True),
        ({"body": "duplicate id"}, 201, b'{"note": "duplicate id"}', False),
        ({"body": "Duplicate"}, 500, b"duplicate", False),
    ],
)
def test_an_answer_is_a_conflict_when_its_status_and_body_fragment_both_say_so(
    spec: dict[str, Any], status: int, body: bytes, matches: bool
):
    assert conflict(**spec).matches(status, body) is matches


def test_totals_add_up_the_counts_of_finished_units_old_records_included():
    units = [
        {"written": 2, "conflicts": 1, "skipped": 0, "failed": 1, "type": "bucket"},
        {"written": 3, "skipped": 4, "failed": 0},  # recorded before conflicts were counted
        {"written": "7", "remember": {"id": 1}},  # not a count: ignored
    ]
    assert totals(units) == {"written": 5, "conflicts": 1, "skipped": 4, "failed": 1}
    assert totals([]) == dict.fromkeys(OUTCOMES, 0)


def test_templates_see_the_scenario_by_id_and_kind_and_no_scenario_as_in_place():
    scenario = build(Scenario, {"id": "AS_NEW", "kind": "asNew", "name": "As new"})
    assert scenario_names(scenario) == {"id": "AS_NEW", "kind": "asNew"}
    assert scenario_names(None) == {"id": None, "kind": "inPlace"}
    chosen = "{{ 'overwrite' if scenario.kind == 'asNew' else 'skip' }}"
    assert conflict_policy(chosen, {}, scenario) == "overwrite"
    assert conflict_policy(chosen, {}) == "skip"


def test_an_error_entry_names_the_resource_by_name_and_type_else_by_its_values():
    kind = shelf().types["collection"]
    values = {"bucket": "b1", "collection": "c1"}
    failure = SaasError("PUT /x: the SaaS answered HTTP 500")
    assert Named.of(kind, values, "Recipes").entry(failure) == {
        "code": "SAAS_ERROR",
        "description": "PUT /x: the SaaS answered HTTP 500",
        "resource": "Recipes",
        "resourceType": "collection",
    }
    assert Named.of(kind, values).name == Named.of(kind, values, "").name == "b1/c1"
    assert str(Named.of(kind, values, 7)) == "collection b1/c1"

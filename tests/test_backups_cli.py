"""End to end: `engine backups` (ls, show, verify, du, cat, export) on real backups made through
the module API from a real Kinto, on a local folder, moto S3 and fake-gcs-server; then on
copies of them damaged in each way a stored backup can be (a flipped byte, a truncated, deleted,
swapped or extra object, a deleted manifest), each command's output and exit code checked."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from engine.backups.text import size
from engine.cli import main
from scripts import servers
from tests.taskflow import (
    KINTO_MODULE,
    ROOT,
    S3_SECRET,
    Backend,
    Place,
    Shape,
    assert_done,
    assert_same,
    auth_of,
    delete_buckets,
    dump_buckets,
    flip_a_byte,
    gcs_backend,
    local_backend,
    new_uuid,
    normalized,
    root_ctxs,
    run_tasks,
    s3_backend,
    seed,
)

pytestmark = [
    pytest.mark.e2e,
    # gcsfs hands aiohttp each resumable-upload chunk as raw bytes; aiohttp warns that this may
    # stall its event loop, which is fsspec's own loop thread here: harmless.
    pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning"),
]

BACKENDS = ["local", "s3", "gcs"]
PROTOCOLS = {"local": "file", "s3": "s3", "gcs": "gs"}


# --------------------------------------------------------------------------- one backup each


@dataclass
class Stored:
    """One backend's area, the backup made there, and the bucket it holds as Kinto had it."""

    area: Backend
    place: Place
    bucket: str
    kinto: dict[str, Any]  # the bucket as Kinto holds it (dump_buckets)

    def copy(self) -> Place:
        """A copy of the backup in a folder of its own, to damage."""
        copy = self.area.place(f"copy-{uuid.uuid4().hex[:8]}")
        for path in self.place.files():
            copy.write(path, self.place.read(path))
        return copy

    def env(self) -> dict[str, str]:
        """The environment `engine backups` needs to reach the area."""
        env = {"ENGINE_STORAGE_ALLOW": self.area.allow, "ENGINE_STORAGE_TIMEOUT": "20"}
        if self.area.options:
            env["ENGINE_STORAGE_OPTIONS"] = json.dumps(
                {PROTOCOLS[self.area.name]: self.area.options}
            )
        return env

    def objects(self) -> list[dict[str, Any]]:
        return list(self.place.manifest()["objects"])

    def object_at(self, suffix: str) -> dict[str, Any]:
        return next(entry for entry in self.objects() if entry["path"].endswith(suffix))


@pytest.fixture(scope="module")
def stored(
    kinto: servers.KintoServer,
    moto: servers.Server,
    fake_gcs: servers.Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Stored]]:
    """A backup of one Kinto bucket (two collections of records, an empty one, a group) on each
    backend, made at once through the API; shared by the module's tests, which damage copies."""
    from engine.api.app import create_app
    from engine.language.loader import load_module
    from engine.settings import Settings

    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    seed(kinto, Shape({bucket: [25, 12, 0]}, {bucket: 1}))
    with ExitStack() as stack:
        areas = {
            "local": stack.enter_context(local_backend(tmp_path_factory.mktemp("cli") / "area")),
            "s3": stack.enter_context(s3_backend(moto)),
            "gcs": stack.enter_context(gcs_backend(fake_gcs)),
        }
        settings = Settings(storage_allow=tuple(area.allow for area in areas.values()))
        api = stack.enter_context(TestClient(create_app(load_module(KINTO_MODULE), settings)))
        ctx = root_ctxs(api, auth_of(kinto))[bucket]
        places = {name: area.place("backup-1") for name, area in areas.items()}
        calls = [
            (
                "/api/backup",
                {
                    "auth": auth_of(kinto),
                    "taskUuid": new_uuid(),
                    "storage": place.storage(),
                    "ctx": ctx,
                    "options": {"with_permissions": True},
                },
            )
            for place in places.values()
        ]
        for result in run_tasks(api, calls):
            assert_done(result)
        dump = dump_buckets(kinto, [bucket])["buckets"][bucket]
        yield {name: Stored(areas[name], places[name], bucket, dump) for name in areas}
    delete_buckets(kinto, [bucket])


@pytest.fixture(params=BACKENDS)
def backup(request: pytest.FixtureRequest, stored: dict[str, Stored]) -> Stored:
    return stored[request.param]


def cli(backup: Stored, *args: str, env: dict[str, str] | None = None) -> Result:
    """`engine backups ARGS` in process; no output of it may ever show the S3 secret."""
    result = CliRunner().invoke(main, ["backups", *args], env=env or backup.env())
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    for output in (result.stdout, result.stderr):
        assert S3_SECRET not in output
    return result


def cli_json(backup: Stored, *args: str) -> tuple[int, Any]:
    result = cli(backup, *args, "--json")
    return result.exit_code, json.loads(result.stdout)


# --------------------------------------------------------------------------- intact backups


def test_ls_lists_the_backup_with_its_task_module_times_and_sizes(backup: Stored) -> None:
    objects = backup.objects()
    manifest = backup.place.manifest()

    code, listed = cli_json(backup, "ls", backup.area.allow)

    assert code == 0
    # other tests add damaged copies beside it (their folders are named copy-...)
    found = next(found for found in listed["backups"] if found["path"] == "backup-1")
    assert found["complete"] is True
    assert found["taskUuid"] == manifest["taskUuid"]
    assert found["module"] == {"id": "kinto", "version": manifest["module"]["version"]}
    assert (found["startedAt"], found["finishedAt"]) == (
        manifest["startedAt"],
        manifest["finishedAt"],
    )
    assert found["items"] == 1
    assert found["objects"] == len(objects)
    assert found["stored"] == sum(entry["size"] for entry in objects)
    assert found["raw"] == sum(entry["rawSize"] for entry in objects)
    assert found["records"] == 25 + 12 + 3 + 1 + 1  # records, 3 collections, a bucket, a group

    lines = cli(backup, "ls", backup.area.allow).stdout.splitlines()
    assert lines[0].split() == [
        *("BACKUP", "STATE", "TASK", "MODULE", "STARTED", "FINISHED"),
        *("ITEMS", "OBJECTS", "STORED", "RAW"),
    ]
    row = next(line.split() for line in lines if line.startswith("backup-1 "))
    assert row[:3] == ["backup-1", "complete", manifest["taskUuid"]]


def test_verify_reads_every_byte_of_an_intact_backup_and_exits_zero(backup: Stored) -> None:
    code, report = cli_json(backup, "verify", backup.place.url, "--read-data")

    assert code == 0
    assert report["intact"] is True
    assert (report["damaged"], report["orphans"]) == ([], [])
    assert report["objects"] == len(backup.objects())
    assert report["read"] == report["stored"] == sum(entry["size"] for entry in backup.objects())

    result = cli(backup, "verify", backup.place.url)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-2:] == [
        f"checked {len(backup.objects())} objects: structure only (--read-data reads it)",
        "intact",
    ]


def test_show_draws_the_bucket_over_its_collections_and_group(backup: Stored) -> None:
    code, shown = cli_json(backup, "show", backup.place.url)

    assert code == 0
    [root] = shown["resources"]
    assert (root["type"], root["values"]) == ("bucket", {"bucket": backup.bucket})
    assert [entry["path"] for entry in root["objects"]] == [f"{backup.bucket}/bucket.json.zst"]
    children = {(child["type"], *child["values"].values()) for child in root["children"]}
    assert children == {
        ("collection", backup.bucket, "c00"),
        ("collection", backup.bucket, "c01"),
        ("collection", backup.bucket, "c02"),
        ("group", backup.bucket, "g00"),
    }
    assert root["totals"]["objects"] == shown["totals"]["objects"] == len(backup.objects())
    c00 = next(child for child in root["children"] if child["values"].get("collection") == "c00")
    assert c00["totals"]["records"] == 26  # the collection and its 25 records

    lines = cli(backup, "show", backup.place.url).stdout.splitlines()
    assert lines[0].startswith(f"backup {shown['taskUuid']} of kinto ")
    assert lines[2].startswith(f"bucket {backup.bucket}: {len(backup.objects())} objects, ")
    assert "  collection c00: 2 objects, 26 records, " in "\n".join(lines)
    records = backup.object_at("c00/records.jsonl.zst")
    sizes = f"{size(records['size'])} stored  {size(records['rawSize'])} raw"
    assert f"    {records['path']}  jsonl  25 records  {sizes}" in lines


def test_du_sums_sizes_per_type_and_per_root_with_the_compression_ratio(backup: Stored) -> None:
    objects = backup.objects()

    code, used = cli_json(backup, "du", backup.place.url)

    assert code == 0
    for kind in ("bucket", "collection", "group"):
        mine = [entry for entry in objects if entry["type"] == kind]
        assert used["types"][kind]["objects"] == len(mine)
        assert used["types"][kind]["stored"] == sum(entry["size"] for entry in mine)
        assert used["types"][kind]["raw"] == sum(entry["rawSize"] for entry in mine)
    total = used["total"]
    assert total["stored"] == sum(entry["size"] for entry in objects)
    assert total["ratio"] == round(total["raw"] / total["stored"], 2)
    assert [root["values"] for root in used["roots"]] == [{"bucket": backup.bucket}]
    assert used["roots"][0]["raw"] == total["raw"]

    lines = cli(backup, "du", backup.place.url).stdout.splitlines()
    assert lines[1].split() == ["OBJECTS", "RECORDS", "STORED", "RAW", "RATIO"]
    assert lines[-1].split()[:2] == ["total", str(len(objects))]
    assert lines[-1].endswith(f"{total['raw'] / total['stored']:.1f}x")


def test_cat_writes_one_object_decompressed(backup: Stored) -> None:
    path = backup.object_at("c01/records.jsonl.zst")["path"]

    result = cli(backup, "cat", backup.place.url, path)

    assert result.exit_code == 0
    assert result.stdout_bytes == backup.place.contents(path, "zstd")
    lines = result.stdout_bytes.decode().splitlines()
    assert len(lines) == 12
    assert json.loads(lines[0])["data"]["id"].startswith(f"rec-{backup.bucket}-01-")


def test_export_writes_plain_files_that_hold_what_kinto_had(backup: Stored, tmp_path: Path) -> None:
    folder = tmp_path / "plain"

    result = cli(backup, "export", backup.place.url, str(folder))

    assert result.exit_code == 0, result.stderr
    objects = backup.objects()
    assert result.stdout.startswith(f"exported {len(objects)} objects, ")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    plain = sorted(entry["path"].removesuffix(".zst") for entry in objects)
    assert files == sorted([*plain, "manifest.json"])
    exported = json.loads((folder / "manifest.json").read_text())
    assert exported["exportOf"] == backup.place.url
    assert {entry["compression"] for entry in exported["objects"]} == {None}
    assert_same(normalized(bucket_from(folder, backup.bucket)), normalized(backup.kinto))


def bucket_from(folder: Path, bucket: str) -> dict[str, Any]:
    """The bucket as plain exported files hold it, in dump_buckets' shape."""
    base = folder / bucket

    def node(path: Path) -> dict[str, Any]:
        body = json.loads(path.read_text())
        return {"data": body["data"], "permissions": body.get("permissions", {})}

    collections = {}
    for place in sorted((base / "collections").iterdir()):
        lines = (place / "records.jsonl").read_text().splitlines()
        records = {json.loads(line)["data"]["id"]: json.loads(line) for line in lines}
        collections[place.name] = node(place / "collection.json") | {
            "records": {rid: node_of(body) for rid, body in records.items()}
        }
    groups = {path.stem: node(path) for path in (base / "groups").glob("*.json")}
    return node(base / "bucket.json") | {"groups": groups, "collections": collections}


def node_of(body: dict[str, Any]) -> dict[str, Any]:
    return {"data": body["data"], "permissions": body.get("permissions", {})}


def test_verify_run_as_a_process_prints_no_progress_off_a_terminal(
    stored: dict[str, Stored],
) -> None:
    backup = stored["s3"]
    argv = [sys.executable, "-m", "engine", "backups", "verify", backup.place.url, "--read-data"]

    done = subprocess.run(
        [*argv, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ | backup.env(),
        timeout=120,
        check=False,
    )

    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["intact"] is True
    assert S3_SECRET not in done.stdout


def test_verify_on_a_terminal_shows_a_progress_bar_of_bytes_and_objects(
    stored: dict[str, Stored],
) -> None:
    backup = stored["local"]
    argv = [sys.executable, "-m", "engine", "backups", "verify", backup.place.url, "--read-data"]
    leader, follower = pty.openpty()
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=follower, cwd=ROOT, env=os.environ | backup.env()
    ) as process:
        os.close(follower)
        shown = _read_all(leader, process)
        assert process.wait(60) == 0
    objects = len(backup.objects())
    assert "verifying" in shown
    assert f"{objects}/{objects} objects" in shown
    assert "/s" in shown


def _read_all(fd: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """What a process writes to a terminal until it ends."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            data += chunk
        elif process.poll() is not None:
            break
    os.close(fd)
    return data.decode(errors="replace")


# --------------------------------------------------------------------------- damaged backups


def flip_records(place: Place, records: str, other: str) -> None:
    flip_a_byte(place, records)


def truncate_records(place: Place, records: str, other: str) -> None:
    place.write(records, place.read(records)[:-7])


def delete_records(place: Place, records: str, other: str) -> None:
    place.remove(records)


def swap_records(place: Place, records: str, other: str) -> None:
    first, second = place.read(records), place.read(other)
    place.write(records, second)
    place.write(other, first)


# damage -> exit code of verify, of verify --read-data, and what they say of which object
Named = list[tuple[str, str]]
DAMAGES: dict[str, tuple[Callable[[Place, str, str], None], int, int, Named]] = {
    "flipped byte": (flip_records, 0, 1, [("records", "checksum mismatch: ")]),
    "truncated": (truncate_records, 1, 1, [("records", "stored "), ("records", " (truncated)")]),
    "deleted": (delete_records, 1, 1, [("records", "missing: listed in manifest.json")]),
    "swapped": (swap_records, 1, 1, [("records", "stored "), ("other", "stored ")]),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_verify_names_each_damaged_object_and_exits_one(backup: Stored, damage: str) -> None:
    change, structure_code, data_code, named = DAMAGES[damage]
    copy = backup.copy()
    records = backup.object_at("c00/records.jsonl.zst")["path"]
    other = backup.object_at("c01/records.jsonl.zst")["path"]
    change(copy, records, other)

    structure = cli(backup, "verify", copy.url)
    code, report = cli_json(backup, "verify", copy.url, "--read-data")

    assert structure.exit_code == structure_code, structure.output
    assert code == data_code, report
    problems = {problem["path"]: problem["problem"] for problem in report["damaged"]}
    expected = {"records": records, "other": other}
    for label, text in named:
        assert text in problems[expected[label]], problems
    lines = cli(backup, "verify", copy.url, "--read-data").stdout.splitlines()
    assert lines[-1] == f"DAMAGED: {len(problems)} object{'s' if len(problems) > 1 else ''}"
    assert f"damaged {records}: {problems[records]}" in lines


def test_an_object_holding_another_s_bytes_at_its_own_size_is_found_by_reading_the_data(
    backup: Stored,
) -> None:
    copy = backup.copy()
    first, second = "c00/collection.json.zst", "c01/collection.json.zst"
    paths = [backup.object_at(suffix)["path"] for suffix in (first, second)]
    data = [copy.read(path) for path in paths]
    copy.write(paths[0], data[1][: len(data[0])].ljust(len(data[0]), b"\0"))

    assert cli(backup, "verify", copy.url).exit_code == 0  # same size: the structure holds
    code, report = cli_json(backup, "verify", copy.url, "--read-data")

    assert code == 1
    [problem] = report["damaged"]
    assert problem["path"] == paths[0]
    assert problem["problem"].startswith("checksum mismatch: ")


def test_an_extra_object_is_an_orphan_not_damage(backup: Stored) -> None:
    copy = backup.copy()
    copy.write(f"{backup.bucket}/extra.json", b'{"left": "over"}')

    code, report = cli_json(backup, "verify", copy.url, "--read-data")
    lines = cli(backup, "verify", copy.url).stdout.splitlines()

    assert code == 0
    assert report["orphans"] == [f"{backup.bucket}/extra.json"]
    assert report["damaged"] == []
    assert f"orphan  {backup.bucket}/extra.json: stored but not listed in manifest.json" in lines
    assert lines[-1] == "intact (1 orphan)"


def test_a_backup_without_its_manifest_is_incomplete_everywhere(backup: Stored) -> None:
    copy = backup.copy()
    copy.remove("manifest.json")
    path = backup.object_at("bucket.json.zst")["path"]

    for args in (["verify"], ["verify", "--read-data"], ["show"], ["du"]):
        result = cli(backup, args[0], copy.url, *args[1:])
        assert result.exit_code == 3, result.output
        assert result.stderr == (
            f"Error: no manifest.json at {copy.url}: the backup is incomplete (or there is none)\n"
        )
    assert cli(backup, "cat", copy.url, path).exit_code == 3
    code, answer = cli_json(backup, "verify", copy.url)
    assert (code, answer["error"]["code"]) == (3, "INCOMPLETE_BACKUP")

    code, listed = cli_json(backup, "ls", backup.area.allow)
    states = {found["path"]: (found["state"], found["taskStatus"]) for found in listed["backups"]}
    assert states[copy.url.rsplit("/", 1)[1]] == ("incomplete", "DONE")
    assert states["backup-1"] == ("complete", "DONE")


def test_cat_and_export_of_a_damaged_object_exit_one_and_export_writes_no_manifest(
    backup: Stored, tmp_path: Path
) -> None:
    copy = backup.copy()
    records = backup.object_at("c00/records.jsonl.zst")["path"]
    flip_a_byte(copy, records)

    cat = cli(backup, "cat", copy.url, records)
    export = cli(backup, "export", copy.url, str(tmp_path / "plain"))

    assert cat.exit_code == export.exit_code == 1
    assert cat.stderr.startswith(f"Error: cannot verify {records} under {copy.url}: ")
    assert not (tmp_path / "plain" / "manifest.json").exists()
    assert not (tmp_path / "plain" / records.removesuffix(".zst")).exists()


# --------------------------------------------------------------------------- refusals


def test_a_url_the_server_would_refuse_is_refused_with_exit_four(stored: dict[str, Stored]) -> None:
    backup = stored["local"]
    outside = str(Path(backup.area.base).parent / "elsewhere")

    for url in (outside, "http://127.0.0.1/backups", f"{backup.area.allow}/a?b=c"):
        code, answer = cli_json(backup, "verify", url)
        assert code == 4, answer
    assert answer["error"]["code"] == "STORAGE_NOT_ALLOWED"
    result = cli(backup, "ls", outside)
    assert result.exit_code == 4
    assert "not inside an allowed storage area (ENGINE_STORAGE_ALLOW)" in result.stderr


def test_unreachable_storage_exits_four_and_never_shows_the_option_values(
    stored: dict[str, Stored],
) -> None:
    backup = stored["s3"]
    env = {"ENGINE_STORAGE_ALLOW": backup.area.allow, "ENGINE_STORAGE_TIMEOUT": "10"}
    closed = f"http://{servers.HOST}:{servers.free_port()}"
    options = ["--option", "key=test-key-id", "--option", f"secret={S3_SECRET}"]
    options += ["--option", f"client_kwargs.endpoint_url={closed}"]

    result = cli(backup, "verify", backup.place.url, *options, env=env)

    assert result.exit_code == 4
    assert result.stderr.startswith(f"Error: cannot read manifest.json under {backup.place.url}")
    assert "test-key-id" not in result.stderr  # cli() checks the secret itself


def test_the_same_backup_is_reached_with_option_flags_instead_of_the_environment(
    stored: dict[str, Stored],
) -> None:
    backup = stored["s3"]
    env = {"ENGINE_STORAGE_ALLOW": backup.area.allow}
    options = ["--option", "key=test-key-id", "--option", f"secret={S3_SECRET}"]
    endpoint = backup.area.options["client_kwargs"]["endpoint_url"]
    options += ["--option", f"client_kwargs.endpoint_url={endpoint}"]

    result = cli(backup, "verify", backup.place.url, "--read-data", *options, env=env)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "intact"


def test_usage_errors_exit_two(stored: dict[str, Stored]) -> None:
    backup = stored["local"]
    url = backup.place.url

    missing = cli(backup, "cat", url, f"{backup.bucket}/bucket.json")
    assert missing.exit_code == 2
    assert missing.stderr.startswith(
        f"Error: {backup.bucket}/bucket.json is not an object of this backup (`engine backups "
        f"show` lists them); did you mean {backup.bucket}/bucket.json.zst, "
    )
    bad = cli(backup, "verify", url, "--option", f"nokey{S3_SECRET}")
    assert (bad.exit_code, bad.stderr) == (
        2,
        "Error: --option takes key=value (a dotted key nests), not one without '='\n",
    )
    env = backup.env() | {"ENGINE_STORAGE_OPTIONS": f'{{"s3": "{S3_SECRET}"}}'}
    assert cli(backup, "ls", url, env=env).exit_code == 2
    assert cli(backup, "verify").exit_code == 2  # click's own: a missing argument
    help_text = cli(backup, "verify", "--help").stdout
    assert "3  incomplete or not a backup" in help_text
    assert "4  storage not reachable, or the URL not allowed" in help_text

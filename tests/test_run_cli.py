"""`engine run`: the module API in process, driven through click's runner and as a subprocess
against a real Kinto and a real Radicale: discovery, items by key=value, name path and ctx, a
backup and restore round trip, a dry run, exit codes, settings from a file, from
ENGINE_SETTINGS_* and asked on a pseudo-terminal; no auth setting ever shows."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from scripts import dav, servers
from tests import taskflow

pytestmark = pytest.mark.e2e

KINTO = str(taskflow.KINTO_MODULE)
RADICALE = str(taskflow.ROOT / "modules" / "radicale")
USER, PASSWORD = "carol", "Run-Cli-Radicale-Secret-5521"


def settings_file(folder: Path, settings: Mapping[str, Any]) -> Path:
    path = folder / f"settings-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(dict(settings)))
    return path


def kinto_settings(kinto: servers.KintoServer) -> dict[str, Any]:
    return dict(taskflow.auth_of(kinto)["settings"])


@pytest.fixture
def area(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A storage area the engine allows (ENGINE_STORAGE_ALLOW), for click runner calls."""
    folder = tmp_path / "area"
    folder.mkdir()
    monkeypatch.setenv("ENGINE_STORAGE_ALLOW", str(folder))
    return folder


@pytest.fixture
def bucket(kinto: servers.KintoServer) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh bucket (two collections, a group) and the Kinto's dump of it."""
    name = f"run-{uuid.uuid4().hex[:8]}"
    shape = taskflow.Shape(collections={name: [12, 3]}, groups={name: 1})
    taskflow.seed(kinto, shape)
    yield name, taskflow.dump_buckets(kinto, [name])
    taskflow.delete_buckets(kinto, [name])


def run(*args: str, settings: Path | None = None) -> Result:
    extra = ["--settings", str(settings)] if settings else []
    return CliRunner().invoke(main, ["run", *args, *extra], catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def names(listed: Mapping[str, Any]) -> list[str]:
    return [resource["name"] for resource in listed["resources"]]


# --------------------------------------------------------------------------- discovery


def test_roots_lists_the_buckets_and_resources_takes_key_value_name_path_and_ctx(
    kinto: servers.KintoServer, bucket: tuple[str, Any], tmp_path: Path
) -> None:
    name, _ = bucket
    settings = settings_file(tmp_path, kinto_settings(kinto))
    assert name in names(as_json(run(KINTO, "roots", "--json", settings=settings)))
    ctx = {"kind": "root@kinto", "type": "bucket", "values": {"bucket": name}}
    for item in (f"bucket={name}", name, f"bucket:bucket={name}", json.dumps(ctx)):
        listed = as_json(run(KINTO, "resources", item, "--json", settings=settings))
        assert sorted(names(listed)) == ["c00", "c01", "g00"], item
    text = run(KINTO, "resources", f"{name}/", settings=settings)
    assert text.exit_code == 0
    assert text.output.splitlines()[0].split() == ["NAME", "TYPE", "ID"]
    assert f"{name}/c00" in text.output


def test_tree_draws_the_resources_as_a_tree_to_the_depth_asked(
    kinto: servers.KintoServer, bucket: tuple[str, Any], tmp_path: Path
) -> None:
    name, _ = bucket
    settings = settings_file(tmp_path, kinto_settings(kinto))
    drawn = run(KINTO, "tree", settings=settings)
    assert drawn.exit_code == 0, drawn.output
    lines = drawn.output.splitlines()
    start = lines.index(f"{name} (bucket)")
    assert lines[start + 1 : start + 4] == [
        "├── c01 (collection)",
        "├── c00 (collection)",
        "└── g00 (group)",
    ] or sorted(lines[start + 1 : start + 4]) == sorted(
        ["├── c00 (collection)", "├── c01 (collection)", "└── g00 (group)"]
    )
    shallow = as_json(run(KINTO, "tree", "--depth", "1", "--json", settings=settings))
    mine = [node for node in shallow["resources"] if node["name"] == name]
    assert mine and mine[0]["children"] == []
    deep = as_json(run(KINTO, "tree", "--json", settings=settings))
    mine = [node for node in deep["resources"] if node["name"] == name]
    assert sorted(child["name"] for child in mine[0]["children"]) == ["c00", "c01", "g00"]


def test_an_item_that_names_nothing_is_a_usage_error(
    kinto: servers.KintoServer, tmp_path: Path
) -> None:
    settings = settings_file(tmp_path, kinto_settings(kinto))
    for item, says in (
        ("nosuch=1", "no resource type takes exactly these keys"),
        ("no-such-bucket-anywhere", "no 'no-such-bucket-anywhere' under the roots"),
        ('{"kind": "root@other"}', "belongs to module 'other'"),
        ("widget:bucket=x", "no resource type 'widget'"),
    ):
        result = run(KINTO, "resources", item, settings=settings)
        assert result.exit_code == 2, (item, result.output)
        assert says in result.stderr and "Error: BAD" in result.stderr


# --------------------------------------------------------------------------- tasks


def test_a_bucket_backed_up_restores_what_was_deleted_after_a_dry_run_that_writes_nothing(
    kinto: servers.KintoServer, bucket: tuple[str, Any], area: Path, tmp_path: Path
) -> None:
    name, before = bucket
    settings = settings_file(tmp_path, kinto_settings(kinto))
    url = str(area / "one")
    backed = as_json(
        run(KINTO, "backup", f"bucket={name}", "--to", url, "--json", settings=settings)
    )
    assert backed["status"] == "DONE" and backed["errors"] == []
    assert backed["progress"]["done"] == 4 and backed["progress"]["bytes"] > 0
    assert (area / "one" / "manifest.json").exists()
    with taskflow.kinto_client(kinto.url, kinto.admin) as client:
        client.delete(f"/buckets/{name}/collections/c00").raise_for_status()
    lost = taskflow.dump_buckets(kinto, [name])
    assert list(lost["buckets"][name]["collections"]) == ["c01"]

    dry = run(KINTO, "restore", "--from", url, "--dry-run", "--json", settings=settings)
    answer = as_json(dry)
    assert answer["dryRun"]["writes"] == answer["restore"]["written"] > 12
    paths = {write["path"] for write in answer["dryRun"]["requests"]}
    assert f"/buckets/{name}/collections/c00/records/{taskflow.record_id(name, 0, 0)}" in paths
    assert taskflow.dump_buckets(kinto, [name]) == lost

    restored = run(KINTO, "restore", "--from", url, f"bucket={name}", settings=settings)
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.startswith("restored 4 resources")
    assert "13 written" in restored.stdout  # c00 and its 12 records; the rest were there
    after = taskflow.dump_buckets(kinto, [name])
    taskflow.assert_same(
        taskflow.without_last_modified(after), taskflow.without_last_modified(before)
    )


def test_a_backup_outside_the_allowed_storage_and_to_a_used_place_exit_with_their_codes(
    kinto: servers.KintoServer, bucket: tuple[str, Any], area: Path, tmp_path: Path
) -> None:
    name, _ = bucket
    settings = settings_file(tmp_path, kinto_settings(kinto))
    refused = run(KINTO, "backup", name, "--to", str(tmp_path / "elsewhere"), settings=settings)
    assert refused.exit_code == 4
    assert "Error: STORAGE_NOT_ALLOWED" in refused.stderr
    url = str(area / "twice")
    assert run(KINTO, "backup", name, "--to", url, settings=settings).exit_code == 0
    again = run(KINTO, "backup", name, "--to", url, "--json", settings=settings)
    assert again.exit_code == 2
    assert json.loads(again.stdout)["error"]["code"] == "BACKUP_EXISTS"
    missing = run(KINTO, "restore", "--from", str(area / "none"), name, settings=settings)
    assert missing.exit_code == 3 and "INCOMPLETE_BACKUP" in missing.stderr
    verified = run(KINTO, "verify", url, "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["damaged"] == []


def test_export_and_status_answer_through_the_api(
    kinto: servers.KintoServer, bucket: tuple[str, Any], area: Path, tmp_path: Path
) -> None:
    name, _ = bucket
    settings = settings_file(tmp_path, kinto_settings(kinto))
    url = str(area / "exported-from")
    backed = as_json(run(KINTO, "backup", name, "--to", url, "--json", settings=settings))
    destination = str(area / "exported")
    exported = as_json(
        run(KINTO, "export", "--from", url, "--to", destination, "--json", settings=settings)
    )
    assert exported["status"] == "DONE" and exported["errors"] == []
    assert any(path.suffix == ".json" for path in (area / "exported").rglob("*"))
    task = backed["taskUuid"]
    status = as_json(run(KINTO, "status", url, task, "--json", settings=settings))
    assert status["status"] == "DONE" and status["taskUuid"] == task


# --------------------------------------------------------------------------- settings and codes


def engine_run(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "engine", "run", *args]
    environment = {
        key: value for key, value in os.environ.items() if key.startswith(("PATH", "HOME"))
    }
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=taskflow.ROOT,
        env=environment | dict(env or {}),
        timeout=120,
        check=False,
    )


def test_a_wrong_password_exits_6_as_a_subprocess_and_never_shows(
    kinto: servers.KintoServer, tmp_path: Path
) -> None:
    wrong = kinto_settings(kinto) | {"password_secret": "Wrong-Password-Shown-Nowhere-913"}
    path = settings_file(tmp_path, wrong)
    for command in ("check", "roots"):
        done = engine_run(KINTO, command, "--settings", str(path))
        assert done.returncode == 6, done.stderr
        assert "Error: SAAS_AUTH_FAILED" in done.stderr
        assert "Wrong-Password" not in done.stdout + done.stderr
    good = engine_run(
        KINTO, "check", "--settings", str(settings_file(tmp_path, kinto_settings(kinto)))
    )
    assert good.returncode == 0 and good.stdout.startswith("valid")


def test_settings_from_engine_settings_variables_a_yaml_file_and_a_form_rule_broken_exits_5(
    kinto: servers.KintoServer, tmp_path: Path
) -> None:
    settings = kinto_settings(kinto)
    env = {f"ENGINE_SETTINGS_{key.upper()}": str(value) for key, value in settings.items()}
    done = engine_run(KINTO, "roots", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout)["resources"], list)
    yaml_file = tmp_path / "auth.yaml"  # a whole AuthInfo, in YAML
    yaml_file.write_text("settings:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items()))
    assert as_json(run(KINTO, "check", "--json", settings=yaml_file))["valid"] is True
    broken = engine_run(KINTO, "roots", env=env | {"ENGINE_SETTINGS_SERVER_URL": "not a url"})
    assert broken.returncode == 5, broken.stderr
    assert "Error: INVALID_SETTINGS" in broken.stderr


# --------------------------------------------------------------------------- Radicale


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    with servers.start_radicale(tmp_path_factory.mktemp("radicale"), {USER: PASSWORD}) as server:
        dav.seed_radicale(
            server.url, USER, PASSWORD, calendars=2, address_books=1, events=10, contacts=5
        )
        yield server


def radicale_env(radicale: servers.Server, area: Path) -> dict[str, str]:
    return {
        "ENGINE_SETTINGS_SERVER_URL": radicale.url,
        "ENGINE_SETTINGS_USERNAME": USER,
        "ENGINE_SETTINGS_PASSWORD_SECRET": PASSWORD,
        "ENGINE_STORAGE_ALLOW": str(area),
    }


def test_a_radicale_calendar_round_trips_by_engine_run_alone(
    radicale: servers.Server, tmp_path: Path
) -> None:
    env = radicale_env(radicale, tmp_path)
    before = dav.dump_radicale(radicale.url, USER, PASSWORD)
    url = str(tmp_path / "cal")
    backed = engine_run(RADICALE, "backup", "calendar:collection=cal000", "--to", url, env=env)
    assert backed.returncode == 0, backed.stderr
    assert backed.stdout.startswith("backed up 1 resource ")
    assert "backup: 1/1 resources" in backed.stderr  # plain progress lines: not a terminal
    dav.delete_collections(radicale.url, USER, PASSWORD, [f"/{USER}/cal000/"])
    assert "cal000" not in dav.dump_radicale(radicale.url, USER, PASSWORD)
    restored = engine_run(RADICALE, "restore", "--from", url, "--scenario", "IN_PLACE", env=env)
    assert restored.returncode == 0, restored.stderr
    assert dav.dump_radicale(radicale.url, USER, PASSWORD) == before
    assert PASSWORD not in backed.stdout + backed.stderr + restored.stdout + restored.stderr


def read_until(fd: int, wanted: str, seen: list[str], timeout: float = 60.0) -> str:
    """Everything the terminal shows until wanted appears (seen keeps all of it)."""
    text = ""
    while wanted not in text:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no {wanted!r} on the terminal; it showed: {''.join(seen) + text!r}"
        try:
            chunk = os.read(fd, 4096).decode(errors="replace")
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        text += chunk
    seen.append(text)
    return text


def test_settings_are_asked_on_a_terminal_with_the_forms_rules_and_the_password_hidden(
    radicale: servers.Server,
) -> None:
    leader, follower = pty.openpty()
    environment = {
        key: value for key, value in os.environ.items() if key.startswith(("PATH", "HOME"))
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", RADICALE, "check"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=taskflow.ROOT,
        env=environment,
        close_fds=True,
    )
    os.close(follower)
    seen: list[str] = []
    try:
        read_until(leader, "Server URL:", seen)
        os.write(leader, b"\r")  # required: asked again
        assert "Server URL is required" in read_until(leader, "Server URL:", seen)
        os.write(leader, radicale.url.encode() + b"\r")
        read_until(leader, "User:", seen)
        os.write(leader, USER.encode() + b"\r")
        read_until(leader, "Password:", seen)
        os.write(leader, PASSWORD.encode() + b"\r")
        read_until(leader, "valid", seen)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    assert PASSWORD not in "".join(seen)


def test_an_interrupted_backup_exits_130_and_status_resumes_it_to_an_intact_backup(
    kinto: servers.KintoServer, bucket: tuple[str, Any], tmp_path: Path
) -> None:
    name, _ = bucket
    env = {f"ENGINE_SETTINGS_{k.upper()}": str(v) for k, v in kinto_settings(kinto).items()}
    env["ENGINE_STORAGE_ALLOW"] = str(tmp_path)
    url = str(tmp_path / "stopped")
    argv = [sys.executable, "-m", "engine", "run", KINTO, "backup", name, "--to", url]
    keep = {key: value for key, value in os.environ.items() if key.startswith(("PATH", "HOME"))}
    process = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, cwd=taskflow.ROOT, env=keep | env
    )
    assert process.stderr is not None
    assert process.stderr.readline().startswith("backup: 0/? resources")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Error: interrupted" in err
    (record,) = (tmp_path / "stopped" / ".engine" / "tasks").iterdir()
    saved = record.read_text()
    assert json.loads(saved)["owner"] is None, (saved, err)  # its lease released
    done = engine_run(KINTO, "status", url, record.stem, "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "DONE"
    verified = engine_run(KINTO, "verify", url, "--read-data", env=env)
    assert verified.returncode == 0, verified.stdout


def test_the_help_lists_every_command_and_the_exit_codes() -> None:
    shown = CliRunner().invoke(main, ["run", "--help"]).output
    for command in ("check", "roots", "resources", "tree", "backup", "restore", "export"):
        assert f"  {command} " in shown
    for code in ("0  done", "2  usage", "4  storage", "5  the settings", "6  the SaaS refused"):
        assert code in shown

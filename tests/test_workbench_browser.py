"""engine dev's page in a real browser (Debian's chromium through selenium) against a real
Kinto: sign in with a wrong then a right password, open a bucket, test-read it, break
module.yaml on disk and see the located error, fix it. ENGINE_SCREENSHOTS=docs/workbench keeps
the screenshots."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from scripts import servers
from tests import taskflow
from tests.test_workbench import BROKEN_KEY, edit

WAIT = 10.0
PASSWORD_FIELD = "#field-password"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.Server, Path]]:
    """`engine dev` serving a copy of modules/kinto on a free port: (server, module folder)."""
    work = tmp_path_factory.mktemp("dev")
    folder = Path(shutil.copytree(taskflow.KINTO_MODULE, work / "kinto"))
    with start_dev(work, folder) as server:
        yield server, folder


def start_dev(work: Path, folder: Path) -> servers.Server:
    """`engine dev` serving folder on a free port, its log and backups in work."""
    port = servers.free_port()
    argv = [sys.executable, "-m", "engine", "dev", str(folder), "--port", str(port)]
    url = f"http://{servers.HOST}:{port}"
    return servers.start_process(
        "engine-dev",
        argv,
        url=url,
        health_url=f"{url}/dev/state",
        log_path=work / f"dev-{port}.log",
        cwd=taskflow.ROOT,
        env={"ENGINE_BACKUP_DIR": str(work / "backups")},
    )


@pytest.fixture(scope="module")
def bucket(kinto: servers.KintoServer) -> str:
    """A fresh bucket with two collections and a group."""
    prefix = f"wb{uuid.uuid4().hex[:8]}"
    seeded = servers.seed_kinto(
        kinto.url, kinto.admin, buckets=1, collections=2, groups=1, records=3, prefix=prefix
    )
    return seeded.buckets[0]


def snap(browser: Any, tmp_path: Path, name: str) -> None:
    """A screenshot of the page as it is (into ENGINE_SCREENSHOTS when set)."""
    folder = Path(os.environ.get("ENGINE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(folder / f"workbench-{name}.png"))


def text_of(browser: Any, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def wait_for(browser: Any, check: Any, what: str) -> Any:
    return WebDriverWait(browser, WAIT).until(lambda _: check(), message=what)


def type_into(browser: Any, selector: str, text: str) -> None:
    field = browser.find_element(By.CSS_SELECTOR, selector)
    field.clear()
    field.send_keys(text)


def node(browser: Any, name: str) -> Any:
    """The tree's node named ``name``, following "more" links until it shows."""
    found = browser.find_elements(By.CSS_SELECTOR, f'li[data-name="{name}"]')
    if found:
        return found[0]
    for more in browser.find_elements(By.CSS_SELECTOR, "#tree > li > button.more"):
        more.click()
    return None


def fill_in(browser: Any, url: str, kinto: servers.KintoServer, password: str) -> None:
    """The page opened afresh, its sign-in form filled for the Kinto's admin with password."""
    browser.get(url + "/")
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, PASSWORD_FIELD), "the form")
    type_into(browser, "#field-server", kinto.url)
    type_into(browser, "#field-user", kinto.admin[0])
    type_into(browser, PASSWORD_FIELD, password)


def test_sign_in_with_a_wrong_then_a_right_password_open_a_bucket_and_test_read_it(
    browser: Any,
    dev: tuple[servers.Server, Path],
    kinto: servers.KintoServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    server, _ = dev
    password = kinto.admin[1]
    fill_in(browser, server.url, kinto, "not-the-password")
    browser.find_element(By.CSS_SELECTOR, "#signin-button").click()
    wait_for(browser, lambda: text_of(browser, "#error-password"), "the password's error")
    assert text_of(browser, "#signin-result").startswith("Not signed in")
    assert "did not recognise these credentials" in text_of(browser, "#error-password")
    snap(browser, tmp_path, "signin-refused")

    type_into(browser, PASSWORD_FIELD, password + Keys.ENTER)  # the keyboard submits
    wait_for(browser, lambda: text_of(browser, "#signin-result") == "Signed in.", "signed in")
    assert text_of(browser, "#error-password") == ""
    item = wait_for(browser, lambda: node(browser, bucket), f"the bucket {bucket}")
    toggle = item.find_element(By.CSS_SELECTOR, ".toggle")
    toggle.send_keys(Keys.ENTER)  # opened from the keyboard
    child = f'li[data-name="{bucket}"] li[data-name="c000"]'
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, child), "the collections")
    assert toggle.get_attribute("aria-expanded") == "true"
    ctx = item.find_element(By.CSS_SELECTOR, "pre.ctx").get_attribute("textContent")
    assert f'"bucket": "{bucket}"' in ctx
    snap(browser, tmp_path, "tree")

    item.find_element(By.CSS_SELECTOR, "button.read").click()
    rows = "#requests tr.exchange"
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, rows), "the requests")
    statuses = [td.text for td in browser.find_elements(By.CSS_SELECTOR, f"{rows} td.status")]
    assert set(statuses) == {"200"}
    picked = [td.text for td in browser.find_elements(By.CSS_SELECTOR, f"{rows} td.selected")]
    assert sorted(picked) == ["1", "2"]  # the collections' page, the groups' page
    assert f"/buckets/{bucket}/collections" in text_of(browser, rows)
    assert text_of(browser, "#mapped-title") == "Mapped resources (3)"  # 2 collections, a group
    assert '"name": "c000"' in text_of(browser, "#mapped")
    snap(browser, tmp_path, "test-read")
    assert password not in browser.page_source
    assert password not in server.log_tail(100_000)


def sign_in(browser: Any, url: str, kinto: servers.KintoServer) -> None:
    fill_in(browser, url, kinto, kinto.admin[1] + Keys.ENTER)
    wait_for(browser, lambda: text_of(browser, "#signin-result") == "Signed in.", "signed in")


def test_sample_a_bucket_s_backup_then_back_it_up_and_restore_it_dry_run_first(
    browser: Any,
    dev: tuple[servers.Server, Path],
    kinto: servers.KintoServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    server, folder = dev
    sign_in(browser, server.url, kinto)
    item = wait_for(browser, lambda: node(browser, bucket), f"the bucket {bucket}")
    item.find_element(By.CSS_SELECTOR, "button.sample").click()
    title = "#read-title"
    wait_for(browser, lambda: text_of(browser, title).startswith("Backup sample"), "the sample")
    assert "every step, the first 2 page(s) of each listing" in text_of(browser, title)
    assert text_of(browser, "#mapped-title").startswith("Stored objects (")
    assert '"path": "' in text_of(browser, "#mapped")
    assert f"/buckets/{bucket}/collections/c000/records" in text_of(browser, "#requests")
    snap(browser, tmp_path, "sample")
    item.find_element(By.CSS_SELECTOR, "input.choose").send_keys(Keys.SPACE)
    assert text_of(browser, "#chosen") == bucket
    target = text_of_value(browser, "#folder")
    assert target.startswith(f"file://{folder.parent}/backups/dev-")
    permissions = "#bopt-permissions"  # the module's backup options, and what may be left out
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, permissions), "options")
    assert browser.find_element(By.CSS_SELECTOR, permissions).is_selected()
    assert "leave out Collections" in text_of(browser, "#excludes")
    browser.find_element(By.CSS_SELECTOR, "#backup").click()
    status = "#run-status"
    wait_for(browser, lambda: text_of(browser, status).startswith("backup DONE"), "the backup")
    assert "errors" not in text_of(browser, status)
    assert (Path(target.removeprefix("file://")) / "manifest.json").is_file()
    # restore as a new bucket: the scenario's own option (the new name) asked for by the page
    copy = f"{bucket}-copy"
    Select(browser.find_element(By.CSS_SELECTOR, "#scenario")).select_by_value("AS_NEW")
    name = "#ropt-name"
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, name), "its options")
    type_into(browser, name, copy)
    browser.find_element(By.CSS_SELECTOR, "#dry-run").click()
    wait_for(browser, lambda: "would make" in text_of(browser, status), "the dry run")
    assert text_of(browser, status).startswith("restore (dry run) DONE")
    writes = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#writes tbody tr")]
    assert writes and all(row.startswith(("PUT", "POST")) for row in writes)
    assert any(f"/buckets/{copy}/collections/c000" in row for row in writes)
    assert not any(f"/buckets/{bucket}/" in row for row in writes)
    planned = browser.find_elements(By.CSS_SELECTOR, "#requests tr.planned")
    assert len(planned) == len(writes) and "planned" in planned[0].text
    bodies = browser.find_elements(By.CSS_SELECTOR, "#requests pre.sent")
    assert any('"data"' in body.get_attribute("textContent") for body in bodies)
    assert kinto.admin[1] not in browser.page_source
    for summary in browser.find_elements(By.CSS_SELECTOR, "#requests tr.planned + tr summary")[:2]:
        summary.send_keys(Keys.ENTER)  # the first write's headers and body, opened by keyboard
    browser.execute_script("document.getElementById('read').scrollIntoView()")
    snap(browser, tmp_path, "run")
    browser.find_element(By.CSS_SELECTOR, "#restore").click()
    wait_for(browser, lambda: "written" in text_of(browser, status), "the restore")
    assert text_of(browser, status).startswith("restore DONE")
    with httpx.Client(base_url=kinto.url, auth=kinto.admin) as client:
        listed = client.get(f"/buckets/{copy}/collections/c000/records").json()["data"]
    assert len(listed) == 3


def text_of_value(browser: Any, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).get_attribute("value"))


def test_a_broken_module_yaml_shows_its_located_error_until_it_is_fixed(
    browser: Any, dev: tuple[servers.Server, Path], tmp_path: Path
) -> None:
    server, folder = dev
    browser.get(server.url + "/")
    wait_for(browser, lambda: "no errors" in text_of(browser, "#status"), "a clean start")
    edit(folder, *BROKEN_KEY)
    problems = "#problems li"
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, problems), "the error")
    assert text_of(browser, problems).startswith("module.yaml:9:3: /module/colour: ")
    assert "still serving the last good Kinto 1.0.0" in text_of(browser, "#status")
    snap(browser, tmp_path, "broken")
    edit(folder, BROKEN_KEY[1], BROKEN_KEY[0])
    wait_for(browser, lambda: "no errors" in text_of(browser, "#status"), "the fix")
    assert browser.find_elements(By.CSS_SELECTOR, problems) == []


# a switch and a number in the auth form, beside Kinto's own fields
MORE_FIELDS = (
    "          - id: password\n            type: password\n",
    "          - id: verbose\n            type: switch\n            label: Verbose\n"
    "            default: true\n"
    "          - id: page_size\n            type: number\n            label: Page size\n"
    "            minimum: 1\n            maximum: 100\n            default: 20\n"
    "          - id: password\n            type: password\n",
)


def test_a_switch_and_a_number_keep_their_defaults_and_a_broken_range_is_shown_at_its_field(
    browser: Any, kinto: servers.KintoServer, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(taskflow.KINTO_MODULE, tmp_path / "kinto"))
    edit(folder, *MORE_FIELDS)
    edit(
        folder,
        "      password_secret: password\n",
        "      password_secret: password\n      verbose: verbose\n      page_size: page_size\n",
    )
    with start_dev(tmp_path, folder) as server:
        fill_in(browser, server.url, kinto, kinto.admin[1])
        switch = browser.find_element(By.CSS_SELECTOR, "#field-verbose")
        assert switch.get_attribute("role") == "switch" and switch.is_selected()
        assert text_of_value(browser, "#field-page_size") == "20"
        type_into(browser, "#field-page_size", "500")
        browser.find_element(By.CSS_SELECTOR, "#signin-button").click()
        wait_for(browser, lambda: text_of(browser, "#error-page_size"), "the range error")
        assert "100" in text_of(browser, "#error-page_size")
        assert text_of(browser, "#signin-result").startswith("Not signed in")
        type_into(browser, "#field-page_size", "50" + Keys.ENTER)
        wait_for(browser, lambda: text_of(browser, "#signin-result") == "Signed in.", "signed in")
        assert text_of(browser, "#error-page_size") == ""

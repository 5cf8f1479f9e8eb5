"""engine.language.hooks: binding discovery, loading a module's hooks file, and calling hooks
(sync or async) with their failures and wrong answers turned into HookError."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from engine.errors import HookError
from engine.language import hooks

HOOKS = """
import asyncio

def parse_items(answer, ctx):
    return [{"id": 1, "ctx": ctx}]

async def later(record, ctx):
    await asyncio.sleep(0)
    return dict(record, seen=True)

def broken(record, ctx):
    raise ValueError("no good: " + record["why"])

def wrong(answer, records, step):
    return "next"

_private = 1
"""


@pytest.fixture
def module_hooks(tmp_path: Path) -> hooks.Hooks:
    (tmp_path / "hooks.py").write_text(HOOKS)
    return hooks.load("demo-mod", tmp_path, "hooks.py", True)


def call(found: hooks.Hooks, point: str, name: str, *args: Any) -> Any:
    return asyncio.run(found.call(point, name, *args, resource="thing 7"))


def test_every_binding_is_found_with_its_place_and_point():
    data = {
        "connection": {"auth": [{"kind": "hook", "function": "sign"}]},
        "resources": {
            "item": {
                "list": {"parse": "parse_items", "pagination": {"kind": "hook", "function": "nxt"}},
                "backup": [{"id": "a", "transform": "clean"}],
            }
        },
        "hooks": {"beforeTask": "start", "afterTask": "stop", "file": "x.py"},
    }

    found = {(b.pointer, b.point, b.function) for b in hooks.bindings(data)}

    assert found == {
        ("/connection/auth/0/function", "authenticate", "sign"),
        ("/resources/item/list/parse", "parse", "parse_items"),
        ("/resources/item/list/pagination/function", "paginate", "nxt"),
        ("/resources/item/backup/0/transform", "transform", "clean"),
        ("/hooks/beforeTask", "beforeTask", "start"),
        ("/hooks/afterTask", "afterTask", "stop"),
    }


def test_a_module_without_bindings_loads_no_file(tmp_path: Path):
    found = hooks.load("demo", tmp_path, "hooks.py", False)
    assert found.module is None
    assert found.names() == []


def test_a_missing_hooks_file_is_reported_by_name(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"the hooks file hooks\.py is missing"):
        hooks.load("demo", tmp_path, "hooks.py", True)


def test_the_hooks_file_gets_a_module_name_of_its_own(module_hooks: hooks.Hooks):
    assert module_hooks.module is not None
    assert module_hooks.module.__name__ == "engine_hooks_demo_mod"
    assert module_hooks.names() == ["broken", "later", "parse_items", "wrong"]


def test_sync_and_async_hooks_answer_alike(module_hooks: hooks.Hooks):
    assert call(module_hooks, "parse", "parse_items", None, {"a": 1}) == [
        {"id": 1, "ctx": {"a": 1}}
    ]
    assert call(module_hooks, "transform", "later", {"x": 1}, {}) == {"x": 1, "seen": True}


def test_a_hook_that_raises_names_module_hook_point_and_resource(
    module_hooks: hooks.Hooks, caplog: pytest.LogCaptureFixture
):
    with (
        caplog.at_level(logging.ERROR, logger="engine.language.hooks"),
        pytest.raises(HookError) as raised,
    ):
        call(module_hooks, "transform", "broken", {"why": "bad"}, {})

    assert raised.value.code == "HOOK_FAILED"
    assert raised.value.message == (
        "hook 'broken' (demo-mod/hooks.py, transform) failed on thing 7: ValueError: no good: bad"
    )
    assert "Traceback" in caplog.text and 'raise ValueError("no good: "' in caplog.text


def test_a_hook_answering_what_its_point_does_not_take_is_an_error(module_hooks: hooks.Hooks):
    with pytest.raises(HookError, match=r"returned str on thing 7; expected the next page as"):
        call(module_hooks, "paginate", "wrong", None, [], {})


def test_an_unknown_function_is_an_error_not_a_crash(module_hooks: hooks.Hooks):
    with pytest.raises(HookError, match=r"hook 'nope' .*: there is no such function"):
        call(module_hooks, "parse", "nope", None, {})


@pytest.mark.parametrize(
    ("point", "answer", "ok"),
    [
        ("paginate", None, True),
        ("paginate", {"params": {"page": 2}}, True),
        ("paginate", {"url": "/next"}, True),
        ("paginate", {"url": 3}, False),
        ("paginate", {"params": {}, "url": "/x"}, False),
        ("authenticate", {"headers": {"X-Key": "k"}}, True),
        ("authenticate", {"headers": {"X-Key": 5}}, False),
        ("authenticate", {"cookies": {}}, False),
    ],
)
def test_each_point_checks_the_shape_of_its_answer(point: str, answer: Any, ok: bool):
    assert hooks.POINTS[point].check(answer) is ok

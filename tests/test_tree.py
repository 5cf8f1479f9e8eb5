"""The tree of resource types: parents (one or many), children, smallest depths, cycles and
the ctx keys a type's resources carry."""

from __future__ import annotations

from typing import Any

import pytest

from engine.language.tree import TypeTree

TYPES: dict[str, Any] = {
    "org": {"ctx": {"org": "{{ item.id }}"}},
    "repo": {"parent": "org", "ctx": {"repo": "{{ item.id }}", "org": "{{ item.org }}"}},
    "issue": {"parent": "repo", "ctx": {"issue": "{{ item.n }}"}},
    "label": {"parent": "repo"},
    "top": {"ctx": {"path": "{{ item.path }}", "drive": "{{ item.drive }}"}},
    "entry": {"parent": ["top", "entry"], "ctx": {"path": "{{ item.path }}"}},
    "version": {"parent": "entry", "ctx": {"version": "{{ item.v }}"}},
    "loop_a": {"parent": "loop_b", "ctx": {"a": 1}},
    "loop_b": {"parent": "loop_a", "ctx": {"b": 2}},
    "stray": {"parent": "nowhere", "ctx": {"s": 3}},
}
TREE = TypeTree(TYPES)


def test_roots_are_the_types_without_a_parent_and_children_name_a_type_among_their_parents():
    assert TREE.roots() == ["org", "top"]
    assert TREE.children("repo") == ["issue", "label"]
    assert TREE.children("entry") == ["entry", "version"]


def test_depths_are_the_smallest_a_type_can_have_and_unreachable_types_have_none():
    assert TREE.depths == {"org": 0, "top": 0, "repo": 1, "entry": 1, "issue": 2, "label": 2,
                           "version": 2}  # fmt: skip
    assert not TREE.reachable("loop_a")
    assert not TREE.reachable("stray")


@pytest.mark.parametrize(
    ("name", "recursive"),
    [("entry", True), ("version", False), ("org", False), ("loop_a", True), ("stray", False)],
)
def test_a_type_is_recursive_when_it_lies_on_a_cycle_of_parents(name, recursive):
    assert TREE.recursive(name) is recursive


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("org", ["org"]),
        ("repo", ["org", "repo"]),
        ("issue", ["org", "repo", "issue"]),
        ("label", ["org", "repo"]),
        ("entry", ["path", "drive"]),
        ("version", ["path", "drive", "version"]),
        ("stray", ["s"]),
    ],
)
def test_ctx_keys_are_the_possible_ancestors_keys_root_first_then_the_types_own(name, keys):
    assert TREE.ctx_keys(name) == keys


def test_required_keys_are_those_every_parent_gives_plus_the_types_own():
    types = {
        "a": {"ctx": {"x": 1, "only_a": 1}},
        "b": {"ctx": {"x": 1, "only_b": 1}},
        "c": {"parent": ["a", "b", "c"], "ctx": {"c": 1}},
    }
    tree = TypeTree(types)
    assert tree.ctx_keys("c") == ["x", "only_a", "only_b", "c"]
    assert tree.required_keys("c") == ["x", "c"]
    assert TREE.required_keys("entry") == ["path", "drive"]

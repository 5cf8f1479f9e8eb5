from __future__ import annotations

import pytest

from engine.language.document import Document, Position, Problem, escape, load, parse, pointer_of

NESTED = """\
module:
  id: demo
  tags:
    - name: a
      value: 1
    - [x, y]
empty:
"""


def parsed(text: str) -> Document:
    document, problems = parse(text, "m.yaml")
    assert problems == []
    return document


@pytest.mark.parametrize(
    ("pointer", "key", "value"),
    [
        ("/module", (1, 1), (2, 3)),
        ("/module/id", (2, 3), (2, 7)),
        ("/module/tags", (3, 3), (4, 5)),
        ("/module/tags/0/name", (4, 7), (4, 13)),
        ("/module/tags/0/value", (5, 7), (5, 14)),
        ("/module/tags/1/1", None, (6, 11)),
        ("/empty", (7, 1), (7, 7)),
    ],
)
def test_keys_and_values_are_located_one_based_in_nested_mappings_and_lists(pointer, key, value):
    document = parsed(NESTED)
    assert document.value_position(pointer) == Position(*value)
    if key is not None:
        assert document.key_position(pointer) == Position(*key)


def test_the_data_is_plain_python_with_null_for_an_empty_value():
    data = parsed(NESTED).data
    assert data == {
        "module": {"id": "demo", "tags": [{"name": "a", "value": 1}, ["x", "y"]]},
        "empty": None,
    }


def test_an_unlocated_pointer_falls_back_to_its_nearest_located_ancestor():
    document = parsed(NESTED)
    assert document.value_position("/module/id/deeper/still") == Position(2, 7)
    assert document.key_position("/module/missing") == Position(1, 1)
    assert document.value_position("/nowhere") == Position(1, 1)


def test_a_problem_is_placed_at_its_key_or_at_its_value():
    document = parsed(NESTED)
    at_value = document.problem("/module/id", "bad")
    at_key = document.problem("/module/id", "bad", at_key=True)
    assert (at_value.position, at_key.position) == (Position(2, 7), Position(2, 3))
    assert str(at_key) == "m.yaml:2:3: /module/id: bad"


def test_a_warning_says_so_and_a_root_problem_shows_a_slash():
    document = parsed(NESTED)
    assert str(document.warning("/module", "risky")) == "m.yaml:2:3: /module: warning: risky"
    assert str(document.problem("", "broken")) == "m.yaml:1:1: /: broken"


def test_a_duplicate_key_is_reported_at_the_second_key_and_the_first_value_kept():
    document, problems = parse("a: 1\nb:\n  c: 2\n  c: 3\na: 4\n", "m.yaml")
    assert [str(p) for p in problems] == [
        "m.yaml:4:3: /b/c: duplicate key 'c'",
        "m.yaml:5:1: /a: duplicate key 'a'",
    ]
    assert document.data == {"a": 1, "b": {"c": 2}}


def test_merge_keys_merge_and_a_key_written_beside_them_overrides_without_a_duplicate():
    text = "base: &b\n  x: 1\n  y: 2\nuse:\n  <<: *b\n  y: 3\n"
    document, problems = parse(text, "m.yaml")
    assert problems == []
    assert document.data["use"] == {"x": 1, "y": 3}
    assert document.value_position("/use/y") == Position(6, 6)
    assert document.key_position("/use/x") == Position(2, 3)


def test_a_mapping_merged_twice_keeps_its_own_keys_overridable():
    text = "a: &a {k: 1}\nb: &b {<<: *a, j: 2}\nc: {<<: *b, k: 3}\nd: {<<: *b, k: 4}\n"
    document, problems = parse(text, "m.yaml")
    assert problems == []
    assert document.data["c"] == {"k": 3, "j": 2}
    assert document.data["d"] == {"k": 4, "j": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1, 2\nb: 3\n", "2:2: /: invalid YAML: expected ',' or ']', but got ':'"),
        ("a: 1\n\tb: 2\n", "2:1: /: invalid YAML: found character '\\t' that cannot start any"),
        ('a: "open\n', "2:1: /: invalid YAML: found unexpected end of stream (while scanning a"),
        ("a: *nowhere\n", "1:4: /: invalid YAML: found undefined alias 'nowhere'"),
        ("a: !python/name:os.system x\n", "1:4: /: invalid YAML: could not determine a"),
        ("a: 1\n---\nb: 2\n", "2:1: /: invalid YAML: found another document (expected a single"),
        ("a: 1\x07\n", "1:5: /: invalid YAML: unacceptable character #x0007: special characters"),
        ("a: &r\n  b: *r\n", "1:4: /a/b: recursive alias: this value contains itself"),
        ("a: " + "[" * 5000 + "]" * 5000, "/: invalid YAML: nested too deeply"),
    ],
)
def test_a_yaml_syntax_problem_is_located_and_never_raises(text, expected):
    document, problems = parse(text, "m.yaml")
    assert len(problems) == 1
    assert expected in str(problems[0])
    if "recursive" not in expected:
        assert document.data is None


def test_an_empty_document_has_no_data_and_no_problem():
    document, problems = parse("# only a comment\n", "m.yaml")
    assert (document.data, problems) == (None, [])


def test_an_unreadable_file_is_a_problem_not_a_crash(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    missing = tmp_path / "missing.yaml"
    assert [str(p) for p in load(latin)[1]] == [f"{latin}:1:1: /: cannot read: not UTF-8 text"]
    assert [str(p) for p in load(missing)[1]] == [
        f"{missing}:1:1: /: cannot read: No such file or directory"
    ]


def test_load_reads_a_file_with_its_path_as_the_problems_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("a: 1\na: 2\n", encoding="utf-8")
    document, problems = load(path)
    assert document.data == {"a": 1}
    assert problems == [Problem(str(path), Position(2, 1), "/a", "duplicate key 'a'")]


@pytest.mark.parametrize(
    ("parts", "pointer"),
    [((), ""), (("a", 0, "b"), "/a/0/b"), (("a/b", "c~d"), "/a~1b/c~0d")],
)
def test_pointers_escape_slashes_and_tildes_as_rfc_6901_says(parts, pointer):
    assert pointer_of(parts) == pointer
    assert escape("x/y~") == "x~1y~0"


def test_problems_sort_by_file_then_position_then_pointer():
    late = Problem("a.yaml", Position(3, 1), "/b", "x")
    early = Problem("a.yaml", Position(1, 9), "/z", "x")
    other = Problem("0.yaml", Position(9, 9), "/a", "x")
    assert sorted([late, early, other]) == [other, early, late]

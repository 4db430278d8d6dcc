"""The safe YAML loader: bounded reads, clear one-line errors with lines, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from autoops.yamlio import (
    MAX_BYTES,
    ConfigError,
    ConfigIssue,
    LineMap,
    load_yaml,
    parse_yaml,
    validate_model,
)

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def _issues(content: str | bytes) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_yaml(content, "f.yaml")
    return [issue.format() for issue in info.value.issues]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("", "f.yaml:1: file is empty", id="empty_file"),
        pytest.param("# just a comment\n\n", "f.yaml:1: file is empty", id="only_comments"),
        pytest.param(
            "a: 1\nb: [1, 2\nc: 3\n", "f.yaml:3: not valid YAML: expected ','", id="not_yaml"
        ),
        pytest.param(
            "a: 1\n  b: 2\n", "f.yaml:2: not valid YAML: mapping values", id="bad_indentation"
        ),
        pytest.param("a:\t1\n\tb: 2\n", "f.yaml:1: not valid YAML", id="tab_indentation"),
        pytest.param(
            "- a\n- b\n", "f.yaml:1: top level must be a mapping of fields, not a list", id="list"
        ),
        pytest.param(
            "just words\n",
            "f.yaml:1: top level must be a mapping of fields, not a single",
            id="scalar",
        ),
        pytest.param(
            "a: 1\n---\nb: 2\n", "f.yaml:2: more than one YAML document", id="two_documents"
        ),
        pytest.param(
            "a: 1\nb:\n  c: 2\n  c: 3\n",
            "f.yaml:4: b.c: duplicate key 'c' (first given at line 3)",
            id="duplicate_key",
        ),
        pytest.param(
            "a: 1\na: 2\n",
            "f.yaml:2: a: duplicate key 'a' (first given at line 1)",
            id="duplicate_top_level_key",
        ),
        pytest.param(
            BILLION_LAUGHS, "f.yaml:6: aliases expand this value by more than", id="billion_laughs"
        ),
        pytest.param(
            "a: &x [1]\n" + "b: [" + ", ".join(["*x"] * 101) + "]\n",
            "f.yaml:2: more than 100 aliases",
            id="too_many_aliases",
        ),
        pytest.param("a: &a [*a]\n", "f.yaml:1: recursive alias", id="recursive_alias"),
        pytest.param(
            "a: " + "[" * 5000 + "]" * 5000 + "\n", "f.yaml:1: nesting deeper than", id="deep"
        ),
        pytest.param(
            "x0: &x0 "
            + "[" * 60
            + "1"
            + "]" * 60
            + "\n"
            + "".join(
                f"x{i}: &x{i} " + "[" * 60 + f"*x{i - 1}" + "]" * 60 + "\n" for i in range(1, 20)
            ),
            "f.yaml: values nest too deeply (through aliases)",
            id="deep_through_aliases",
        ),
        pytest.param("? [a, b]\n: 1\n", "f.yaml:1: mapping keys must be plain", id="list_key"),
        pytest.param(b"a: 1\nb: \xff\n", "f.yaml:2: not UTF-8 text", id="not_utf8"),
        pytest.param("a: \x07\n", "f.yaml:1: not valid YAML text", id="control_character"),
    ],
)
def test_unusable_yaml_is_one_clear_issue_with_its_line(
    content: str | bytes, expected: str
) -> None:
    issues = _issues(content)
    assert len(issues) == 1
    assert issues[0].startswith(expected), issues[0]


def test_every_key_and_item_has_its_line() -> None:
    data, lines = parse_yaml(
        "# comment\nintent:\n  allowed_regions:\n    - a\n    - b\nscaling: {min: 1}\n", "f.yaml"
    )
    assert data == {"intent": {"allowed_regions": ["a", "b"]}, "scaling": {"min": 1}}
    assert lines.line_of(("intent",)) == 2
    assert lines.line_of(("intent", "allowed_regions")) == 3
    assert lines.line_of(("intent", "allowed_regions", 1)) == 5
    assert lines.line_of(("scaling", "min")) == 6


def test_missing_path_maps_to_nearest_ancestor() -> None:
    _, lines = parse_yaml("a:\n  b:\n    c: 1\n", "f.yaml")
    assert lines.line_of(("a", "b", "missing")) == 2
    assert lines.line_of(("nothing", "here")) == 1
    assert not lines.has(("a", "x"))


def test_merge_keys_are_placed_at_the_merge_line() -> None:
    data, lines = parse_yaml("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert data["thing"] == {"x": 1, "y": 3}
    assert lines.line_of(("thing", "x")) == 3
    assert lines.line_of(("thing", "y")) == 4


def test_a_few_anchors_and_aliases_are_allowed() -> None:
    data, _ = parse_yaml("a: &x {k: 1}\nb: *x\nc: *x\n", "f.yaml")
    assert data["b"] == data["c"] == {"k": 1}


def test_a_50_mb_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        line = b"key: some value that repeats\n"
        fh.write(line * (50 * 1024 * 1024 // len(line) + 1))
    with pytest.raises(ConfigError) as info:
        load_yaml(big)
    assert [i.format() for i in info.value.issues] == [
        f"{big}: file is larger than the 1 MiB limit for config files; refusing to read it"
    ]


def test_a_file_just_under_the_limit_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("a: " + "x" * (MAX_BYTES - 10) + "\n")
    data, _ = load_yaml(path)
    assert len(data["a"]) == MAX_BYTES - 10


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "missing.yaml", "no such file", id="missing_file"),
        pytest.param(lambda p: p, "is a directory, not a file", id="directory"),
    ],
)
def test_unreadable_paths_are_config_errors(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert info.value.issues == (ConfigIssue(str(path), None, "", message),)


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int
    names: tuple[str, ...] = ()


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    api: str = "v1"
    inner: _Inner


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "inner:\n  count: 1\n  cuont: 2\n",
            ["f.yaml:3: inner.cuont: unknown field (did you mean 'count'?)"],
            id="unknown_field",
        ),
        pytest.param(
            "inner:\n  count: many\n",
            [
                "f.yaml:2: inner.count: input should be a valid integer, unable to parse string "
                "as an integer (got 'many')"
            ],
            id="wrong_type",
        ),
        pytest.param(
            "api: v1\ninner:\n  names: [a]\n",
            ["f.yaml:2: inner.count: required field is missing"],
            id="missing_field",
        ),
        pytest.param(
            "inner:\n  count: 1\n  names:\n    - a\n    - [b]\n",
            ["f.yaml:5: inner.names.1: input should be a valid string"],
            id="bad_list_item",
        ),
    ],
)
def test_validation_errors_carry_file_line_and_field(text: str, expected: list[str]) -> None:
    data, lines = parse_yaml(text, "f.yaml")
    with pytest.raises(ConfigError) as info:
        validate_model(_Outer, data, lines, "f.yaml")
    assert [i.format() for i in info.value.issues] == expected


def test_issue_without_a_line_omits_it() -> None:
    assert ConfigIssue("f.yaml", None, "a.b", "bad").format() == "f.yaml: a.b: bad"
    assert ConfigIssue("f.yaml", 3, "", "bad").format() == "f.yaml:3: bad"


def test_line_map_sub_reroots_paths() -> None:
    lines = LineMap({(): 1, ("a",): 2, ("a", "b"): 3})
    assert lines.sub(("a",)).line_of(("b",)) == 3
    assert lines.sub(("a",)).line_of(("zzz",)) == 2

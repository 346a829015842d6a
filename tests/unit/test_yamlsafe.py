"""The YAML reader: YAML 1.2 scalars, no tags, duplicate keys, limits, positions, and a fast
reader that builds exactly what the positioned one builds."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from drillbook import yamlsafe
from drillbook.yamlsafe import Mark, NeedsFullParse, YamlError


def both(text: str) -> Any:
    """The data, checked to be the same from the fast and the positioned reader."""
    slow = yamlsafe.parse(text).data
    try:
        fast = yamlsafe.parse_data(text)
    except NeedsFullParse:
        fast = slow
    assert fast == slow
    assert yamlsafe.load(text) == slow
    return slow


def problems(text: str) -> list[yamlsafe.YamlProblem]:
    with pytest.raises(NeedsFullParse):
        yamlsafe.parse_data(text)
    with pytest.raises(YamlError) as info:
        yamlsafe.parse(text)
    with pytest.raises(YamlError):
        yamlsafe.load(text)
    return info.value.problems


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("true", True),
        ("false", False),
        ("True", True),
        ("FALSE", False),
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("no", "no"),
        ("y", "y"),
        ("n", "n"),
        ("~", None),
        ("null", None),
        ("", None),
        ("0", 0),
        ("-12", -12),
        ("+3", 3),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        (".inf", math.inf),
        ("-.inf", -math.inf),
        ("1.1.0", "1.1.0"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("2024-05-01", "2024-05-01"),
        ("12:30", "12:30"),
        ("nope", "nope"),
        ("tomorrow", "tomorrow"),
        ("'true'", "true"),
        ('"42"', "42"),
        ("|\n  text\n", "text\n"),
    ],
)
def test_scalars_read_as_yaml_1_2(scalar: str, value: Any) -> None:
    data = both(f"k: {scalar}\n")
    assert data == {"k": value}
    assert type(data["k"]) in (type(value), yamlsafe.SourceInt, yamlsafe.SourceFloat)


def test_nan() -> None:
    assert math.isnan(yamlsafe.parse("k: .nan\n").data["k"])
    assert math.isnan(yamlsafe.parse_data("k: .NaN\n")["k"])


def test_numbers_remember_how_they_were_written() -> None:
    data = both("a: [0755, 1.10, +1, 0x1f, 7, 2.5]\n")["a"]
    assert data == [755, 1.1, 1, 31, 7, 2.5]
    assert [getattr(v, "text", None) for v in data] == ["0755", "1.10", "+1", "0x1f", None, None]


def test_keys_stay_text() -> None:
    data = both("on: 1\nyes: 2\n3: three\nnull: 4\ntrue: 5\n")
    assert data == {"on": 1, "yes": 2, "3": "three", "null": 4, "true": 5}


def test_nested_structures_and_flow_style() -> None:
    assert both("a: {b: [1, {c: d}], e: []}\nf:\n  - g\n  - {}\n") == {
        "a": {"b": [1, {"c": "d"}], "e": []},
        "f": ["g", {}],
    }


def test_empty_and_scalar_documents() -> None:
    assert both("") is None
    assert both("# only a comment\n") is None
    assert both("---\n...\n") is None
    assert both("just text\n") == "just text"
    assert both("- 1\n- 2\n") == [1, 2]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a: !!python/object/apply:os.system [ls]\n", "!!python/object/apply:os.system"),
        ("a: !!python/name:os.system\n", "!!python/name:os.system"),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !custom x\n", "!custom"),
        ("a: !!str x\n", "!!str"),
        ("a: !!int '3'\n", "!!int"),
        ("a: !!set {x}\n", "!!set"),
        ("a: !!omap [x: 1]\n", "!!omap"),
        ("a: !<tag:example.com,2000:x> y\n", "tag:example.com,2000:x"),
        ("a: ! x\n", "`!`"),
        ("!!str a: x\n", "!!str"),
        ("a: !!seq [x]\n", "!!seq"),
        ("%TAG !e! tag:example.com,2000:\n---\na: !e!x y\n", "tag:example.com,2000:x"),
    ],
)
def test_every_tag_is_refused_and_nothing_is_constructed(text: str, shown: str) -> None:
    found = problems(text)
    assert any("tag" in p.message and shown in p.message for p in found), found


def test_all_tags_in_a_file_are_reported() -> None:
    found = problems("a: !!str x\nb: !!binary eA==\nc: !x y\n")
    assert [p.line for p in found] == [1, 2, 3]


def test_duplicate_keys_name_both_lines() -> None:
    found = problems("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert [(p.line, p.column) for p in found] == [(4, 3), (5, 1)]
    assert "duplicate key 'c': it is also at line 3" in found[0].message
    assert "lines 3 and 4" in found[0].message
    assert "lines 1 and 5" in found[1].message


def test_duplicate_keys_in_flow_mappings() -> None:
    found = problems("a: {x: 1, x: 2}\n")
    assert "duplicate key 'x'" in found[0].message


def test_keys_that_are_not_text_are_refused() -> None:
    found = problems("? [a, b]\n: 1\n")
    assert "plain text" in found[0].message


def test_anchors_and_aliases_share_data() -> None:
    data = both("a: &x {k: v}\nb: *x\nc: &s text\nd: *s\n")
    assert data == {"a": {"k": "v"}, "b": {"k": "v"}, "c": "text", "d": "text"}
    assert data["a"] is data["b"]


def test_merge_keys() -> None:
    text = (
        "base: &base {a: 1, b: 2}\n"
        "more: &more {b: 20, c: 30}\n"
        "one:\n  <<: *base\n  b: 3\n"
        "two:\n  <<: [*more, *base]\n  d: 4\n"
        "quoted:\n  '<<': literal\n"
    )
    data = yamlsafe.load(text)
    assert data["one"] == {"a": 1, "b": 3}
    assert data["two"] == {"b": 20, "c": 30, "a": 1, "d": 4}
    assert data["quoted"] == {"<<": "literal"}
    assert data["base"] == {"a": 1, "b": 2}, "the source of a merge is left as it was"
    with pytest.raises(NeedsFullParse):
        yamlsafe.parse_data(text)


def test_merged_keys_point_at_their_source() -> None:
    doc = yamlsafe.parse("base: &b\n  a: 1\none:\n  <<: *b\n  z: 2\n")
    assert doc.locate(("one", "a")) == (Mark(2, 6), True)
    assert doc.locate(("one", "z")) == (Mark(5, 6), True)


def test_a_merge_of_something_else_is_refused() -> None:
    found = problems("a:\n  <<: [1, 2]\n")
    assert "merges a mapping" in found[0].message


def test_undefined_alias() -> None:
    found = problems("a: *nothing\n")
    assert (found[0].line, found[0].column) == (1, 4)
    assert "*nothing" in found[0].message


def test_alias_bomb_is_refused_fast() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    start = time.perf_counter()
    found = problems("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 1.0
    assert "alias bomb" in found[0].message


@pytest.mark.parametrize(
    ("text", "chars", "at"),
    [
        # a(1) xxxx(4) b(1), then 4 per alias: 14 characters in all
        ("a: &a xxxx\nb: [*a, *a]\n", 14, (2, 9)),
        # an anchored mapping counts its keys and values: a(1) k(1) vvv(3) b(1) 4 4
        ("a: &a {k: vvv}\nb: [*a, *a]\n", 14, (2, 9)),
        # an anchor holding aliases holds their text: *b is 4; a(1) xx(2) b(1) 4 c(1) 4 4
        ("a: &a [xx]\nb: &b [*a, *a]\nc: [*b, *b]\n", 17, (3, 9)),
        # merged keys are text the alias brings too: a(1) k(1) v(1) b(1) z(1) w(1) <<(2) 2
        ("a: &a {k: v}\nb: {z: w, <<: *a}\n", 10, (2, 15)),
    ],
    ids=["scalar", "mapping", "nested", "merge"],
)
def test_text_that_aliases_expand_to_is_counted(text: str, chars: int, at: tuple[int, int]) -> None:
    both(text)
    assert yamlsafe.parse(text, max_chars=chars).data == yamlsafe.parse(text).data
    with pytest.raises(YamlError) as info:
        yamlsafe.parse(text, max_chars=chars - 1, what="config file")
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == at
    assert problem.message == (
        f"aliases expand this config file to more than {chars - 1:,} characters of text "
        "(an alias bomb?)"
    )
    # The fast reader bounds the text by the source's spans, never below the exact count: it
    # never accepts what `parse` refuses, and near the limit it leaves the judging to `parse`.
    with pytest.raises(NeedsFullParse):
        yamlsafe.parse_data(text, max_chars=chars - 1)
    if "<<" not in text:  # the fast reader leaves merges to `parse`
        roomy = chars + 4 * len(text)
        assert yamlsafe.parse_data(text, max_chars=roomy) == yamlsafe.parse(text).data


def test_a_long_text_repeated_by_aliases_is_refused_at_default_limits() -> None:
    # Few values, so MAX_NODES never trips: only the text's size says this is a bomb.
    text = "d: &d " + "x" * 900_000 + "\nlint: [touch, " + ", ".join(["*d"] * 3000) + "]\n"
    found = problems(text)
    assert len(found) == 1
    assert "more than 8,388,608 characters of text (an alias bomb?)" in found[0].message
    assert found[0].line == 2
    assert text.splitlines()[1][found[0].column - 1 :].startswith("*d")


def test_limits_can_be_set_per_call() -> None:
    with pytest.raises(YamlError) as info:
        yamlsafe.parse("a: [[[x]]]\n", max_depth=3)
    assert "nesting deeper than 3" in info.value.problems[0].message
    with pytest.raises(NeedsFullParse):
        yamlsafe.parse_data("a: [[[x]]]\n", max_depth=3)
    with pytest.raises(YamlError) as info:
        yamlsafe.parse("a: [1, 2, 3, 4, 5]\n", max_nodes=4, what="config file")
    assert "more than 4 values in one config file" in info.value.problems[0].message
    with pytest.raises(NeedsFullParse):
        yamlsafe.parse_data("a: [1, 2, 3, 4, 5]\n", max_nodes=4)


def test_several_documents_are_refused() -> None:
    found = problems("a: 1\n---\nb: 2\n")
    assert (found[0].line, found[0].column) == (2, 1)
    assert "second YAML document" in found[0].message


def test_broken_yaml_is_positioned() -> None:
    found = problems("a: 1\nb: [1, 2\nc: 3\n")
    assert found[0].line == 2
    assert "not closed" in found[0].message
    found = problems("a:\n\tb: 1\n")
    assert (found[0].line, found[0].column) == (2, 1)
    assert "tab" in found[0].message


@pytest.mark.parametrize(
    ("text", "where", "opener"),
    [
        # At the end of the text libyaml speaks of "a flow node" and marks the end.
        ("service: [\n", (1, 10), "["),
        ("a: {b: 1\n", (1, 4), "{"),
        ("a: {b: [1, 2}\n", (1, 8), "["),
        ('a: "x [ y"\nb: {c: 1\n', (2, 4), "{"),  # a bracket inside quotes opens nothing
    ],
)
def test_an_unclosed_bracket_is_named_where_it_opens(
    text: str, where: tuple[int, int], opener: str
) -> None:
    found = problems(text)
    assert (found[0].line, found[0].column) == where, found[0]
    assert f"the {opener} opened here is not closed" in found[0].message


def test_unclosed_quote_names_the_line_where_it_opens() -> None:
    found = problems('a: "open\nb: 1\nc: [x, "y"]\nd: 2\n')
    assert (found[0].line, found[0].column) == (1, 4)
    assert "not closed" in found[0].message
    found = problems("a: 'never closed\n")
    assert (found[0].line, found[0].column) == (1, 4)


def test_a_legitimate_multiline_quote_is_not_blamed() -> None:
    found = problems('a: "one\n  two"\nb: [1, 2\nc: 3\n')
    assert found[0].line == 3


def test_control_characters() -> None:
    found = problems("a: b\x00c\n")
    assert (found[0].line, found[0].column) == (1, 5)
    assert "U+0000 (NUL)" in found[0].message
    assert "byte offset 4" in found[0].message
    found = problems("a: 1\nb: é\x07\n")
    assert (found[0].line, found[0].column) == (2, 5)
    assert "U+0007" in found[0].message
    assert "byte offset 10" in found[0].message


def test_decode() -> None:
    assert yamlsafe.decode(b"\xef\xbb\xbfa: 1\n") == "a: 1\n"
    with pytest.raises(YamlError) as info:
        yamlsafe.decode(b"a: 1\nb: \xff\n")
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == (2, 4)
    assert "byte offset 8" in problem.message
    with pytest.raises(YamlError) as info:
        yamlsafe.decode(b"x" * 11, max_bytes=10)
    assert "over the 10-byte limit" in info.value.problems[0].message


def test_locate_and_key_mark() -> None:
    doc = yamlsafe.parse("a:\n  b: [x, {c: 1}]\n  d: text\n")
    assert doc.root_mark == Mark(1, 1)
    assert doc.locate(("a", "b", 1, "c")) == (Mark(2, 14), True)
    assert doc.locate(("a", "d")) == (Mark(3, 6), True)
    assert doc.locate(("a", "missing")) == (Mark(2, 3), False)
    assert doc.key_mark(("a", "d")) == Mark(3, 3)
    assert doc.key_mark(()) is None
    assert doc.key_mark(("a", "nope")) == Mark(2, 3)


def test_crlf_positions() -> None:
    doc = yamlsafe.parse("a: 1\r\nb:\r\n  c: 2\r\n")
    assert doc.locate(("b", "c")) == (Mark(3, 6), True)


def test_fast_reader_hands_over_every_unusual_input() -> None:
    for text in ("a: !!str x\n", "a: 1\na: 2\n", "a: 1\n---\nb: 2\n", "a: [1\n", "? [a]\n: 1\n"):
        with pytest.raises(NeedsFullParse):
            yamlsafe.parse_data(text)

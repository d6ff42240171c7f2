from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages import limits
from indexer.stages.limits import (
    TRUNCATION_MARKER,
    cap_fields,
    cap_fields_detailed,
    needs_no_capping,
    needs_no_capping_py,
)

MARKER_BYTES = len(TRUNCATION_MARKER.encode())


def test_within_limits_is_unchanged() -> None:
    fields = {"a": 1, "b": "x", "c": {"d": [1, "y", None]}, "e": 1.5, "f": True, "g": {}}
    assert cap_fields(fields, 100, 1024, 5) == (fields, 0)


def test_input_not_modified() -> None:
    fields = {"a": {"b": {"c": {"d": 1}}}, "s": "x" * 100, "n": list(range(3))}
    before = copy.deepcopy(fields)
    cap_fields(fields, 2, 10, 1)
    assert fields == before


def test_depth_turns_deep_objects_into_json_text() -> None:
    fields = {"a": {"b": {"c": {"d": 1}}}, "top": 1}
    result = cap_fields_detailed(fields, 100, 1024, 2)
    assert result.fields == {"a": {"b": '{"c":{"d":1}}'}, "top": 1}
    assert (result.dropped, result.truncated, result.stringified) == (0, 0, 1)
    assert cap_fields({"a": {"b": 1}}, 100, 1024, 1)[0] == {"a": '{"b":1}'}


def test_arrays_of_objects_or_arrays_become_json_text() -> None:
    result = cap_fields_detailed({"objs": [{"a": 1}], "nested": [[1], [2]], "ok": [1, "x"]},
                                 100, 1024, 5)
    assert result.fields == {"objs": '[{"a":1}]', "nested": "[[1],[2]]", "ok": [1, "x"]}
    assert result.stringified == 2


def test_count_keeps_shallow_keys_first_and_counts_dropped_objects_once() -> None:
    fields = {"a": 1, "b": {"c": 1, "d": 2}, "e": 1, "f": {"g": {"h": 1}}}
    result = cap_fields_detailed(fields, 5, 1024, 5)
    # a, b, e, f first; then b.c; b.d and f.g are dropped (f.g once, with all it holds).
    assert result.fields == {"a": 1, "b": {"c": 1}, "e": 1, "f": {}}
    assert result.dropped == 2
    assert cap_fields(fields, 5, 1024, 5) == (result.fields, 2)
    assert cap_fields(fields, 2, 1024, 5) == ({"a": 1, "b": {}}, 4)


def test_truncation_marks_and_fits_the_byte_limit() -> None:
    result = cap_fields_detailed({"s": "x" * 100, "short": "y" * 10}, 100, 40, 5)
    assert result.fields["s"] == "x" * (40 - MARKER_BYTES) + TRUNCATION_MARKER
    assert result.fields["short"] == "y" * 10
    assert result.truncated == 1
    assert cap_fields({"s": "x" * 100}, 100, 40, 5)[1] == 1


def test_truncation_cuts_at_a_character_boundary() -> None:
    value = "é" * 40  # 2 bytes each
    out = cap_fields({"s": value}, 100, 40, 5)[0]["s"]
    assert out.endswith(TRUNCATION_MARKER)
    assert len(out.encode()) <= 40
    assert set(out.removesuffix(TRUNCATION_MARKER)) == {"é"}


def test_limit_below_the_marker_size_only_cuts() -> None:
    assert cap_fields({"s": "abcdef"}, 100, 3, 5)[0] == {"s": "abc"}


def test_array_elements_and_json_text_are_truncated_too() -> None:
    result = cap_fields_detailed({"l": ["x" * 100, 1], "o": {"p": "y" * 100}}, 100, 64, 1)
    assert len(result.fields["l"][0].encode()) <= 64
    assert result.fields["o"].startswith('{"p":"yyy') and len(result.fields["o"]) <= 64
    assert result.truncated == 2 and result.stringified == 1


@pytest.mark.parametrize(("key", "mended"), [
    ("", "_"), (".", "_"), ("..", "_"), (".a", "a"), ("a.", "a"), ("a..b", "a.b"),
    (".a..b.", "a.b"), ("a.b", "a.b"), ("_id", "_id"),
])
def test_keys_opensearch_rejects_are_mended(key: str, mended: str) -> None:
    assert cap_fields({key: 1}, 100, 1024, 5)[0] == {mended: 1}


def test_unusual_types() -> None:
    class Text(str):
        pass

    fields: dict[Any, Any] = {1: "int key", "t": (1, 2), "o": object, "s": Text("z" * 100)}
    out = cap_fields(fields, 100, 64, 5)[0]
    assert out["1"] == "int key"
    assert out["t"] == [1, 2]
    assert out["o"] == str(object)
    assert len(out["s"].encode()) <= 64 and type(out["s"]) is str


def test_unserializable_object_has_a_placeholder() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    out = cap_fields({"a": loop}, 100, 1024, 1)[0]
    assert isinstance(out["a"], str)


# --- properties -----------------------------------------------------------------------------

keys = st.one_of(st.text(alphabet="ab.", max_size=4), st.text(max_size=4))
scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(alphabet=st.characters(exclude_categories=()), max_size=60))
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children,
                                                                      max_size=4),
    max_leaves=16)
records = st.dictionaries(keys, values, max_size=8)


def count_keys(obj: dict[str, Any]) -> int:
    return sum(1 + (count_keys(v) if isinstance(v, dict) else 0) for v in obj.values())


def depth(obj: dict[str, Any]) -> int:
    return 1 + max((depth(v) for v in obj.values() if isinstance(v, dict)), default=0)


def strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (k, *strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


@settings(deadline=None, max_examples=40)
@given(records, st.integers(1, 30), st.integers(0, 120), st.integers(1, 4))
def test_output_respects_every_limit(fields: dict[str, Any], max_fields: int,
                                     max_value_bytes: int, max_depth: int) -> None:
    result = cap_fields_detailed(fields, max_fields, max_value_bytes, max_depth)
    out = result.fields
    assert count_keys(out) <= max_fields
    assert depth(out) <= max_depth
    for value in strings(_leaves(out)):
        assert len(value.encode("utf-8", "surrogatepass")) <= max_value_bytes
    for key in _all_keys(out):
        assert key and not key.startswith(".") and not key.endswith(".") and ".." not in key
    for value in out.values():
        if isinstance(value, list):
            assert all(not isinstance(v, dict | list) for v in value)
    assert cap_fields(fields, max_fields, max_value_bytes, max_depth)[1] == \
        result.dropped + result.truncated


def _leaves(obj: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in obj.values():
        out.extend(_leaves(value) if isinstance(value, dict) else [value])
    return out


def _all_keys(obj: dict[str, Any]) -> list[str]:
    return [k for key, v in obj.items() for k in (key, *(_all_keys(v) if isinstance(v, dict)
                                                         else ()))]


plain_keys = st.text(alphabet="abcxyz", min_size=1, max_size=4)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(plain_keys, children,
                                                                      max_size=4),
    max_leaves=10)


@settings(deadline=None, max_examples=40)
@given(st.dictionaries(plain_keys, plain_values, max_size=5))
def test_nothing_changes_when_nothing_is_reported(fields: dict[str, Any]) -> None:
    result = cap_fields_detailed(fields, 10_000, 10_000, 100)
    if result.dropped == result.truncated == result.stringified == 0:
        assert result.fields == fields
    else:
        assert result.stringified  # only arrays holding objects or arrays can be touched


# --- the shortcut ---------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "expected"), [
    ({"a": "x", "b": 1, "c": None, "d": 1.5, "e": True}, True),
    ({}, True),
    ({"a": {"b": 1}}, False),  # nested: walk it
    ({"a": [1]}, False),
    ({"": 1}, False),
    ({"a.b": 1}, False),  # may need mending: walk it
])
def test_needs_no_capping(fields: dict[str, Any], expected: bool) -> None:
    assert needs_no_capping(fields, 10, 100, 1024) is expected


def test_needs_no_capping_bounds() -> None:
    fields = {"a": "x", "b": "y"}
    assert needs_no_capping(fields, 256, 2, 1024)
    assert not needs_no_capping(fields, 257, 2, 1024)  # a string could need 1028 bytes
    assert not needs_no_capping(fields, 10, 1, 1024)


flat = st.dictionaries(st.text(max_size=5), st.none() | st.booleans() | st.integers()
                       | st.floats(allow_nan=False) | st.text(max_size=40), max_size=12)


@settings(deadline=None)
@given(flat, st.integers(1, 15), st.integers(0, 200), st.integers(1, 3))
def test_shortcut_agrees_with_the_walk(fields: dict[str, Any], max_fields: int,
                                       max_value_bytes: int, max_depth: int) -> None:
    source_chars = max((len(v) for v in fields.values() if isinstance(v, str)), default=0)
    if needs_no_capping(fields, source_chars, max_fields, max_value_bytes):
        result = cap_fields_detailed(fields, max_fields, max_value_bytes, max_depth)
        assert result.fields == fields
        assert result.dropped == result.truncated == result.stringified == 0


def test_needs_no_capping_with_a_non_string_key() -> None:
    fields: dict[Any, Any] = {1: "x"}
    assert not needs_no_capping(fields, 1, 10, 1024)


# -- the C twin of needs_no_capping (indexer/stages/_limits.c) ---------------------------------

def test_the_c_check_is_built_where_a_compiler_is(c_compiler: str) -> None:
    # setup.py builds it as optional: a broken build would fall back silently and slowly.
    assert limits.COMPILED
    assert needs_no_capping is not needs_no_capping_py


class _Key(str):
    pass


_keys = st.one_of(st.text(alphabet="ab.é_", max_size=4), st.sampled_from(["", ".", "a."]),
                  st.text(max_size=3).map(_Key), st.integers(0, 2), st.none())
_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3),
                    st.text(max_size=2).map(_Key), st.lists(st.integers(), max_size=1),
                    st.dictionaries(st.text(max_size=1), st.integers(), max_size=1),
                    st.tuples(st.integers()), st.just(b"x"))
_bound = st.one_of(st.integers(-10, 300), st.integers(-2**62, 2**62))


@settings(deadline=None, max_examples=2000)
@given(st.dictionaries(_keys, _values, max_size=6), _bound, _bound, _bound)
def test_the_c_check_answers_what_the_python_one_answers(
        fields: dict[Any, Any], source_chars: int, max_fields: int,
        max_value_bytes: int) -> None:
    if not limits.COMPILED:
        pytest.skip("the C twin is not built")
    assert (needs_no_capping(fields, source_chars, max_fields, max_value_bytes)
            is needs_no_capping_py(fields, source_chars, max_fields, max_value_bytes))

"""Fuzzing the indexer's stages, from one parser to a whole record turned into a bulk action.

The promise checked here: no line (deeply nested JSON, huge numbers, duplicate keys, logfmt with
stray quotes and escapes, lines that almost match a preset, very long lines) makes a stage
raise or take more than linear work; a line whose parse fails is still a document; the document
always serializes, keeps the record's own fields, and keeps the line itself (as ``message`` when
no parser took it, as ``event.original`` with ``keep_original`` when one did).

"Linear work" has no clock here: the long inputs below are sized so that a quadratic regex or
loop would run for hours, which the suite's timeout turns into a failure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from indexer.stages.document import IndexNamer, bulk_lines, to_document
from indexer.stages.levels import LEVELS, detect_level, normalize_level
from indexer.stages.limits import cap_fields_detailed
from indexer.stages.parsers import PRESETS, PatternParser, parse_json_object, parse_logfmt
from indexer.stages.process import FLAG_FIELDS_FLATTENED, FLAG_PARSE_ERROR, Processor
from indexer.stages.timestamps import normalize_timestamp
from logferry.config._processing import RESERVED_FIELDS, ProcessingSettings
from logferry.wire import LogRecord

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DEEP = 10_000
BIG = 200_000  # characters in a "long" line: a quadratic pass over it would never finish

# Text as it arrives from the wire (decoded UTF-8, so no lone surrogate).
wire_text = st.text(st.characters(codec="utf-8"))
tricky = st.lists(st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from([*'{}[]"\\=: \t\r\n\x00\ufeff\u00a0.-_/<>', "\\u0000", "\\ud800", "1e400",
                     "-0"])), max_size=40).map("".join)
any_text = st.text(alphabet=st.characters(exclude_categories=()))  # lone surrogates too

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | wire_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(wire_text, inner, max_size=4),
    max_leaves=12)
key_names = st.sampled_from(["message", "msg", "time", "ts", "@timestamp", "level", "lvl",
                             "severity", "host", "log", "log.level", "_id", "attributes",
                             "", ".", "a..b", "event", "a", "a.b"])
json_objects = st.dictionaries(key_names | wire_text, json_values, max_size=6).map(
    lambda d: orjson.dumps(d).decode())


def deep_json(n: int, open_: str = "[", close: str = "]") -> str:
    return open_ * n + close * n


def deep_object(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


JSON_EDGE_CASES = [
    deep_json(DEEP), "{" * DEEP, deep_object(DEEP), deep_object(1000), deep_object(300),
    '{"a":' + deep_json(DEEP) + "}", '{"a":' + deep_json(1000) + "}",
    '{"n":' + "9" * 5000 + "}", '{"n":1e400}', '{"n":-1e400}', '{"n":18446744073709551616}',
    '{"n":-9223372036854775809}', '{"n":1e-400}', '{"n":NaN}', '{"n":Infinity}',
    '{"a":1,"a":2}', '{"message":"x","message":"y","level":"info","level":"bogus"}',
    '{"s":"\\ud800"}', '{"s":"\\udc00\\ud800"}', '{"s":"\\u0000"}', '{"s":"\x00"}',
    "\ufeff{}", " \t\r\n{} ", "{}\x00", '{"a":1} trailing', "[1]", '"x"', "1", "null",
    "{", "}", "{}" * 1000, '{"' + "k" * BIG + '":1}', '{"m":"' + "\\n" * BIG + '"}',
]


@pytest.mark.parametrize("line", JSON_EDGE_CASES, ids=lambda s: repr(s[:30]))
def test_json_edge_cases(line: str) -> None:
    parsed = parse_json_object(line)
    assert parsed is None or isinstance(parsed, dict)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_objects, any_text, tricky,
                 json_values.map(lambda v: orjson.dumps(v).decode()),
                 json_objects.map(lambda s: s[: len(s) // 2])))
@example('{"a":1,"a":2}')
def test_json_parses_exactly_the_json_objects(line: str) -> None:
    parsed = parse_json_object(line)
    try:
        expected = orjson.loads(line.lstrip(" \t\r\n\f\v\ufeff"))
    except orjson.JSONDecodeError:
        expected = None
    assert parsed == (expected if isinstance(expected, dict) else None)


# --- logfmt ---------------------------------------------------------------------------------

_LOGFMT_ALPHABET = [*'ab_=" \\\t\r\nxé\x00', '\\"', "k=", ' k="', '="', "\\\\"]
logfmt_like = st.one_of(
    st.lists(st.sampled_from(_LOGFMT_ALPHABET), max_size=40).map("".join),
    st.lists(st.tuples(st.sampled_from(["a", "b", "c", "_x", "a.b", "a-b/c", "1a", ""]),
                       st.sampled_from(["", "v", '"v"', '"v w"', '"\\"', '"\\""', '"x\\', '"',
                                        '"\\u00e9"', '"\\x41"', '"\\ud800"', "=", "é", '""x']),
                       st.sampled_from([" ", "  ", "\t", "", "\n"])),
             max_size=6).map(lambda ts: "".join(f"{k}={v}{sep}" for k, v, sep in ts)),
)
_KEY = re.compile(r"[A-Za-z_][\w.\-/]*", re.ASCII)


@settings(max_examples=300, deadline=None)
@given(st.one_of(logfmt_like, any_text))
def test_logfmt_never_raises_and_only_returns_its_keys(line: str) -> None:
    parsed = parse_logfmt(line)
    if parsed is None:
        return
    assert len(parsed) >= 2
    for key, value in parsed.items():
        assert _KEY.fullmatch(key)
        assert f"{key}=" in line
        assert type(value) is str


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.builds(str.__add__, st.sampled_from("aZ_"),
                                 st.text(alphabet="bY9_.-/", max_size=8)),
                       # \s in the tokenizer is ASCII-only: other blanks are value bytes.
                       st.text(alphabet=st.characters(codec="utf-8",
                                                      exclude_characters=' "\t\n\r\f\v'),
                               max_size=10),
                       min_size=2, max_size=6))
def test_logfmt_bare_values_come_back(fields: dict[str, str]) -> None:
    line = " ".join(f"{k}={v}" for k, v in fields.items())
    assert parse_logfmt(line) == fields


LONG_LINES = [
    "a=1 " * (BIG // 4),
    "a=1 b=2 " + "x" * BIG,
    "a=1 b=" + '"' + "\\\"" * (BIG // 2),  # unterminated quote full of escapes
    "a=1 b=" + '"' + "\\ " * (BIG // 2),
    "a=1 " + 'k="\\ ' * (BIG // 6),
    "a=1 " + 'k=" ' * (BIG // 4),
    "a=1 " + "k=" * (BIG // 2),
    "a=" + "=" * BIG,
    "a" * BIG + "=1 b=2",
    "a=1 b=" + '"' + "x" * BIG + '"',
    " " * BIG + "a=1 b=2",
    "\t" * BIG,
    "é" * BIG,
    "\x00" * BIG,
    '"' * BIG,
    "\\" * BIG,
    "[" * BIG,
    "<" + "1" * BIG,
    "<1>1 " + "- " * (BIG // 2),
    "<1>1 - - - - - " + "[" * BIG,
    "<1>1 - - - - - " + '[a="' + "\\a" * (BIG // 2),
    "<1>1 - - - - - " + "[a]" * (BIG // 3),
    "<1>1 - - - - - " + '[a b="' + '\\"' * (BIG // 2) + '"]',
    "1.2.3.4 - - [" + "x" * BIG,
    '1.2.3.4 - - [t] "' + '\\"' * (BIG // 2),
    '1.2.3.4 - - [t] "GET ' + "/" * BIG,
    '1.2.3.4 - - [t] "GET / HTTP/1.1" 200 1 "' + "\\x" * (BIG // 2),
    '1.2.3.4 - - [t] "GET / HTTP/1.1" 200 1 "-" "' + " " * BIG,
    "Oct 11 22:14:15 " + "h" * BIG,
    "Oct 11 22:14:15 h " + "a" * BIG + ": x",
    "Oct 11 22:14:15 h a[" + "1" * BIG,
    "Oct  1 22:14:15." + "9" * BIG,
    "ERROR " * (BIG // 6),
    "[error]" * (BIG // 7),
    "level=" * (BIG // 6),
    '{"a":"' + "x" * BIG + '"}',
    "2026-11-25T10:15:00." + "1" * BIG + "Z",
]


@pytest.mark.parametrize("line", LONG_LINES, ids=lambda s: repr(s[:24]))
def test_long_adversarial_lines_complete(line: str) -> None:
    parse_json_object(line)
    parse_logfmt(line)
    ALL_PATTERNS.match(line)
    detect_level(line)
    normalize_level(line)
    normalize_timestamp(line, NOW)


# --- patterns and presets ---------------------------------------------------------------------

ALL_PATTERNS = PatternParser([r"^(\S+) (?P<rest>.*)"],
                             presets=list(PRESETS))
preset_like = st.one_of(
    st.builds(lambda ip, ts, req, status, size, tail: (
        f'{ip} - - [{ts}] "{req}" {status} {size}{tail}'),
        st.sampled_from(["1.2.3.4", "-", "", "a b"]), tricky, tricky,
        st.sampled_from(["200", "2000", "-", "20"]), st.sampled_from(["1", "-", "", "x"]),
        st.one_of(st.just(""), tricky.map(lambda t: f' "{t}" "{t}"'))),
    st.builds(lambda pri, ver, rest: f"<{pri}>{ver} {rest}",
              st.sampled_from(["1", "191", "192", "999", "", "x", "00"]),
              st.sampled_from(["1", "12", "", "x"]), tricky),
    st.builds(lambda pri, mon, rest: f"{pri}{mon} 11 22:14:15 {rest}",
              st.sampled_from(["", "<13>", "<999>", "<>"]),
              st.sampled_from(["Oct", "oct", "Xyz", "O"]), tricky),
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(preset_like, any_text))
def test_patterns_never_raise_and_give_string_fields(line: str) -> None:
    found = ALL_PATTERNS.match(line)
    if found is None:
        return
    name, fields = found
    assert name in ALL_PATTERNS.names
    assert all(type(v) is str and v and v != "-" for v in fields.values())
    if "facility" in fields:
        assert 0 <= int(fields["facility"]) < 24 and 0 <= int(fields["severity"]) < 8


# --- timestamps and levels --------------------------------------------------------------------

odd_values = st.one_of(
    any_text, tricky,
    st.integers(), st.integers(-(10**40), 10**40), st.sampled_from([2**63, 2**64, -1, 10**4300]),
    st.floats(), st.sampled_from([1e308, -0.0, 5e-324, 1e19, 1.7e9, float("inf")]),
    # ASCII, Arabic-Indic and fullwidth digits (str.isdigit() and \\d take them), superscript two.
    st.text(alphabet="0123456789\u0660\u0661\u0662\u0665\u0667\u0669\uff10\uff11\uff12"
            "\uff13\u00b2", min_size=1, max_size=30),
    st.sampled_from(["9" * 5000, "1" * 21, "1.5" + "0" * 5000, "-1", "+1", "1e9", "0x10"]),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)),
                                            timezone(timedelta(hours=-14))])),
    st.sampled_from([datetime.min, datetime.max, datetime.min.replace(tzinfo=UTC),
                     datetime.max.replace(tzinfo=timezone(timedelta(hours=-14)))]),
    st.none(), st.booleans(), st.just(b"2026-11-25T10:15:00Z"), st.just(Decimal("1.7e9")),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers()),
)
_FIRST_NOW, _LAST_NOW = datetime(1970, 1, 2), datetime(9998, 1, 1)
_utc: st.SearchStrategy[tzinfo] = st.just(UTC)
nows = st.one_of(st.just(NOW), st.datetimes(_FIRST_NOW, _LAST_NOW),  # naive: taken as UTC
                 st.datetimes(_FIRST_NOW, _LAST_NOW, timezones=_utc))


@settings(max_examples=300, deadline=None)
@given(odd_values, nows)
@example(10**4300, NOW)
@example("9" * 5000, NOW)
def test_timestamps_never_raise_and_stay_canonical(value: object, now: datetime) -> None:
    out = normalize_timestamp(value, now)
    if out is None:
        return
    assert out.endswith("Z")
    parsed = datetime.fromisoformat(out[:19]).replace(tzinfo=UTC)
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    assert datetime(1970, 1, 1, tzinfo=UTC) <= parsed <= aware + timedelta(days=1)


@settings(max_examples=200, deadline=None)
@given(st.one_of(odd_values, any_text.map(lambda t: t * 50)))
def test_levels_never_raise(value: object) -> None:
    assert normalize_level(value) in (None, *LEVELS)
    if isinstance(value, str):
        assert detect_level(value) in (None, *LEVELS)


# --- limits -------------------------------------------------------------------------------------


def nested_dict(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": "x"}
    for _ in range(n):
        out = {"a": out}
    return out


def nested_list(n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        out = [out]
    return out


@pytest.mark.parametrize("fields", [
    nested_dict(DEEP), {"l": nested_list(DEEP)}, {"l": [nested_dict(DEEP)]},
    {"d": nested_dict(300)}, {"l": nested_list(300)}, {"s": "x" * BIG},
    {str(i): i for i in range(BIG // 10)}, {i: "int key" for i in range(50)},
    {"": 1, ".": 2, "..": 3, "a..b.": 4, "a.b": 5}, {"n": 2**64 - 1, "f": 1e308},
    {"t": ("a", ["b"]), "o": object()},
])
@pytest.mark.parametrize(("max_fields", "max_depth"), [(100, 1), (100, 5), (100, 20),
                                                      (100_000, 1000), (100_000, 10**9)])
def test_caps_complete_and_serialize(fields: dict[Any, Any], max_fields: int,
                                     max_depth: int) -> None:
    capped = cap_fields_detailed(fields, max_fields, 32768, max_depth)
    # orjson stops at 255 levels: a huge max_depth must not let a deep object through.
    orjson.dumps(capped.fields, default=str)


# --- the whole record -------------------------------------------------------------------------

PROCESSORS = [
    Processor(ProcessingSettings()),
    Processor(ProcessingSettings(keep_original=True)),
    Processor(ProcessingSettings(
        presets=list(PRESETS), patterns=[r"^(?P<k>\w+)=(?P<v>\S+)"], keep_original=True,
        max_fields=3, max_value_bytes=64, max_depth=2)),
    Processor(ProcessingSettings(target_field="", rename_fields={"a": "message", "b": "a.b.c"},
                                 drop_fields=["c.d", "log.level"], max_depth=20,
                                 keep_original=True)),
    Processor(ProcessingSettings(parsers=["logfmt", "json"], target_field="x.y",
                                 max_fields=1)),
    Processor(ProcessingSettings(parsers=[])),
]
agent_ts = st.one_of(
    st.sampled_from(["2026-11-25T11:59:59.123456789Z", "2026-11-25T11:59:59+02:00",
                     "2026-11-25T11:59:59.5-07:00", "9999-99-99T99:99:99Z",
                     "2026-11-25T10:15:00Z"]),
    wire_text.filter(bool))
lines = st.one_of(json_objects, tricky, logfmt_like, preset_like, wire_text,
                  json_objects.map(lambda s: "  " + s[: len(s) * 2 // 3]),
                  st.sampled_from(JSON_EDGE_CASES[:12]))


def _document(record: LogRecord, processor: Processor) -> tuple[dict[str, Any], bytes, Any]:
    doc = to_document(record, "2026-11-25T12:00:00Z")
    processed = processor.process(record.line, record.ts, NOW)
    processed.apply(doc)
    action = bulk_lines(IndexNamer("{prefix}-{namespace}-{date}", "logs")(record), record, doc)
    return doc, action, processed


@settings(max_examples=150, deadline=None)
@given(lines, agent_ts, st.sampled_from(PROCESSORS), st.lists(wire_text, max_size=2),
       st.none() | st.dictionaries(st.sampled_from(["namespace", "pod", "labels"]),
                                   json_values, min_size=1))
@example(deep_object(300), "2026-11-25T10:15:00Z", PROCESSORS[3], [], None)
@example(deep_json(DEEP), "2026-11-25T10:15:00Z", PROCESSORS[0], [], None)
def test_every_record_becomes_a_document_that_keeps_its_line(
        line: str, ts: str, processor: Processor, flags: list[str],
        k8s: dict[str, Any] | None) -> None:
    record = LogRecord(ts, "node-a", "container", "/var/log/x.log", "1:2:3", 42, line, flags,
                       k8s, "stdout")
    doc, action, processed = _document(record, processor)
    # The bulk action is two JSON lines: the action, then the document as built.
    head, body, end = action.split(b"\n")
    assert end == b"" and orjson.loads(head)["create"]["_id"]
    assert orjson.loads(body) == orjson.loads(orjson.dumps(doc))
    # The record's own fields are never replaced by what the line says.
    assert doc["host"] == {"name": "node-a"}
    assert doc["log"]["file"] == {"path": "/var/log/x.log"} and doc["log"]["offset"] == 42
    assert doc["log"]["stream"] == "stdout"
    assert doc["logferry"]["fid"] == "1:2:3" and doc["logferry"]["kind"] == "container"
    assert doc["logferry"].get("flags", [])[: len(flags)] == flags
    assert not RESERVED_FIELDS & processed.fields.keys()
    # The line is kept: as the message when nothing parsed it, else (when asked) as the
    # original; a failed JSON parse is a flag on an ordinary document.
    keep = processor.settings.keep_original
    if processed.fields or processed.message != line:
        if keep:
            assert doc["event"]["original"] == line
    else:
        assert doc["message"] == line
    if FLAG_PARSE_ERROR in processed.flags:
        assert doc["message"] == line and "original" not in doc.get("event", {})
    assert type(doc["@timestamp"]) is str and doc["@timestamp"]


@pytest.mark.parametrize("depth", [253, 254, 300, 1000])
def test_a_deep_json_line_with_huge_depth_and_field_limits_is_a_document(depth: int) -> None:
    # Found by this suite: with max_depth and max_fields above ~254, such a line made
    # bulk_lines raise (orjson's depth limit), and at ~1000 the walk hit RecursionError.
    # max_depth is now at most 100 (config validation, and a clamp in the capper).
    processor = Processor(ProcessingSettings(max_depth=100, max_fields=100_000))
    record = LogRecord("2026-11-25T10:15:00Z", "h", "file", "/p", "f", 0, deep_object(depth))
    _, _, processed = _document(record, processor)
    assert FLAG_FIELDS_FLATTENED in processed.flags


def test_max_depth_above_100_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        ProcessingSettings(max_depth=101)


@pytest.mark.parametrize("line", JSON_EDGE_CASES + LONG_LINES[:8], ids=lambda s: repr(s[:24]))
@pytest.mark.parametrize("processor", PROCESSORS[:4])
def test_edge_case_records_become_documents(line: str, processor: Processor) -> None:
    record = LogRecord("2026-11-25T10:15:00Z", "h", "file", "/p", "f", 0, line)
    doc, _, processed = _document(record, processor)
    assert doc["message"] == line or processed.message != line or processed.fields

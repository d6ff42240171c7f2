from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages.document import to_document
from indexer.stages.limits import TRUNCATION_MARKER
from indexer.stages.process import (
    Processed,
    Processor,
    _no_root_conflict,
    _resolve_root_conflicts,
)
from logferry.config._processing import RESERVED_FIELDS, ProcessingSettings
from logferry.wire import LogRecord

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AGENT_TS = "2026-11-25T11:59:59.123456789Z"
NGINX = ('10.0.0.1 - - [25/Nov/2026:11:00:00 +0000] "GET /healthz HTTP/1.1" 200 612 "-" '
         '"kube-probe/1.31"')


def run(line: str, **settings: Any) -> Processed:
    return Processor(ProcessingSettings(**settings)).process(line, AGENT_TS, NOW)


def test_json_app_log() -> None:
    line = orjson.dumps({
        "time": "2026-11-25T11:00:00.5+01:00", "level": "WARNING", "msg": "disk low",
        "disk": {"free_bytes": 1024, "mount": "/"}, "trace_id": "abc",
    }).decode()
    assert run(line) == Processed(
        fields={"attributes": {"disk": {"free_bytes": 1024, "mount": "/"}, "trace_id": "abc"}},
        timestamp="2026-11-25T10:00:00.5Z", level="warn", message="disk low", flags=[])


def test_logfmt_line() -> None:
    result = run('ts=2026-11-25T11:30:00Z level=debug msg="cache \\"warm\\"" hits=12')
    assert result == Processed({"attributes": {"hits": "12"}}, "2026-11-25T11:30:00Z",
                               "debug", 'cache "warm"', [])


def test_unparsed_line_stays_as_it_is() -> None:
    line = "2026-11-25 11:00:00,123 ERROR [main] com.example.App - boom"
    assert run(line) == Processed({}, AGENT_TS, "error", line, [])


def test_nginx_preset() -> None:
    result = run(NGINX, presets=["nginx_access"])
    assert result.message == NGINX  # an access log has no message field: the line is it
    assert result.timestamp == "2026-11-25T11:00:00Z"
    assert result.level is None  # and is not searched for a level word
    assert result.fields == {"attributes": {
        "client_ip": "10.0.0.1", "method": "GET", "path": "/healthz",
        "http_version": "HTTP/1.1", "status": "200", "bytes": "612",
        "user_agent": "kube-probe/1.31"}}


def test_syslog_preset_level_from_pri() -> None:
    result = run("<11>Nov 25 11:00:00 web sshd[12]: auth failed", presets=["syslog_rfc3164"])
    assert (result.timestamp, result.level, result.message) == (
        "2026-11-25T11:00:00Z", "error", "auth failed")
    assert result.fields == {"attributes": {"hostname": "web", "app_name": "sshd",
                                            "proc_id": "12", "facility": "1"}}


def test_syslog_without_pri_level_from_the_message() -> None:
    result = run("Nov 25 11:00:00 web sshd[12]: error: auth failed",
                 presets=["syslog_rfc3164"])
    assert result.level == "error" and result.message == "error: auth failed"


# --- promotion ------------------------------------------------------------------------------

def test_message_preferred_over_msg_and_only_non_empty_strings() -> None:
    assert run('{"msg": "b", "message": "a"}').message == "a"
    result = run('{"message": {"nested": 1}, "msg": "b"}')
    assert result.message == "b"
    assert result.fields == {"attributes": {"message": {"nested": 1}}}
    line = '{"message": "", "x": 1}'
    assert run(line).message == line


@pytest.mark.parametrize("key", ["@timestamp", "timestamp", "time", "ts", "date"])
def test_time_keys(key: str) -> None:
    result = run(orjson.dumps({key: "2026-11-25T10:00:00Z", "x": 1}).decode())
    assert result.timestamp == "2026-11-25T10:00:00Z"
    assert result.fields == {"attributes": {"x": 1}}


def test_time_key_order_and_fallback_to_a_valid_one() -> None:
    line = '{"@timestamp": "garbage", "ts": 1764068400123}'
    result = run(line)
    assert result.timestamp == "2025-11-25T11:00:00.123Z"
    assert result.fields == {"attributes": {"@timestamp": "garbage"}}
    assert result.flags == []  # a valid time was found after all


@pytest.mark.parametrize("value", ["garbage", "2030-01-01T00:00:00Z", 0.5, 0, "1999-12-31"])
def test_invalid_app_time_falls_back_to_the_agent(value: object) -> None:
    result = run(orjson.dumps({"time": value, "msg": "x"}).decode())
    assert result.timestamp == AGENT_TS
    assert result.flags == ["timestamp_invalid"]
    assert result.fields == {"attributes": {"time": value}}


def test_agent_time_with_offset_is_normalized() -> None:
    processor = Processor(ProcessingSettings())
    result = processor.process("plain", "2026-11-25T13:00:00.5+02:00", NOW)
    assert result.timestamp == "2026-11-25T11:00:00.5Z"
    # A clock far ahead still gives the record a time: its own.
    assert processor.process("plain", "2030-01-01T00:00:00+01:00", NOW).timestamp == \
        "2030-01-01T00:00:00+01:00"


@pytest.mark.parametrize(("fields", "level"), [
    ({"level": "ERROR"}, "error"), ({"log.level": "warn"}, "warn"), ({"lvl": "i"}, "info"),
    ({"severity": "CRITICAL"}, "fatal"), ({"levelname": "DEBUG"}, "debug"),
    ({"level": 30}, "info"), ({"loglevel": "trace"}, "trace"), ({"log_level": 4}, "warn"),
])
def test_level_keys(fields: dict[str, Any], level: str) -> None:
    result = run(orjson.dumps({**fields, "x": 1}).decode())
    assert result.level == level
    assert result.fields == {"attributes": {"x": 1}}


def test_unknown_level_value_stays_and_text_is_searched() -> None:
    result = run('{"level": "chatty", "msg": "ERROR in handler"}')
    assert result.level == "error"
    assert result.fields == {"attributes": {"level": "chatty"}}
    # Without a promoted message there is no free text to search.
    assert run('{"level": "chatty", "note": "ERROR"}').level is None


# --- flags ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line", ['{"a": 1', '  {"cut": "by a size li', "{not json}"])
def test_parse_error(line: str) -> None:
    result = run(line)
    assert result == Processed({}, AGENT_TS, None, line, ["parse_error"])


def test_no_parse_error_when_json_is_off_or_another_parser_took_it() -> None:
    assert run('{"a": 1', parsers=["logfmt"]).flags == []
    assert run("plain {text}").flags == []
    assert run("{x} a=1 b=2").flags == ["parse_error"]  # logfmt refuses the junk word too


def test_limit_flags() -> None:
    line = orjson.dumps({"msg": "m", "a": {"b": {"c": 1}}, "s": "x" * 200, "n": 1, "m": 2,
                         "o": 3}).decode()
    result = run(line, max_fields=4, max_value_bytes=64, max_depth=1)
    assert result.flags == ["fields_capped", "value_truncated", "fields_flattened"]
    attributes = result.fields["attributes"]
    assert attributes["a"] == '{"b":{"c":1}}'
    assert attributes["s"].endswith(TRUNCATION_MARKER)
    assert "o" not in attributes


# --- rename, drop, placement ----------------------------------------------------------------

def test_rename_then_drop_with_dotted_paths() -> None:
    line = orjson.dumps({"ctx": {"user": {"id": 7}, "noise": 1}, "a.b": 2, "keep": 3}).decode()
    result = run(line, rename_fields={"ctx.user.id": "user_id", "a.b": "ab"},
                 drop_fields=["ctx", "missing.path"])
    assert result.fields == {"attributes": {"keep": 3, "user_id": 7, "ab": 2}}


def test_rename_into_a_nested_path_and_promotion_after_rename() -> None:
    line = '{"text": "hello", "svc": "api", "when": "2026-11-25T10:00:00Z"}'
    result = run(line, rename_fields={"text": "message", "svc": "service.name",
                                      "when": "time"})
    assert result.message == "hello"
    assert result.timestamp == "2026-11-25T10:00:00Z"
    assert result.fields == {"attributes": {"service": {"name": "api"}}}


def test_rename_blocked_by_a_value_changes_nothing() -> None:
    result = run('{"a": "scalar", "b": 1}', rename_fields={"b": "a.x"})
    assert result.fields == {"attributes": {"a": "scalar", "b": 1}}


def test_rename_onto_itself_nests_without_a_cycle() -> None:
    result = run('{"a": {"x": 1}, "n": 1}', rename_fields={"a": "a.b"})
    assert result.fields == {"attributes": {"a": {"b": {"x": 1}}, "n": 1}}


def test_dotted_target_field() -> None:
    result = run("a=1 b=2", target_field="app.fields")
    assert result.fields == {"app": {"fields": {"a": "1", "b": "2"}}}


def test_root_target_moves_conflicts_under_attributes() -> None:
    line = orjson.dumps({
        "msg": "m", "service.name": "api", "host": "web-1", "_id": 1, "log.level": "loud",
        "attributes": {"a": 1}, "event": "x", ".kubernetes": 1, "user": {"id": 2},
    }).decode()  # ".kubernetes" is read as "kubernetes" by OpenSearch: a conflict too
    result = run(line, target_field="")
    assert result.fields == {
        "service.name": "api", "user": {"id": 2},
        "attributes": {"host": "web-1", "_id": 1, "log.level": "loud",
                       "attributes": {"a": 1}, "event": "x", "kubernetes": 1},
    }
    assert result.flags == ["field_conflict"]
    assert result.message == "m"


# Keys around the edges of the fast check: reserved names, "_" and "." anywhere, the NUL
# it joins keys with, and plain ones.
_conflict_keys = st.one_of(
    st.sampled_from(sorted(RESERVED_FIELDS | {"attributes"})),
    st.text(alphabet="ab._\0", max_size=6),
    st.sampled_from(["user", "a.b", "_x", ".host", "x_y", "\0_a", "a\0", ""]),
    st.text(max_size=8),
)


@given(st.dictionaries(_conflict_keys, st.integers(), max_size=6))
def test_the_fast_root_check_never_hides_a_conflict(fields: dict[str, Any]) -> None:
    """Where the C-level check says "no conflict", the per-key walk changes nothing."""
    walked, flags = dict(fields), []
    _resolve_root_conflicts(walked, flags)
    if _no_root_conflict(fields):
        assert (walked, flags) == (fields, [])


def test_the_fast_root_check_passes_plain_keys_only() -> None:
    assert _no_root_conflict({"user": 1, "trace_id": "x", "x_y": 2})
    assert _no_root_conflict({})
    for key in ("host", "_id", "a.b", ".x", "\0_", "attributes"):
        assert not _no_root_conflict({"user": 1, key: 2}), key
    assert not _no_root_conflict({1: "not a string key"})  # type: ignore[dict-item]


def test_keep_original_only_for_parsed_lines() -> None:
    line = '{"msg": "m"}'
    assert run(line, keep_original=True).original == line
    assert run(line).original is None
    assert run("plain line", keep_original=True).original is None


def test_parser_order_and_choice() -> None:
    line = "a=1 b=2"
    assert run(line, parsers=["json"]).fields == {}
    assert run(line, parsers=["patterns", "logfmt"],
               patterns=[r"^(?P<first>\w)"]).fields == {"attributes": {"first": "a"}}
    assert run(line, parsers=["logfmt", "patterns"],
               patterns=[r"^(?P<first>\w)"]).fields == {"attributes": {"a": "1", "b": "2"}}


# --- the document ---------------------------------------------------------------------------

def record(line: str) -> LogRecord:
    return LogRecord(ts=AGENT_TS, host="node-a", kind="file", path="/var/log/app.log",
                     fid="f", off=7, line=line, flags=["truncated"], stream="stdout")


def test_apply_to_document() -> None:
    line = '{"time": "2026-11-25T10:00:00Z", "level": "error", "msg": "boom", "x": "1"}'
    rec = record(line)
    doc = to_document(rec, "2026-11-25T12:00:00.000000Z")
    result = Processor(ProcessingSettings(keep_original=True, max_fields=1)).process(
        line, rec.ts, NOW)
    result.apply(doc)
    assert doc == {
        "@timestamp": "2026-11-25T10:00:00Z",
        "message": "boom",
        "host": {"name": "node-a"},
        "log": {"file": {"path": "/var/log/app.log"}, "offset": 7, "stream": "stdout",
                "level": "error"},
        "logferry": {"fid": "f", "kind": "file", "flags": ["truncated"]},
        "event": {"ingested": "2026-11-25T12:00:00.000000Z", "original": line},
        "attributes": {"x": "1"},
    }
    assert rec.flags == ["truncated"]


def test_apply_appends_flags_without_touching_the_record() -> None:
    rec = record('{"a": 1')
    doc = to_document(rec, "2026-11-25T12:00:00.000000Z")
    Processor(ProcessingSettings()).process(rec.line, rec.ts, NOW).apply(doc)
    assert doc["logferry"]["flags"] == ["truncated", "parse_error"]
    assert rec.flags == ["truncated"]


def test_apply_never_writes_reserved_fields_from_fields() -> None:
    doc: dict[str, Any] = {"host": {"name": "n"}}
    Processed({"host": "evil", "x": 1}, AGENT_TS, None, "m").apply(doc)
    assert doc == {"host": {"name": "n"}, "x": 1, "@timestamp": AGENT_TS, "message": "m"}


# --- properties -----------------------------------------------------------------------------

PROCESSORS = [
    Processor(ProcessingSettings(presets=["nginx_access", "syslog_rfc3164", "syslog_rfc5424"],
                                 keep_original=True, max_fields=5, max_value_bytes=64,
                                 max_depth=2)),
    Processor(ProcessingSettings(target_field="", rename_fields={"a": "message"},
                                 drop_fields=["b.c"])),
]
any_text = st.text(alphabet=st.one_of(
    st.characters(exclude_categories=()), st.sampled_from('{}[]"\\=: .-_@')))
json_lines = st.dictionaries(
    st.one_of(st.sampled_from(["msg", "message", "time", "ts", "level", "host", "_id", "a",
                               "b", "b.c", "log.level", "@timestamp"]), st.text(max_size=5)),
    st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                 | st.text(max_size=30) | st.floats(allow_nan=False, allow_infinity=False),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                     max_size=3),
                 max_leaves=8),
    max_size=6).map(lambda d: orjson.dumps(d).decode())


@settings(deadline=None, max_examples=40)
@given(st.one_of(any_text, json_lines), st.sampled_from(PROCESSORS))
def test_process_never_raises_and_keeps_its_promises(line: str, processor: Processor) -> None:
    result = processor.process(line, AGENT_TS, NOW)
    assert not RESERVED_FIELDS & result.fields.keys()
    assert result.timestamp.endswith("Z")
    datetime.fromisoformat(result.timestamp[:-1] + "+00:00")
    assert result.level in (None, "trace", "debug", "info", "warn", "error", "fatal")
    assert isinstance(result.message, str)
    assert len(set(result.flags)) == len(result.flags)

"""The indexer's one-pass DocumentBuilder against the reference path it replaces:
decode_lines -> to_document -> Processor.process().apply -> bulk_lines, byte for byte; and a
line of a v2 record against the same line alone in a v1 record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages import document
from indexer.stages.document import DocumentBuilder, IndexNamer, bulk_lines, to_document
from indexer.stages.process import Processor
from logferry.config._processing import ProcessingSettings
from logferry.errors import WireFormatError
from logferry.wire import LogRecord, batch_head, decode_lines, encode, encode_batch

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
INGESTED = "2026-11-25T12:00:00.123456Z"
NGINX = ('10.0.0.1 - - [25/Nov/2026:11:00:00 +0000] "GET /healthz HTTP/1.1" 200 612 "-" '
         '"kube-probe/1.31"')
LINES = [
    "plain text without anything",
    "2026-11-25 11:00:00,123 ERROR [main] com.example.App - boom",
    "E1125 10:15:00.123456    1 controller.go:123] sync failed",
    NGINX,
    '{"time":"2026-11-25T11:00:00.5Z","level":"warn","msg":"disk low","disk":{"free":1}}',
    '{"ts":1764068400123,"lvl":"INFO","message":"hi","trace_id":"abc"}',
    '{"time":"1999-01-01T00:00:00Z","msg":"old"}',
    '{"msg":"", "level": 99}',
    '{"log.level":"error","@timestamp":"2026-11-25T11:00:00Z","host":"x","_id":"y"}',
    '{"a":' * 8 + "1" + "}" * 8,
    '{"big":"' + "x" * 5000 + '"}',
    '{"broken": ',
    "  {not json",
    'ts=2026-11-25T11:30:00Z level=debug msg="cache \\"warm\\"" hits=12',
    "<11>Nov 25 11:00:00 web sshd[12]: auth failed",
    "",
    "ünïcödé ✓ WARN here",
]
K8S = [
    None,
    {"namespace": "shop", "pod": "checkout-7d9f", "pod_uid": "u1", "container": "app",
     "restart": 0},
    {"namespace": "Shop", "pod": "checkout-7d9f", "pod_uid": "u1", "container": "app",
     "restart": 1, "labels": {"app": "checkout"}, "node": "node-a"},
    {"namespace": "Shop", "pod": "checkout-7d9f", "pod_uid": "u1", "container": "app",
     "restart": 1, "labels": {"app": "checkout", "tier": "web"}, "node": "node-a"},
    {},
]
SETTINGS = [
    {},
    {"presets": ["nginx_access", "syslog_rfc3164"], "keep_original": True},
    {"target_field": "", "rename_fields": {"disk.free": "free"}, "drop_fields": ["trace_id"]},
    {"parsers": ["logfmt"], "max_fields": 2, "max_value_bytes": 64, "max_depth": 2},
]
PATTERNS = ["{prefix}-{date}", "{prefix}-{namespace}-{date}", "{prefix}-{month}"]


def reference(value: bytes, processor: Processor, namer: IndexNamer) -> list[bytes]:
    out = []
    for record in decode_lines(value):
        index = namer(record)
        doc = to_document(record, INGESTED)
        processor.process(record.line, record.ts, NOW).apply(doc)
        out.append(bulk_lines(index, record, doc))
    return out


def records() -> list[bytes]:
    out = []
    for i, line in enumerate(LINES):
        for j, k8s in enumerate(K8S):
            out.append(encode(LogRecord(
                ts="2026-11-25T11:59:59.123456789Z" if i % 3 else "2026-11-25T12:59:59+01:00",
                host=f"node-{j}", kind="container" if k8s else "file",
                path=f"/var/log/{j}.log", fid=f"803:1a:{i % 4}", off=i * 100 + j,
                line=line, flags=["split"] if (i + j) % 4 == 0 else [], k8s=k8s,
                stream=("stdout", "stderr", None)[(i + j) % 3])))
    return out


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("options", SETTINGS)
def test_builder_equals_reference_path(options: dict[str, Any], pattern: str) -> None:
    processor = Processor(ProcessingSettings(**options))
    namer = IndexNamer(pattern, "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    for _ in range(2):  # the second pass runs on filled caches
        for value in records():
            assert builder.build_lines(value) == reference(value, processor, namer)


def test_shared_parts_are_not_modified_by_later_documents() -> None:
    processor = Processor(ProcessingSettings(keep_original=True))
    namer = IndexNamer("{prefix}-{date}", "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    first = encode(LogRecord("2026-11-25T11:00:00Z", "h", "container", "/p", "f", 0, "plain",
                             k8s=K8S[2]))
    before = builder.build_lines(first)
    # flags, event.original, a level: all of them must go to this document only
    for line in ('{"msg":"x","level":"error"}', "ERROR boom", '{"broken'):
        builder.build_lines(encode(LogRecord("2026-11-25T11:00:00Z", "h", "container", "/p", "f", 1,
                                       line, flags=["split"], k8s=K8S[2])))
    assert builder.build_lines(first) == before


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "_CACHE_MAX", 3)
    processor = Processor(ProcessingSettings())
    namer = IndexNamer("{prefix}-{namespace}-{date}", "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    for i in range(20):
        k8s = {"namespace": f"ns{i}", "pod": f"p{i}"}
        value = encode(LogRecord(f"2026-11-{i + 1:02d}T00:00:00Z", "h", "container",
                                 f"/p{i}", f"f{i}", i, "x", k8s=k8s))
        assert builder.build_lines(value) == reference(value, processor, namer)
    assert len(builder._files) <= 3
    assert len(builder._actions) <= 3
    assert len(builder._kubernetes) <= 3


BAD = [
    b"", b"not json", b"[1]", b'"x"', b"{}", b'{"v":2,"ts":"x"}',
    b'{"v":1,"ts":"2026-11-25T11:00:00Z","host":"h","kind":"file","path":"/p","fid":"f",'
    b'"off":true,"line":"x"}',
    b'{"v":1,"ts":"2026-11-25T11:00:00Z","host":"h","kind":"file","path":"/p","fid":"f",'
    b'"off":1}',
    b'{"v":1,"ts":"2026-11-25T11:00:00Z","host":"h","kind":"file","path":"/p","fid":"f",'
    b'"off":1,"line":"x","flags":"split"}',
    b'{"v":1,"ts":"2026-11-25T11:00:00Z","host":"h","kind":"file","path":"/p","fid":"f",'
    b'"off":1,"line":"x","k8s":[1]}',
    b"\xff\xfe",
]


def test_odd_record_values_take_the_same_path() -> None:
    """Falsy flags, a non-string stream, extra fields, ``v`` given as 1.0."""
    processor = Processor(ProcessingSettings())
    namer = IndexNamer("{prefix}-{namespace}-{date}", "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    base = {"v": 1, "ts": "2026-11-25T11:00:00Z", "host": "h", "kind": "file", "path": "/p",
            "fid": "f", "off": 7, "line": "WARN x"}
    for extra in ({"flags": 0}, {"flags": ""}, {"stream": 5}, {"stream": ""}, {"new": [1]},
                  {"v": 1.0}, {"k8s": None}, {"k8s": {"namespace": {"odd": 1}}},
                  {"k8s": {"namespace": "A/B"}}, {"flags": ["x", 1, None]}):
        value = orjson.dumps({**base, **extra})
        assert builder.build_lines(value) == reference(value, processor, namer)


line_text = st.one_of(
    st.text(max_size=200),
    st.dictionaries(st.sampled_from(["msg", "message", "time", "ts", "level", "lvl", "a.b",
                                     "", ".x", "host", "_id", "n"]),
                    st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15),
                              st.text(max_size=30), st.lists(st.integers(), max_size=3),
                              st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
                    max_size=8).map(json.dumps),
)


@settings(max_examples=300, deadline=None)
@given(line=line_text, off=st.integers(0, 2**62), ts=st.sampled_from(
    ["2026-11-25T11:00:00Z", "2026-11-25T11:00:00.123+02:00", "2026-11-24T23:00:00.5Z"]),
    flags=st.lists(st.sampled_from(["split", "invalid_utf8"]), max_size=2),
    k8s=st.sampled_from(K8S), stream=st.sampled_from([None, "stdout", "stderr"]))
def test_builder_equals_reference_on_generated_records(
        line: str, off: int, ts: str, flags: list[str], k8s: dict[str, Any] | None,
        stream: str | None) -> None:
    processor = Processor(ProcessingSettings(presets=["nginx_access"]))
    namer = IndexNamer("{prefix}-{namespace}-{date}", "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    value = encode(LogRecord(ts, "h", "file", "/p", "f", off, line, flags, k8s, stream))
    assert builder.build_lines(value) == reference(value, processor, namer)


# -- v2: many lines of one file per record ------------------------------------------------------

STAMPS = ["2026-11-25T11:59:59.123456789Z", "2026-11-25T12:59:59+01:00", "2026-11-24T23:00:00Z"]


def batches() -> list[bytes]:
    """v2 records of LINES with every shape of the per-line columns: ts one for all or one
    per line, stream absent, one for all or per line with nulls, flags none or sparse."""
    out = []
    n = len(LINES)
    offs = [i * 100 for i in range(n)]
    stamps = [STAMPS[i % 3] for i in range(n)]
    streams: list[str | None] = [("stdout", "stderr", None)[i % 3] for i in range(n)]
    for j, k8s in enumerate(K8S):
        head = batch_head(f"node-{j}", "container" if k8s else "file", f"/var/log/{j}.log",
                          f"803:1b:{j}", k8s)
        for ts in (STAMPS[j % 3], stamps):
            for stream in (None, "stderr", streams):
                sparse: list[list[tuple[int, list[str]]] | None] = [
                    None, [(0, ["split"]), (n - 1, ["invalid_utf8", "split"])], [(5, [])]]
                for flags in sparse:
                    out.append(encode_batch(head, ts, offs, LINES, stream, flags))
    out.append(encode_batch(batch_head("h", "file", "/one", "f1"), STAMPS[0], [7], ["one"]))
    return out


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("options", SETTINGS)
def test_v2_lines_equal_the_reference_and_their_v1_records(options: dict[str, Any],
                                                           pattern: str) -> None:
    processor = Processor(ProcessingSettings(**options))
    namer = IndexNamer(pattern, "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    for _ in range(2):  # the second pass runs on filled caches
        for value in batches():
            built = builder.build_lines(value)
            assert built == reference(value, processor, namer)
            singles = [encode(r) for r in decode_lines(value)]
            assert len(singles) == len(built)
            assert built == [line for v1 in singles for line in builder.build_lines(v1)]


def test_v2_odd_values_take_the_same_path() -> None:
    """Extra fields, ``v`` as 2.0, an empty stream, empty k8s, flags of odd items, an index
    flagged twice (the last wins, as in decode_lines)."""
    processor = Processor(ProcessingSettings())
    namer = IndexNamer("{prefix}-{namespace}-{date}", "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    base = {"v": 2, "ts": "2026-11-25T11:00:00Z", "host": "h", "kind": "file", "path": "/p",
            "fid": "f", "off": [7, 20], "line": ["WARN x", '{"level":"error"}']}
    extras: list[dict[str, Any]] = [
        {"new": [1]}, {"v": 2.0}, {"stream": ""}, {"stream": ["", None]}, {"stream": None},
        {"k8s": {}}, {"k8s": None}, {"k8s": {"namespace": "A/B"}}, {"flags": []},
        {"flags": [[1, ["x", 1, None]]]}, {"flags": [[0, ["a"]], [0, ["b"]]]},
        {"off": [0, 0]}]
    for extra in extras:
        value = orjson.dumps({**base, **extra})
        assert builder.build_lines(value) == reference(value, processor, namer)


_HEAD = b'{"v":2,"host":"h","kind":"file","path":"/p","fid":"f"'
BAD_V2 = [
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1],"line":["x","y"]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[],"line":[]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":1,"line":"x"}',
    _HEAD + b',"off":[1],"line":["x"]}',
    _HEAD + b',"ts":5,"off":[1],"line":["x"]}',
    _HEAD + b',"ts":["2026-11-25T11:00:00Z"],"off":[1,2],"line":["x","y"]}',
    _HEAD + b',"ts":["2026-11-25T11:00:00Z",7],"off":[1,2],"line":["x","y"]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,-2],"line":["x","y"]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,true],"line":["x","y"]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x",null]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x","y"],"stream":[null]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x","y"],"stream":[1,null]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x","y"],"stream":3}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x","y"],"flags":[[2,["a"]]]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x","y"],"flags":[[0,"a"]]}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x","y"],"flags":{"0":[]}}',
    _HEAD + b',"ts":"2026-11-25T11:00:00Z","off":[1,2],"line":["x","y"],"k8s":[1]}',
    b'{"v":2,"host":"h","kind":"file","path":"/p","ts":"2026-11-25T11:00:00Z","off":[1],'
    b'"line":["x"]}',
    b'{"v":3,"host":"h","kind":"file","path":"/p","fid":"f","ts":"2026-11-25T11:00:00Z",'
    b'"off":[1],"line":["x"]}',
]


@pytest.mark.parametrize("value", BAD + BAD_V2)
def test_wire_errors_are_those_of_decode_lines(value: bytes) -> None:
    builder = DocumentBuilder(Processor(ProcessingSettings()),
                              IndexNamer("{prefix}-{date}", "logs"))
    builder.begin(NOW, INGESTED)
    with pytest.raises(WireFormatError) as expected:
        decode_lines(value)
    with pytest.raises(WireFormatError) as got:
        builder.build_lines(value)
    assert str(got.value) == str(expected.value)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.tuples(line_text, st.sampled_from(STAMPS),
                                st.sampled_from([None, "stdout", "stderr"]),
                                st.lists(st.sampled_from(["split", "invalid_utf8"]),
                                         max_size=2)),
                      min_size=1, max_size=8),
       start=st.integers(0, 2**40), same_ts=st.booleans(), same_stream=st.booleans(),
       k8s=st.sampled_from(K8S))
def test_v2_builder_equals_reference_on_generated_records(
        lines: list[tuple[str, str, str | None, list[str]]], start: int, same_ts: bool,
        same_stream: bool, k8s: dict[str, Any] | None) -> None:
    processor = Processor(ProcessingSettings(presets=["nginx_access"]))
    namer = IndexNamer("{prefix}-{namespace}-{date}", "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    offs = [start + 1000 * i for i in range(len(lines))]
    texts = [line for line, _, _, _ in lines]
    ts: str | list[str] = lines[0][1] if same_ts else [t for _, t, _, _ in lines]
    stream: str | list[str | None] | None = (
        lines[0][2] if same_stream else [s for _, _, s, _ in lines])
    flags = [(i, f) for i, (_, _, _, f) in enumerate(lines) if f]
    value = encode_batch(batch_head("h", "file", "/p", "f", k8s), ts, offs, texts, stream,
                         flags)
    built = builder.build_lines(value)
    assert built == reference(value, processor, namer)
    assert built == [line for r in decode_lines(value) for line in builder.build_lines(encode(r))]


def test_valid_records_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed of v2 is the point: a valid record, v1 or v2, never falls back to
    decode_lines and LogRecords."""
    def refuse(value: bytes) -> list[LogRecord]:
        raise AssertionError(f"slow path for {value[:80]!r}")

    builder = DocumentBuilder(Processor(ProcessingSettings()),
                              IndexNamer("{prefix}-{date}", "logs"))
    builder.begin(NOW, INGESTED)
    monkeypatch.setattr(document, "decode_lines", refuse)
    for value in [*batches(), *records()]:
        assert builder.build_lines(value)

"""The indexer's one-pass DocumentBuilder against the reference path it replaces:
decode -> to_document -> Processor.process().apply -> bulk_lines, byte for byte."""

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
from logferry.wire import LogRecord, decode, encode

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


def reference(value: bytes, processor: Processor, namer: IndexNamer) -> bytes:
    record = decode(value)
    index = namer(record)
    doc = to_document(record, INGESTED)
    processor.process(record.line, record.ts, NOW).apply(doc)
    return bulk_lines(index, record, doc)


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
            assert builder.build(value) == reference(value, processor, namer)


def test_shared_parts_are_not_modified_by_later_documents() -> None:
    processor = Processor(ProcessingSettings(keep_original=True))
    namer = IndexNamer("{prefix}-{date}", "logs")
    builder = DocumentBuilder(processor, namer)
    builder.begin(NOW, INGESTED)
    first = encode(LogRecord("2026-11-25T11:00:00Z", "h", "container", "/p", "f", 0, "plain",
                             k8s=K8S[2]))
    before = builder.build(first)
    # flags, event.original, a level: all of them must go to this document only
    for line in ('{"msg":"x","level":"error"}', "ERROR boom", '{"broken'):
        builder.build(encode(LogRecord("2026-11-25T11:00:00Z", "h", "container", "/p", "f", 1,
                                       line, flags=["split"], k8s=K8S[2])))
    assert builder.build(first) == before


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
        assert builder.build(value) == reference(value, processor, namer)
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


@pytest.mark.parametrize("value", BAD)
def test_wire_errors_are_those_of_decode(value: bytes) -> None:
    builder = DocumentBuilder(Processor(ProcessingSettings()),
                              IndexNamer("{prefix}-{date}", "logs"))
    builder.begin(NOW, INGESTED)
    with pytest.raises(WireFormatError) as expected:
        decode(value)
    with pytest.raises(WireFormatError) as got:
        builder.build(value)
    assert str(got.value) == str(expected.value)


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
        assert builder.build(value) == reference(value, processor, namer)


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
    assert builder.build(value) == reference(value, processor, namer)

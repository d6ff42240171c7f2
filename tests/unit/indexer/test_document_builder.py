"""The indexer's one-pass DocumentBuilder against the reference path it replaces:
decode_lines -> to_document -> Processor.process().apply -> bulk_lines, byte for byte; and a
line of a v2 record against the same line alone in a v1 record. Every test runs twice: with
the C assembler (indexer/stages/_document.c) where it is built, and with its Python twin."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages import document
from indexer.stages.document import DocumentBuilder, IndexNamer, bulk_lines, to_document
from indexer.stages.process import Processor, Shaped
from logferry.config._processing import RESERVED_FIELDS, ProcessingSettings
from logferry.errors import WireFormatError
from logferry.wire import (
    LogRecord,
    batch_head,
    decode_lines,
    encode,
    encode_batch,
    origin_id,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True, params=["c", "python"])
def assembler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which way builders made in the test write documents."""
    if request.param == "python":
        monkeypatch.setattr(document, "_ASSEMBLE", None)
        monkeypatch.setattr(document, "_ASSEMBLE_BATCH", None)
    elif not document.COMPILED:
        pytest.skip("the C assembler is not built")
    return str(request.param)


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


# -- the C assembler (indexer/stages/_document.c) against its Python twin ----------------------

def test_the_c_assembler_is_built_where_a_compiler_is(c_compiler: str) -> None:
    # setup.py builds it as optional: a broken build would fall back silently and slowly.
    assert document.COMPILED


def _c_twin() -> None:
    if not document.COMPILED:
        pytest.skip("the C assembler is not built")


@settings(max_examples=300, deadline=None)
@given(head=st.binary(max_size=300), tail=st.binary(max_size=300))
def test_the_c_digest_is_blake2b(head: bytes, tail: bytes) -> None:
    _c_twin()
    from indexer.stages._document import digest
    assert digest(head, tail) == hashlib.blake2b(head + tail, digest_size=15).digest()


def test_the_c_digest_across_block_boundaries() -> None:
    _c_twin()
    from indexer.stages._document import digest
    for n in (0, 1, 127, 128, 129, 255, 256, 257, 1000):
        data = bytes(range(256)) * 4
        for cut in (0, n // 2, n):
            assert (digest(data[:cut], data[cut:n])
                    == hashlib.blake2b(data[:n], digest_size=15).digest())


# Text with what JSON escapes (quotes, backslashes, every control character) and what it does
# not (DEL, U+2028, non-ASCII, astral); values of every kind orjson writes, floats and ints up
# to 64 bits unsigned (written by orjson itself) included.
_text = st.text(alphabet=st.one_of(
    st.characters(max_codepoint=0x7F), st.sampled_from('"\\\x7f\u2028é✓😀'),
    st.characters(exclude_categories=("Cs",))), max_size=40)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
                    _text)


def _values(scalar: st.SearchStrategy[Any], key: st.SearchStrategy[Any]
            ) -> st.SearchStrategy[Any]:
    return st.recursive(scalar, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.dictionaries(key, inner, max_size=4)), max_leaves=12)


_fields = st.dictionaries(st.one_of(_text, st.sampled_from(sorted(RESERVED_FIELDS
                                                                  | {"attributes"}))),
                          _values(_scalar, _text), max_size=6)
# What orjson refuses: lone surrogates, ints beyond 64 bits, keys that are not str.
_refused = st.one_of(st.just("\ud800"), _text.map(lambda t: t + "\udfff"),
                     st.integers(2**64, 2**70), st.integers(-2**70, -2**63 - 1),
                     st.dictionaries(st.integers(0, 3), _scalar, min_size=1, max_size=2))


def _c_and_python(run: Callable[[DocumentBuilder], Any],
                  shape: Callable[[str, str, datetime], Shaped] | None = None) -> list[Any]:
    """What ``run`` gives on a builder with the C assembler and on one with its Python twin
    (or the type of the error each raised); ``shape`` stands in for the processing stages."""
    out: list[Any] = []
    for c in (True, False):
        builder = DocumentBuilder(Processor(ProcessingSettings()),
                                  IndexNamer("{prefix}-{namespace}-{date}", "logs"))
        builder.begin(NOW, INGESTED)
        if not c:
            builder._assemble = builder._assemble_batch = None
        if shape is not None:
            builder._shape = shape  # type: ignore[method-assign]
        try:
            out.append(run(builder))
        except orjson.JSONEncodeError as exc:
            out.append(type(exc))
    return out


def _both_ways(shaped: Shaped, host: str, path: str, fid: str, off: int, flags: list[Any],
               k8s: dict[str, Any] | None, stream: str | None) -> list[Any]:
    """The bulk lines of one shaped line, by the C assembler and by its twin."""
    return _c_and_python(
        lambda builder: builder._lines("2026-11-25T11:00:00Z", host, "container", path, fid,
                                       off, "line", flags, k8s, stream),
        lambda line, ts, now: shaped)


@settings(max_examples=1500, deadline=None)
@given(fields=_fields, message=_text, timestamp=_text, level=st.one_of(st.none(), _text),
       original=st.one_of(st.none(), _text), more_flags=st.lists(_text, max_size=2),
       flags=st.lists(st.one_of(_text, st.integers(-2**63, 2**63 - 1), st.none()), max_size=2),
       stream=st.one_of(st.none(), st.just(""), _text), k8s=st.sampled_from(K8S),
       off=st.integers(0, 2**63 - 1), path=_text, host=_text, fid=_text)
def test_the_c_assembler_writes_what_its_twin_writes(
        fields: dict[str, Any], message: str, timestamp: str, level: str | None,
        original: str | None, more_flags: list[str], flags: list[Any], stream: str | None,
        k8s: dict[str, Any] | None, off: int, path: str, host: str, fid: str) -> None:
    """Any shaped result, not only what the processing stages give."""
    _c_twin()
    c, python = _both_ways((fields, timestamp, level, message, more_flags, original), host,
                           path, fid, off, flags, k8s, stream)
    assert isinstance(c, bytes)
    assert c == python
    action, doc = c.split(b"\n")[:2]
    assert orjson.loads(action)["create"]["_id"] == origin_id(fid, off)
    assert orjson.loads(doc)["message"] == message


def test_the_c_assembler_writes_ints_at_their_edges() -> None:
    _c_twin()
    for off in (0, 9, 10, 2**63 - 1):
        fields = {"n": [0, -1, 9, 10, -10, 2**63 - 1, -2**63, 2**63, 2**64 - 1, 1.0, -0.0]}
        c, python = _both_ways((fields, "t", None, "m", [], None), "h", "/p", "f", off, [],
                               None, None)
        assert isinstance(c, bytes)
        assert c == python


@settings(max_examples=300, deadline=None)
@given(fields=_fields, refused=_refused, at=st.sampled_from(["field", "nested", "message",
                                                            "flag", "off"]))
def test_what_orjson_refuses_the_twin_refuses_too(fields: dict[str, Any], refused: Any,
                                                  at: str) -> None:
    """The C assembler declines; the twin then raises orjson's error (or, for an offset
    beyond 64 bits, which only the hash takes, writes the document)."""
    _c_twin()
    message, flags, off = "m", ["split"], 7
    if at == "field":
        fields = {**fields, "odd": refused}
    elif at == "nested":
        fields = {"attributes": {"a": [1, {"odd": refused}]}}
    elif at == "message" and isinstance(refused, str):
        message = refused
    elif at == "flag":
        flags = [refused]
    elif at == "off" and isinstance(refused, int) and refused > 0:
        off = refused
    c, python = _both_ways((fields, "t", None, message, [], None), "h", "/p", "f", off, flags,
                           None, None)
    assert c == python


def test_the_c_assembler_declines_what_it_does_not_write() -> None:
    """None: the Python twin then writes the document (or raises orjson's error)."""
    _c_twin()
    from indexer.stages._document import assemble
    args: list[Any] = [b"A", b"f@", 1, "t", "m", b"F", None, None, b"M", None, b"E", None,
                       None, {}]
    assert assemble(*args) == (b'A%s"}}\n{"@timestamp":"t","message":"m",F1},M},E}}\n'
                               % origin_id("f", 1).encode())
    for at, value in ((2, 2**64), (4, "\ud800"), (13, {1: "x"}), (13, {"a": {2: 1}}),
                      (13, {"a": object()}), (13, {"a": "\udfff"})):
        odd = list(args)
        odd[at] = value
        assert assemble(*odd) is None, (at, value)
    nested: Any = 1
    for _ in range(300):
        nested = [nested]
    assert assemble(*args[:13], {"deep": nested}) is None


def _batch_both_ways(value: bytes, shape: Any = None) -> list[Any]:
    """The bulk lines of a v2 record by the C loop and by the Python one."""
    return _c_and_python(lambda builder: builder.build_lines(value), shape)


def test_a_line_the_c_loop_declines_is_written_by_the_twin() -> None:
    """An offset past 63 bits (the wire allows up to 64) is hashed by the Python path."""
    _c_twin()
    value = encode_batch(batch_head("h", "container", "/p", "f", K8S[2]), STAMPS[0],
                         [7, 2**63 + 5, 2**64 - 1, 8], ["a", "WARN b", '{"msg":"c"}', "d"],
                         ["stdout", None, "", "stderr"], [(1, ["split"])])
    c, python = _batch_both_ways(value)
    assert c == python
    assert c == reference(value, Processor(ProcessingSettings()),
                          IndexNamer("{prefix}-{namespace}-{date}", "logs"))


@pytest.mark.parametrize("odd", [{1: "x"}, {"a": 2**70}, {"a": "\ud800"}])
def test_what_the_c_loop_declines_and_orjson_refuses_raises_as_in_python(
        odd: dict[Any, Any]) -> None:
    _c_twin()
    processor = Processor(ProcessingSettings())

    def shape(line: str, ts: str, now: datetime) -> Shaped:
        fields, timestamp, level, message, flags, original = processor.shape(line, ts, now)
        return ({**fields, **odd} if line == "odd" else fields, timestamp, level, message,
                flags, original)

    value = encode_batch(batch_head("h", "file", "/p", "f"), STAMPS[0], [1, 2, 3],
                         ["a", "odd", "c"])
    assert _batch_both_ways(value, shape) == [orjson.JSONEncodeError] * 2


def test_the_c_loop_asks_for_the_action_of_each_day() -> None:
    """Lines of one record on different days (and times that are not ASCII) go to their own
    index, as in the Python loop."""
    _c_twin()
    stamps = ["2026-11-24T23:59:59Z", "2026-11-24T23:59:59.5Z", "2026-11-25T00:00:00Z",
              "2026-11-24T23:00:00Z", "2026-11-2\u00e9T00:00:00Z", "2026-11-25T01:00:00Z",
              "short"]
    value = encode_batch(batch_head("h", "container", "/p", "f", K8S[1]), stamps,
                         list(range(len(stamps))), [f"line {i}" for i in range(len(stamps))])
    c, python = _batch_both_ways(value)
    assert c == python
    indexes = [orjson.loads(line.split(b"\n")[0])["create"]["_index"] for line in c]
    assert indexes == ["logs-shop-2026.11.24", "logs-shop-2026.11.24", "logs-shop-2026.11.25",
                       "logs-shop-2026.11.24", "logs-shop-2026.11.2\u00e9",
                       "logs-shop-2026.11.25", "logs-shop-shor.."]

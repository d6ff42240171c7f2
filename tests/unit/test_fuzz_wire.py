"""Fuzzing the wire format: every record the agent can build decodes back to itself, and no
bytes on the topic make :func:`decode` raise anything but :class:`WireFormatError`."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logferry.errors import WireFormatError
from logferry.wire import (
    LogRecord,
    batch_head,
    decode,
    decode_lines,
    encode,
    encode_batch,
    origin_id,
)

# Text as Python holds it after decoding UTF-8 (lone surrogates cannot come out of a decode;
# see test_surrogates_cannot_be_encoded for what happens if they get in).
text = st.text(st.characters(codec="utf-8"), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10)
records = st.builds(
    LogRecord,
    ts=text, host=text, kind=st.sampled_from(["file", "container"]) | text, path=text,
    fid=text, off=st.integers(-(2**63), 2**64 - 1), line=text | st.text(max_size=2000),
    flags=st.lists(text, max_size=4),
    k8s=st.none() | st.dictionaries(text, json_values, min_size=1, max_size=5),
    stream=st.none() | st.sampled_from(["stdout", "stderr"]) | text.filter(bool),
)


@settings(max_examples=200, deadline=None)
@given(records)
@example(LogRecord("", "", "", "", "", 0, ""))
@example(LogRecord("t", "h", "file", "/p\x00\n\r\\\"", "f", 2**64 - 1, "\x00\ufeff\U0010ffff"))
def test_decode_inverts_encode(record: LogRecord) -> None:
    assert decode(encode(record)) == record


@settings(max_examples=200, deadline=None)
@given(records)
def test_a_one_line_batch_decodes_to_the_record(record: LogRecord) -> None:
    if record.off < 0:
        return  # the agent's offsets are file positions
    head = batch_head(record.host, record.kind, record.path, record.fid, record.k8s)
    raw = encode_batch(head, record.ts, [record.off], [record.line],
                       None if record.stream is None else [record.stream],
                       [(0, record.flags)] if record.flags else None)
    assert decode(raw) == record == decode_lines(raw)[0]


@settings(max_examples=200, deadline=None)
@given(records, st.lists(st.tuples(st.integers(0, 2**62), text, text,
                                   st.none() | st.sampled_from(["stdout", "stderr"]),
                                   st.lists(text, max_size=2)), min_size=1, max_size=8),
       st.booleans())
def test_a_batch_decodes_to_its_lines_in_order(file: LogRecord, lines: list[Any],
                                              one_ts: bool) -> None:
    head = batch_head(file.host, file.kind, file.path, file.fid, file.k8s)
    stamps = [ts for _, _, ts, _, _ in lines]
    raw = encode_batch(head, stamps[0] if one_ts else stamps, [off for off, *_ in lines],
                       [line for _, line, *_ in lines], [s for *_, s, _ in lines],
                       [(i, f) for i, (*_, f) in enumerate(lines) if f])
    assert decode_lines(raw) == [
        LogRecord(stamps[0] if one_ts else ts, file.host, file.kind, file.path, file.fid, off,
                  line, flags, file.k8s, stream)
        for off, line, ts, stream, flags in lines]


def _mutated(obj: dict[str, Any]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda changes, drop: orjson.dumps(
            {k: v for k, v in {**obj, **changes}.items() if k not in drop}),
        st.dictionaries(st.sampled_from([*obj, "v", "flags", "k8s", "stream"]),
                        json_values, max_size=3),
        st.sets(st.sampled_from(list(obj))))


GOOD = encode(LogRecord("t", "h", "file", "/p", "f", 1, "x")).decode()
GOOD2 = encode_batch(batch_head("h", "container", "/p", "f", {"namespace": "n"}), ["t", "u"],
                     [1, 5], ["x", "y"], ["stdout", None], [(1, ["split"])]).decode()
DEEP = 10_000
garbage = [
    b"", b"\x00", b"\xff", b"null", b"1", b'"x"', b"[]", b"{}", b"\xef\xbb\xbf{}",
    b"[" * DEEP + b"]" * DEEP, b"{" * DEEP, b'{"v":1,"x":' + b"[" * DEEP + b"]" * DEEP + b"}",
    GOOD[:-1].encode(), GOOD.encode() + b"x", GOOD.replace('"off":1', '"off":1e400').encode(),
    GOOD.replace('"off":1', '"off":' + "9" * 5000).encode(),
    GOOD.replace('"off":1', '"off":18446744073709551616').encode(),  # 2**64: a float
    GOOD.replace('"line":"x"', '"line":"\\ud800"').encode(),  # lone surrogate
    GOOD.replace('"line":"x"', '"line":"\xff"').encode(),  # invalid UTF-8
    GOOD.replace('"line":"x"', '"line":"\x00"').encode(),  # raw control character
    GOOD.replace('"v":1', '"v":"1"').encode(), GOOD.replace('"v":1', '"v":2').encode(),
    GOOD.replace('"flags"', '"x"').replace("}", ',"flags":"invalid_utf8"}').encode(),
    GOOD.replace("}", ',"k8s":[]}').encode(),
    GOOD2.replace('"off":[1,5]', '"off":[1]').encode(),  # columns of different lengths
    GOOD2.replace('"off":[1,5]', '"off":[1,-5]').encode(),
    GOOD2.replace('"line":["x","y"]', '"line":[]').encode(),
    GOOD2.replace('"line":["x","y"]', '"line":"x"').encode(),
    GOOD2.replace('"ts":["t","u"]', '"ts":["t",1]').encode(),
    GOOD2.replace('[[1,["split"]]]', '[[2,["split"]]]').encode(),  # no line 2
    GOOD2.replace('[[1,["split"]]]', '[[true,["split"]]]').encode(),
    GOOD2.replace('[[1,["split"]]]', '{"1":["split"]}').encode(),
    GOOD2.replace('"stream":["stdout",null]', '"stream":[1,null]').encode(),
]


def _decodes_or_refuses(raw: bytes) -> None:
    try:
        recs = decode_lines(raw)
    except WireFormatError:
        return
    assert recs
    # Whatever decodes has the types the indexer relies on.
    for rec in recs:
        for name in ("ts", "host", "kind", "path", "fid", "line"):
            assert type(getattr(rec, name)) is str
        assert type(rec.off) is int
        assert type(rec.flags) is list
        assert rec.k8s is None or type(rec.k8s) is dict
        assert rec.stream is None or type(rec.stream) is str


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), records.map(encode).map(lambda b: b[: len(b) // 2]),
                 _mutated(orjson.loads(GOOD)), _mutated(orjson.loads(GOOD2)),
                 json_values.map(orjson.dumps)))
def test_decode_of_any_bytes_raises_only_wire_format_error(raw: bytes) -> None:
    _decodes_or_refuses(raw)


@pytest.mark.parametrize("raw", garbage)
def test_decode_of_garbage(raw: bytes) -> None:
    _decodes_or_refuses(raw)


@pytest.mark.xfail(strict=True, raises=TypeError, reason="orjson refuses lone surrogates: a "
                   "file name that is not UTF-8 (os.fsdecode gives '\\udce9' for byte 0xe9) "
                   "makes batch_head raise (the agent shows such names with "
                   "agent.paths.display_path instead)")
def test_a_path_from_a_non_utf8_file_name_can_be_encoded() -> None:
    path = "/var/log/caf\udce9.log"  # what glob returns for b"/var/log/caf\xe9.log"
    head = batch_head("h", "file", path, "f")
    assert decode(encode_batch(head, "t", [0], ["x"])).path.startswith("/var/log/caf")


@settings(max_examples=150, deadline=None)
@given(text, st.integers(-(2**63), 2**64), text, st.integers(-(2**63), 2**64))
def test_origin_id_is_a_stable_20_char_id(fid: str, off: int, fid2: str, off2: int) -> None:
    doc_id = origin_id(fid, off)
    assert len(doc_id) == 20 and doc_id == origin_id(fid, off)
    assert base64.urlsafe_b64decode(doc_id) and doc_id.isascii()
    if (fid, off) != (fid2, off2):
        assert origin_id(fid2, off2) != doc_id

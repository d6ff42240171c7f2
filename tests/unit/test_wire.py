from __future__ import annotations

import orjson
import pytest
from hypothesis import given
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


def _record(**kw: object) -> LogRecord:
    base: dict[str, object] = dict(ts="2026-11-25T10:00:00.000001Z", host="n1", kind="file",
                                   path="/var/log/a.log", fid="803:1f:abcdef", off=42,
                                   line="hello")
    base.update(kw)
    return LogRecord(**base)  # type: ignore[arg-type]


def test_round_trip() -> None:
    rec = _record(flags=["invalid_utf8"], k8s={"namespace": "default"}, stream="stderr")
    assert decode(encode(rec)) == rec


@given(st.lists(st.tuples(st.text(), st.integers(min_value=0, max_value=2**62)), min_size=1,
                max_size=5))
def test_a_batch_holds_lines_as_one_line_records_would(lines: list[tuple[str, int]]) -> None:
    rec = _record()
    raw = encode_batch(batch_head(rec.host, rec.kind, rec.path, rec.fid), rec.ts,
                       [off for _, off in lines], [line for line, _ in lines])
    assert decode_lines(raw) == [_record(line=line, off=off) for line, off in lines]
    assert decode_lines(encode(rec)) == [rec]  # v1 still reads


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"v": 3}', "unsupported wire version 3"),
        (b'{"v": 2, "host": "h", "kind": "k", "path": "p", "fid": "f", "off": [1], '
         b'"line": ["a", "b"], "ts": "t"}', "'off' must be a list of 2"),
        (encode_batch(batch_head("h", "k", "p", "f"), "t", [1, 2], ["a", "b"]),
         "holds 2 lines, not one"),
        (b'{"v": 1, "ts": "x"}', "'host' missing"),
        (orjson.dumps({**_record().to_dict(), "off": "12"}), "'off' missing or not int"),
        (orjson.dumps({**_record().to_dict(), "off": True}), "'off' missing or not int"),
    ],
)
def test_decode_explains_bad_records(raw: bytes, why: str) -> None:
    with pytest.raises(WireFormatError, match=why):
        decode(raw)


def test_unknown_fields_are_ignored() -> None:
    raw = orjson.dumps({**_record().to_dict(), "future_field": 1})
    assert decode(raw) == _record()


def test_origin_id_is_deterministic_and_distinct() -> None:
    assert origin_id("a:b:c", 10) == origin_id("a:b:c", 10)
    assert origin_id("a:b:c", 10) != origin_id("a:b:c", 11)
    assert origin_id("a:b:c", 10) != origin_id("a:b:d", 10)
    assert len(origin_id("x", 0)) == 20

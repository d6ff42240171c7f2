from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.errors import WireFormatError
from logferry.wire import (
    LogRecord,
    decode,
    encode,
    encode_with_prefix,
    origin_id,
    record_prefix,
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


@given(st.text(), st.integers(min_value=0, max_value=2**62))
def test_fast_path_equals_dict_encoding(line: str, off: int) -> None:
    rec = _record(line=line, off=off)
    prefix = record_prefix(rec.ts, rec.host, rec.kind, rec.path, rec.fid)
    fast = encode_with_prefix(prefix, off, line)
    assert orjson.loads(fast) == orjson.loads(encode(rec))
    assert decode(fast) == rec


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"v": 2}', "unsupported wire version 2"),
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

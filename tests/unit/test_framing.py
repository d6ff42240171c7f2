from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from agent.stages.framing import FLAG_INVALID_UTF8, FLAG_SPLIT, frame_lines
from logferry.wire import decode, record_prefix

PREFIX = record_prefix("2026-11-25T00:00:00Z", "h", "file", "/p", "1:2:3")


def test_offsets_and_lines() -> None:
    body = b"one\ntwo\n\nthree"
    out = [(decode(v), end) for v, end in frame_lines(PREFIX, 100, body, 1024)]
    assert [(r.off, r.line, end) for r, end in out] == [
        (100, "one", 104), (104, "two", 108), (108, "", 109), (109, "three", 115)]


def test_invalid_utf8_is_kept_and_flagged() -> None:
    [(value, _)] = list(frame_lines(PREFIX, 0, b"bad \xff byte", 1024))
    rec = decode(value)
    assert rec.line == "bad \ufffd byte"
    assert rec.flags == [FLAG_INVALID_UTF8]


def test_long_lines_are_split_with_exact_offsets() -> None:
    body = b"a" * 2500 + b"\nshort"
    out = [(decode(v), end) for v, end in frame_lines(PREFIX, 0, body, 1024)]
    assert [(r.off, len(r.line), r.flags, end) for r, end in out] == [
        (0, 1024, [FLAG_SPLIT], 1024),
        (1024, 1024, [FLAG_SPLIT], 2048),
        (2048, 452, [FLAG_SPLIT], 2501),
        (2501, 5, [], 2507),
    ]


@given(st.lists(st.binary().filter(lambda b: b"\n" not in b), min_size=1, max_size=20),
       st.integers(min_value=8, max_value=64))
def test_every_byte_is_accounted_for(lines: list[bytes], max_line: int) -> None:
    body = b"\n".join(lines)
    out = list(frame_lines(PREFIX, 0, body, max_line))
    # Records tile the body: each starts where the previous ended.
    expected_off = 0
    for value, end in out:
        rec = orjson.loads(value)
        assert rec["off"] == expected_off
        expected_off = end
    assert expected_off == len(body) + 1

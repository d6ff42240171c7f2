from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.stages.framing import (
    FLAG_INVALID_UTF8,
    FLAG_SPLIT,
    frame_chunk,
    frame_lines,
    piece_end,
    split_lines,
    split_lines_py,
)
from agent.stages.records import Lines, pack
from logferry.wire import batch_head, decode, decode_lines
from tests.unit.agent.framed import TS, framed


def test_offsets_and_lines() -> None:
    body = b"one\ntwo\n\nthree"
    out = [(decode(v), end) for v, end in framed(frame_lines, 100, body, 1024)]
    assert [(r.off, r.line, end) for r, end in out] == [
        (100, "one", 104), (104, "two", 108), (108, "", 109), (109, "three", 115)]


def test_invalid_utf8_is_kept_and_flagged() -> None:
    [(value, _)] = list(framed(frame_lines, 0, b"bad \xff byte", 1024))
    rec = decode(value)
    assert rec.line == "bad \ufffd byte"
    assert rec.flags == [FLAG_INVALID_UTF8]


def test_long_lines_are_split_with_exact_offsets() -> None:
    body = b"a" * 2500 + b"\nshort"
    out = [(decode(v), end) for v, end in framed(frame_lines, 0, body, 1024)]
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
    out = list(framed(frame_lines, 0, body, max_line))
    # Records tile the body: each starts where the previous ended.
    expected_off = 0
    for value, end in out:
        rec = orjson.loads(value)
        assert rec["off"] == expected_off
        expected_off = end
    assert expected_off == len(body) + 1


# -- frame_chunk: the whole-chunk fast path must build exactly what frame_lines yields -------

_LINE_TEXT = st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]),
                     max_size=40)


@given(st.lists(st.one_of(_LINE_TEXT.map(lambda t: t.encode("utf-8")),
                          st.binary(max_size=40).filter(lambda b: b"\n" not in b)),
                min_size=1, max_size=20),
       st.integers(min_value=0, max_value=10**12), st.integers(min_value=8, max_value=64),
       st.booleans())
def test_frame_chunk_equals_frame_lines(lines: list[bytes], start: int, max_line: int,
                                        continued: bool) -> None:
    body = b"\n".join(lines)
    fast = framed(frame_chunk, start, body, max_line, continued)
    assert list(fast) == list(framed(frame_lines, start, body, max_line, continued))
    assert fast.commits[-1] == start + len(body) + 1


@given(st.lists(_LINE_TEXT, min_size=1, max_size=60), st.integers(0, 400),
       st.sampled_from([("h", "/p"), ("h%d", "/var/log/100%s.log")]))
def test_packed_records_hold_every_line_in_order(texts: list[str], max_bytes: int,
                                                 names: tuple[str, str]) -> None:
    out = Lines()
    body = "\n".join(texts).encode()
    frame_chunk(out, TS, 7, body, 1024)
    records = pack(batch_head(names[0], "file", names[1], "f"), out, max_bytes)
    got = [r for value in records.values for r in decode_lines(value)]
    assert [(r.off, r.line, r.ts, r.host, r.path) for r in got] == [
        (off, text, TS, *names) for off, text in zip(out.offs, out.texts, strict=True)]
    assert sum(records.lines) == len(out)
    assert records.commits[-1] == 7 + len(body) + 1


def test_frame_chunk_offsets_count_bytes_not_characters() -> None:
    body = "ünïcödé\nplain\n€".encode()
    out = [(decode(v), end) for v, end in framed(frame_chunk, 10, body, 1024)]
    assert [(r.off, r.line, end) for r, end in out] == [
        (10, "ünïcödé", 22), (22, "plain", 28), (28, "€", 32)]


def test_the_rest_of_a_continued_line_is_a_piece_however_short() -> None:
    out = [(decode(v), end) for v, end in framed(frame_chunk, 4, b"aa\nb", 1024, True)]
    assert [(r.off, r.line, r.flags, end) for r, end in out] == [
        (4, "aa", [FLAG_SPLIT], 7), (7, "b", [], 9)]


@pytest.mark.parametrize(("data", "start", "limit", "end"), [
    (b"abcdef", 0, 4, 4),  # ASCII: at the limit
    (b"abc", 0, 4, 3),  # the rest fits
    ("aé".encode(), 0, 2, 1),  # back before "é"
    ("a€b".encode(), 0, 3, 1),  # back 2 bytes, to the start of "€"
    ("a😀b".encode(), 0, 4, 1),  # back 3 bytes, to the start of "😀"
    ("a😀b".encode(), 0, 5, 5),  # right after it: no move
    ("😀".encode(), 0, 2, 2),  # a character longer than a piece: cut, never an empty piece
    ("x😀".encode(), 1, 2, 3),  # ... also further into the data
    (b"ab\x80\x80\x80", 0, 3, 3),  # stray continuation bytes: invalid anyway, cut as is
    (b"\xe2\x82\xe2\x82\xac", 0, 3, 2),  # a truncated "€" before a whole one
])
def test_piece_end_moves_back_only_to_the_character_it_would_cut(
        data: bytes, start: int, limit: int, end: int) -> None:
    assert piece_end(data, start, limit) == end


# --- split_lines: a plain chunk at once, in C when built -----------------------------------

def test_split_lines() -> None:
    body = "one\ntwo é\n\nthree".encode()
    expected = ([100, 104, 111, 112, 118], ["one", "two é", "", "three"])  # é: 2 bytes
    assert split_lines_py(body, 100) == expected
    assert split_lines(body, 100) == expected
    for bad in (b"\xff", b"ok\n\xed\xa0\x80", b"\xe2\x82\nx", b"a\n\xc3"):
        assert split_lines_py(bad, 0) is None
        assert split_lines(bad, 0) is None


@settings(deadline=None, max_examples=500)
@given(st.lists(st.one_of(st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
                          st.binary(max_size=20)), max_size=10),
       st.integers(0, 1 << 40))
def test_the_c_split_gives_what_python_gives(pieces: list[bytes], start: int) -> None:
    body = b"\n".join(pieces)
    assert split_lines(body, start) == split_lines_py(body, start)

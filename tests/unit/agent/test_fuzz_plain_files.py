"""Fuzzing plain-file reading: framing, the tailer's chunks and :class:`PlainPipeline`.

The promise checked here: whatever bytes a file holds (NUL, CR, invalid UTF-8, lines far over
``max_line_bytes``) and however reads cut it, the records tile the file (each record's ``off`` is
the byte offset of its first byte, the next record starts where it ends) and each record's line
is its bytes, except for the documented losses: invalid UTF-8 comes out as U+FFFD with the
``invalid_utf8`` flag, and a line over ``max_line_bytes`` comes out in several pieces flagged
``split``, cut between characters (inside one only if it is longer than a piece). So a valid
UTF-8 file is rebuilt byte for byte from its records, and the pieces do not depend on how
reads cut the file, nor on where a resume starts.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.sources.identity import FileIdentity
from agent.sources.tailer import FileTailer
from agent.stages.framing import (
    FLAG_INVALID_UTF8,
    FLAG_SPLIT,
    add_bytes,
    frame_lines,
    split_lines_py,
)
from agent.stages.multiline import MultilineRules
from agent.stages.pipeline import PlainPipeline
from agent.stages.records import Lines
from logferry.wire import decode
from tests.unit.agent.framed import framed, per_line

# Bytes that break naive line handling, mixed with plain text so that lines are often valid.
_NASTY = [b"\x00", b"\r", b"\r\n", b"\n", b"\n\n", b"\xff", b"\xc3", b"\xa9", b"\xc3\xa9",
          b"\xe2\x82", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\xef\xbb\xbf",
          b"\\", b'"', b"\t", b" ", b"{", b"a", b"abc", b"x" * 40]
file_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(_NASTY), max_size=60).map(b"".join),
    st.lists(st.one_of(st.sampled_from(_NASTY), st.binary(max_size=20)), max_size=40).map(
        b"".join),
)


def _loads(value: bytes) -> dict[str, Any]:
    """A record of one line (valid on the wire) as a v1-style dict."""
    return decode(value).to_dict()


def _valid(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_records(data: bytes, start: int, stop: int, recs: list[dict[str, Any]],
                  max_line: int) -> None:
    """``recs`` tile ``data[start:stop]`` (``data`` is the whole file) and each one's line is
    its own bytes, within the documented losses."""
    assert recs, "every byte read is in some record"
    offs = [r["off"] for r in recs]
    assert offs[0] == start
    assert offs == sorted(set(offs)), "offsets strictly increase"
    for i, rec in enumerate(recs):
        span = data[offs[i] : offs[i + 1] if i + 1 < len(recs) else stop]
        # A record is one line (or piece of a line) and the newline ending it, if any.
        content = span[:-1] if span.endswith(b"\n") else span
        assert b"\n" not in content
        assert len(content) <= max_line
        flags = rec.get("flags", [])
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            assert rec["line"] == content.decode("utf-8", errors="replace")
            assert FLAG_INVALID_UTF8 in flags
        else:
            assert rec["line"] == text
            assert FLAG_INVALID_UTF8 not in flags
        assert set(flags) <= {FLAG_INVALID_UTF8, FLAG_SPLIT}


def rebuild(recs: list[dict[str, Any]], stop: int) -> bytes:
    """The file rebuilt from its records alone: a newline wherever the next record's offset
    leaves a byte after a record's line."""
    out = []
    for i, rec in enumerate(recs):
        line = rec["line"].encode()
        out.append(line)
        nxt = recs[i + 1]["off"] if i + 1 < len(recs) else stop
        if nxt - rec["off"] > len(line):
            out.append(b"\n")
    return b"".join(out)


def line_length_at(data: bytes, off: int) -> int:
    """The length of the whole line holding byte ``off`` (without its newline)."""
    begin = data.rfind(b"\n", 0, off) + 1
    end = data.find(b"\n", off)
    return (len(data) if end < 0 else end) - begin


# --- frame_lines ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(file_bytes, st.integers(0, 2**40), st.integers(1, 48))
@example(b"a" * 8, 0, 4)  # a line of exactly k * max_line_bytes
@example("é".encode() * 3, 0, 3)  # a cut inside a character
@example(b"\n\n\n", 7, 1)
def test_frame_lines_tiles_the_body_with_exact_offsets(body: bytes, start: int,
                                                       max_line: int) -> None:
    out = list(framed(frame_lines, start, body, max_line))
    recs = [_loads(v) for v, _ in out]
    local = [{**r, "off": r["off"] - start} for r in recs]  # offsets within the body
    check_records(body + b"\n", 0, len(body) + 1, local, max_line)
    # Each record's end is the next one's offset; the last one ends past the final newline.
    ends = [end for _, end in out]
    assert ends == [r["off"] for r in recs[1:]] + [start + len(body) + 1]
    for rec in local:  # split flags exactly the pieces of over-long lines
        split = FLAG_SPLIT in rec.get("flags", [])
        assert split == (line_length_at(body, rec["off"]) > max_line)
    if not any(FLAG_INVALID_UTF8 in r.get("flags", []) for r in recs):
        assert rebuild(recs, start + len(body) + 1) == body + b"\n"
    else:  # valid text is lost only where a character is longer than a whole piece
        assert not _valid(body) or max_line < 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=30).filter(lambda b: b"\n" not in b), min_size=1,
                max_size=25),
       st.lists(st.booleans(), max_size=25), st.integers(1, 40), st.integers(0, 10**6))
def test_frame_lines_is_the_same_however_the_lines_are_chunked(
        lines: list[bytes], cuts: list[bool], max_line: int, start: int) -> None:
    whole = list(framed(frame_lines, start, b"\n".join(lines), max_line))
    pieces: list[tuple[bytes, int]] = []
    chunk: list[bytes] = []
    off = start
    for i, line in enumerate(lines):
        chunk.append(line)
        if i == len(lines) - 1 or (i < len(cuts) and cuts[i]):
            body = b"\n".join(chunk)
            pieces.extend(framed(frame_lines, off, body, max_line))
            off += len(body) + 1
            chunk = []
    assert pieces == whole


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 10**9), st.sampled_from([None, FLAG_SPLIT]))
def test_add_bytes_keeps_valid_text_and_flags_the_rest(raw: bytes, off: int,
                                                          extra: str | None) -> None:
    out = Lines()
    add_bytes(out, "t", off, raw, off + len(raw) + 1, (extra,) if extra else ())
    [(value, commit)] = per_line(out)
    rec = _loads(value)
    assert commit == off + len(raw) + 1
    assert rec["off"] == off
    assert rec["line"] == raw.decode("utf-8", errors="replace")
    expected = ([extra] if extra else []) + ([] if _valid(raw) else [FLAG_INVALID_UTF8])
    assert rec.get("flags", []) == expected


@pytest.mark.parametrize("body", [
    b"x" * 300_000,  # one very long line cut in many pieces
    b"\n" * 30_000,  # many empty lines
    b"\xff" * 100_000,  # all invalid
    ("é" * 100_000).encode() + b"\n" + b"a\r\n" * 30_000,
    b"\x00 \x00\n" * 20_000,
])
def test_big_bodies_complete_and_tile(body: bytes) -> None:
    out = list(framed(frame_lines, 0, body, 1000))
    recs = [orjson.loads(v) for v, _ in out]
    assert [r["off"] for r in recs[1:]] == [end for _, end in out[:-1]]
    assert out[-1][1] == len(body) + 1


# --- the tailer's chunks into PlainPipeline -------------------------------------------------


@contextmanager
def tailer_for(data: bytes, start: int = 0) -> Iterator[FileTailer]:
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        yield FileTailer("/fuzz.log", f.fileno(), FileIdentity(0, 0, "fp", 0), start)


def read_file(data: bytes, read_bytes: int, max_line: int,
              multiline: MultilineRules | None = None, start: int = 0
              ) -> list[tuple[dict[str, Any], int]]:
    """Every record the agent sends for ``data`` from ``start``: chunks as the tailer cuts
    them, then the tail of a last line without its newline, then whatever the pipeline still
    holds."""
    pipe = PlainPipeline("h", "/fuzz.log", "1:2:3", max_line, multiline, start)
    pipe.record_max_bytes = 0  # one line per record: each with its own commit
    out: list[tuple[bytes, int]] = []
    with tailer_for(data, start) as tailer:
        while (chunk := tailer.read_chunk(read_bytes, max_line)) is not None:
            out.extend(pipe.process(chunk, 0.0))
        tail = tailer.read_tail()
        if tail is not None:
            out.extend(pipe.process(tail, 0.0))
        assert tailer.read_offset == len(data)
    out.extend(pipe.drain())
    return [(_loads(value), commit) for value, commit in out]


@settings(max_examples=300, deadline=None)
@given(file_bytes, st.integers(1, 64), st.integers(1, 24))
@example(b"aaaa\nb\n", 4, 4)
@example(b"aaaaaa\nb\n", 4, 4)
def test_any_chunking_loses_no_byte(data: bytes, read_bytes: int, max_line: int) -> None:
    out = read_file(data, read_bytes, max_line)
    if not data:
        assert out == []
        return
    recs = [rec for rec, _ in out]
    check_records(data, 0, len(data), recs, max_line)
    commits = [c for _, c in out]
    assert commits == sorted(commits) and commits[-1] == len(data)
    if not any(FLAG_INVALID_UTF8 in r.get("flags", []) for r in recs):
        assert rebuild(recs, len(data)) == data
    else:  # valid text is lost only where a character is longer than a whole piece
        assert not _valid(data) or max_line < 4


short_lines = st.lists(
    st.one_of(st.binary(max_size=12), st.lists(st.sampled_from(_NASTY), max_size=4).map(
        b"".join)).map(lambda b: b.replace(b"\n", b"")[:12]),
    min_size=1, max_size=30)


def _without_read_time(out: list[tuple[dict[str, Any], int]]) -> list[tuple[dict[str, Any], int]]:
    return [({k: v for k, v in rec.items() if k != "ts"}, commit) for rec, commit in out]


@settings(max_examples=200, deadline=None)
@given(short_lines, st.booleans(), st.integers(1, 40), st.integers(1, 40),
       st.sampled_from([None, MultilineRules(max_lines=4, max_bytes=40)]))
def test_lines_under_the_limit_come_out_the_same_however_they_are_read(
        lines: list[bytes], final_newline: bool, read_a: int, read_b: int,
        multiline: MultilineRules | None) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    max_line = 13  # longer than every line: no read ever has to cut one (the last one aside)
    a = read_file(data, read_a, max_line, multiline)
    b = read_file(data, read_b, max_line, multiline)
    assert _without_read_time(a) == _without_read_time(b)
    if not data:
        return
    recs = [rec for rec, _ in a]
    if multiline is None:
        check_records(data, 0, len(data), recs, max_line)
    # Multi-line events are their lines joined with "\n": the file is rebuilt all the same.
    offs = [r["off"] for r in recs]
    assert offs[0] == 0 and offs == sorted(set(offs))
    for i, rec in enumerate(recs):
        span = data[offs[i] : offs[i + 1] if i + 1 < len(recs) else len(data)]
        content = span[:-1] if span.endswith(b"\n") else span
        assert rec["line"] == content.decode("utf-8", errors="replace")
        assert (FLAG_INVALID_UTF8 in rec.get("flags", [])) == (not _valid(content))


# --- long lines: the same pieces however reads cut the file, and no text lost ----------------

# Valid UTF-8 with characters of every length, so that cuts often fall inside one.
text_bytes = st.lists(st.sampled_from(["a", " ", "\n", "\t", "é", "€", "😀", "ab" * 5, "é€😀"]),
                      max_size=60).map(lambda parts: "".join(parts).encode())
multiline_rules = st.sampled_from([None, MultilineRules(max_lines=4, max_bytes=40),
                                   MultilineRules(mode="start_pattern",
                                                  start_pattern=re.compile(b"[a-z]"))])


def _same_records(a: list[tuple[dict[str, Any], int]],
                  b: list[tuple[dict[str, Any], int]]) -> None:
    assert _without_read_time(a) == _without_read_time(b)


@settings(max_examples=300, deadline=None)
@given(st.one_of(file_bytes, text_bytes), st.integers(1, 64), st.integers(1, 64),
       st.integers(1, 24), multiline_rules)
@example(b"aaaa\nb\n", 4, 100, 4, None)
@example(b"aaaaaa\nb\n", 4, 100, 4, None)
@example(b"aaaa aa\nb\n", 4, 100, 4, MultilineRules())
def test_records_do_not_depend_on_how_reads_cut_the_file(
        data: bytes, read_a: int, read_b: int, max_line: int,
        multiline: MultilineRules | None) -> None:
    a = read_file(data, read_a, max_line, multiline)
    # The C split (when built) for one reading, the pure-Python one for the other.
    with patch("agent.stages.framing.split_lines", split_lines_py):
        _same_records(a, read_file(data, read_b, max_line, multiline))
    if not data:
        return
    # Whatever multi-line joins, each record is its own bytes of the file: a newline inside
    # an event is one the file has, and the pieces of a split line are never joined.
    recs = [rec for rec, _ in a]
    offs = [r["off"] for r in recs]
    assert offs[0] == 0 and offs == sorted(set(offs))
    for i, rec in enumerate(recs):
        span = data[offs[i] : offs[i + 1] if i + 1 < len(recs) else len(data)]
        content = span[:-1] if span.endswith(b"\n") else span
        assert rec["line"] == content.decode("utf-8", errors="replace")
        if FLAG_SPLIT in rec.get("flags", []) and i + 1 < len(recs):
            assert b"\n" not in content
    split = {r["off"] for r in recs if FLAG_SPLIT in r.get("flags", [])}
    tail = data.rfind(b"\n") + 1  # a last line without its newline goes out flagged split
    for off in offs:
        if off < tail:
            assert (off in split) == (line_length_at(data, off) > max_line)


@settings(max_examples=300, deadline=None)
@given(text_bytes, st.integers(1, 64), st.integers(4, 24))
@example("éé\n".encode(), 4, 4)
@example("aé€😀\n".encode(), 3, 4)
def test_valid_text_stays_valid_in_every_piece(data: bytes, read_bytes: int,
                                               max_line: int) -> None:
    out = read_file(data, read_bytes, max_line)
    recs = [rec for rec, _ in out]
    assert not any(FLAG_INVALID_UTF8 in r.get("flags", []) for r in recs)
    assert rebuild(recs, len(data)) == data
    for rec, nxt in pairwise(recs):
        if b"\n" not in data[rec["off"] : nxt["off"]]:
            # Cut inside a line: as long as a piece may be, less a character moved on whole.
            assert max_line - 3 <= len(rec["line"].encode()) <= max_line


@settings(max_examples=200, deadline=None)
@given(st.one_of(file_bytes, text_bytes), st.integers(1, 64), st.integers(1, 24),
       multiline_rules, st.data())
def test_resuming_at_any_commit_sends_the_same_records(
        data: bytes, read_bytes: int, max_line: int, multiline: MultilineRules | None,
        draw: st.DataObject) -> None:
    whole = read_file(data, read_bytes, max_line, multiline)
    commits = sorted({c for _, c in whole} - {len(data)})
    if not commits:
        return
    # A restart from a checkpoint, which may fall between the pieces of a split line: the
    # rest of that line is still flagged split (the tailer looks at the byte before).
    cut = draw.draw(st.sampled_from(commits))
    again = read_file(data, read_bytes, max_line, multiline, start=cut)
    _same_records([(r, c) for r, c in whole if r["off"] >= cut], again)


@pytest.mark.parametrize("read_bytes", [4, 5, 100])
def test_a_rewind_between_pieces_flags_the_rest_split(read_bytes: int) -> None:
    with tailer_for(b"aaaaaa\nb\n") as tailer:
        tailer.pipeline = PlainPipeline("h", "/fuzz.log", "1:2:3", 4, None, 0)
        tailer.pipeline.record_max_bytes = 0
        first = tailer.read_chunk(read_bytes, 4)
        assert first is not None and first.forced and first.end == 4
        tailer.acked_offset = 4  # that piece was acknowledged, then a later batch failed
        tailer.read_chunk(read_bytes, 4)
        tailer.rewind()  # back between the pieces: the tailer looks at the byte before
        chunk = tailer.read_chunk(read_bytes, 4)
        assert chunk is not None and chunk.continued and chunk.start == 4
        out = [_loads(v) for v, _ in tailer.pipeline.process(chunk, 0.0)]
        assert [(r["off"], r["line"], r.get("flags", [])) for r in out] == [
            (4, "aa", [FLAG_SPLIT]), (7, "b", [])]



@pytest.mark.parametrize("read_bytes", [4, 5, 100])
def test_a_line_of_exactly_max_line_bytes_is_one_record(read_bytes: int) -> None:
    out = read_file(b"aaaa\nb\n", read_bytes, 4)
    assert [(r["off"], r["line"], r.get("flags", [])) for r, _ in out] == [
        (0, "aaaa", []), (5, "b", [])]


@pytest.mark.parametrize("read_bytes", [1, 4, 5, 6, 7, 100])
def test_every_piece_of_a_long_line_is_flagged_split(read_bytes: int) -> None:
    out = read_file(b"aaaaaa\nb\n", read_bytes, 4)
    assert [(r["off"], r["line"], r.get("flags", [])) for r, _ in out] == [
        (0, "aaaa", [FLAG_SPLIT]), (4, "aa", [FLAG_SPLIT]), (7, "b", [])]


@pytest.mark.parametrize("read_bytes", [4, 100])
def test_multiline_does_not_add_newlines_inside_a_split_line(read_bytes: int) -> None:
    out = read_file(b"aaaa aa\n", read_bytes, 4, MultilineRules())
    assert "\n" not in out[0][0]["line"]  # the file has "aaaa aa" on one line
    assert [(r["off"], r["line"], r.get("flags", [])) for r, _ in out] == [
        (0, "aaaa", [FLAG_SPLIT]), (4, " aa", [FLAG_SPLIT])]


def test_splitting_never_cuts_a_character() -> None:
    body = "éé".encode()
    recs = [orjson.loads(v) for v, _ in framed(frame_lines, 0, body, 3)]
    assert "".join(r["line"] for r in recs) == "éé"
    assert [r["flags"] for r in recs] == [[FLAG_SPLIT], [FLAG_SPLIT]]

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.stages.cri import (
    CriLine,
    parse_cri,
    scan_chunk,
    scan_chunk_py,
    sniff_format,
)
from agent.stages.framing import split_lines, split_lines_py
from agent.stages.native import COMPILED

TS = "2016-10-06T00:17:09.669794202Z"


def test_full_line() -> None:
    assert parse_cri(f"{TS} stdout F hello world".encode()) == CriLine(
        TS, "stdout", False, b"hello world")


def test_partial_piece_on_stderr() -> None:
    assert parse_cri(f"{TS} stderr P part".encode()) == CriLine(TS, "stderr", True, b"part")


def test_message_keeps_its_spaces_and_bytes() -> None:
    line = f"{TS} stdout F ".encode() + b"  two  spaces \xff\x00 "
    parsed = parse_cri(line)
    assert parsed is not None
    assert parsed.message == b"  two  spaces \xff\x00 "


@pytest.mark.parametrize("line", [f"{TS} stdout F ", f"{TS} stdout F"])
def test_empty_or_missing_message(line: str) -> None:
    assert parse_cri(line.encode()) == CriLine(TS, "stdout", False, b"")


def test_forward_compatible_tags() -> None:
    parsed = parse_cri(f"{TS} stdout P:future x".encode())
    assert parsed is not None and parsed.partial and parsed.message == b"x"


@pytest.mark.parametrize("ts", [
    "2016-10-06T00:17:09Z",
    "2016-10-06T00:17:09.6Z",
    "2016-10-06T00:17:09.669794202Z",
    "2016-10-06T02:17:09.669794202+02:00",
    "2016-10-05T19:17:09.5-05:00",
])
def test_timestamp_shapes_accepted(ts: str) -> None:
    parsed = parse_cri(f"{ts} stdout F x".encode())
    assert parsed is not None and parsed.ts == ts


@pytest.mark.parametrize("line", [
    b"",
    b"hello world",
    b"2016-10-06T00:17:09Z stdout",  # no tag
    b"2016-10-06T00:17:09Z stdin F x",  # unknown stream
    b"2016-10-06T00:17:09Z stdout X x",  # unknown tag
    b"2016-10-06T00:17:09Z  stdout F x",  # double space
    b"2016-10-06 00:17:09Z stdout F x",  # space inside the timestamp
    b"2016-10-06T00:17:09 stdout F x",  # no zone
    b"2016-10-06T00:17:09.Z stdout F x",  # empty fraction
    b"2016-10-06T00:17:09.1234567890Z stdout F x",  # 10 fraction digits
    b"2016-10-06T00:17:09+0200 stdout F x",  # zone without colon
    b"2016-1-06T00:17:09Z stdout F x",
    b"2016-10-06t00:17:09z stdout F x",
    b"\xff016-10-06T00:17:09Z stdout F x",
    b"{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09Z\"}",
])
def test_malformed_lines(line: bytes) -> None:
    assert parse_cri(line) is None


def test_sniff_format() -> None:
    assert sniff_format(f"{TS} stdout F x".encode()) == "cri"
    assert sniff_format(b'{"log":"x\\n","stream":"stdout","time":"t"}') == "docker"
    assert sniff_format(b"plain text") is None
    assert sniff_format(b"") is None


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=200))
def test_never_raises_on_arbitrary_bytes(line: bytes) -> None:
    parsed = parse_cri(line)
    assert parsed is None or isinstance(parsed, CriLine)


_ts = st.builds(
    lambda y, mo, d, h, mi, s, frac, zone: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
                                           f"{frac}{zone}",
    st.integers(0, 9999), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
    st.integers(0, 59), st.integers(0, 59),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)),
    st.sampled_from(["Z", "+00:00", "-05:30", "+14:00"]),
)


@settings(deadline=None, max_examples=100)
@given(_ts, st.sampled_from(["stdout", "stderr"]), st.booleans(),
       st.binary(max_size=100).filter(lambda b: b"\n" not in b))
def test_round_trip(ts: str, stream: str, partial: bool, message: bytes) -> None:
    line = f"{ts} {stream} {'P' if partial else 'F'} ".encode() + message
    assert parse_cri(line) == CriLine(ts, stream, partial, message)


# --- scan_chunk: a whole chunk at once, in C when built ------------------------------------

def test_the_c_scan_is_built_where_a_compiler_is(c_compiler: str) -> None:
    # setup.py builds it as optional: a broken build would fall back silently and slowly.
    assert COMPILED
    assert scan_chunk is not scan_chunk_py and split_lines is not split_lines_py


def test_scan_of_a_chunk() -> None:
    body = (f"{TS} stdout F one\n"
            f"{TS} stderr P pie\n"
            f"2016-10-06T02:17:09+02:00 stderr F ce é\n"
            f"{TS} stdout F ").encode()
    offsets = [100, 144, 188, 229, 100 + len(body) + 1]  # 44, 44 and 41 bytes a line
    expected = (offsets, [TS, TS, "2016-10-06T02:17:09+02:00", TS],
                ["stdout", "stderr", "stderr", "stdout"], ["one", "pie", "ce é", ""], [1])
    assert scan_chunk_py(body, 100) == expected
    assert scan_chunk(body, 100) == expected


@pytest.mark.parametrize("bad", [
    b"", b"hello world", f"{TS} stdout F".encode(), f"{TS} stdout P:x y".encode(),
    f"{TS} stdout F \xff".encode("latin-1"), b"2016-10-06T00:17:09.1234567890Z stdout F x",
    b"2016-10-06T00:17:09.Z stdout F x", b"2016-10-06T00:17:09+0200 stdout F x",
    b"\xef\xbc\x92016-10-06T00:17:09Z stdout F x", f"{TS} stdout F x\xed\xa0\x80".encode(
        "latin-1"),
])
def test_scan_gives_up_on_a_chunk_with_any_other_line(bad: bytes) -> None:
    good = f"{TS} stdout F fine".encode()
    for body in (bad, good + b"\n" + bad, bad + b"\n" + good, good + b"\n" + bad + b"\n" + good):
        assert scan_chunk_py(body, 0) is None
        assert scan_chunk(body, 0) is None


# Timestamps near the accepted shapes: 0-11 fraction digits, zones with and without a colon.
_near_ts = st.builds(
    lambda date, sep, time, digits, zone: f"{date}{sep}{time}{'.' if digits >= 0 else ''}"
                                          f"{'7' * max(digits, 0)}{zone}",
    # A non-ASCII digit (FULLWIDTH TWO): a str regex \d would take it, [0-9] does not.
    st.sampled_from(["2016-10-06", "2016-1-06", "\uff12016-10-06"]), st.sampled_from("TTt "),
    st.sampled_from(["00:17:09", "00:17:9", "00:17"]), st.integers(-1, 11),
    st.sampled_from(["Z", "z", "+02:00", "-05:30", "+0200", "+02_00", "+02", "+2:00", "-05:3",
                     ""]))
_scan_lines = st.one_of(
    st.tuples(st.one_of(_ts, _near_ts), st.sampled_from(["stdout", "stderr", "stdin"]),
              st.sampled_from(["F", "P", "P:x", "f", ""]), st.sampled_from([" ", "", "  "]),
              st.one_of(st.text(max_size=30), st.binary(max_size=30)))
    .map(lambda t: f"{t[0]} {t[1]} {t[2]}{t[3]}".encode()
         + (t[4] if isinstance(t[4], bytes) else t[4].encode("utf-8", "surrogatepass"))),
    st.tuples(st.one_of(_ts, _near_ts), st.sampled_from(["stdout", "stderr"]),
              st.sampled_from(["F", "P"]), st.text(max_size=40))
    .map(lambda t: f"{t[0]} {t[1]} {t[2]} {t[3]}".encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
).map(lambda line: line.replace(b"\n", b" "))


@settings(deadline=None, max_examples=1000)
@given(_scan_lines, st.integers(0, 1 << 40))
def test_the_c_scan_reads_each_line_as_the_regex_does(line: bytes, start: int) -> None:
    assert scan_chunk(line, start) == scan_chunk_py(line, start)


# Mostly lines that scan, so that whole chunks do; few timestamps, so that neighbours share.
_chunk_lines = st.one_of(
    st.tuples(st.sampled_from([TS, "2016-10-06T00:17:09Z", "2016-10-06T00:17:09.5+01:00"]),
              st.sampled_from(["stdout", "stderr"]), st.sampled_from(["F", "F", "P"]),
              st.text(max_size=20))
    .map(lambda t: f"{t[0]} {t[1]} {t[2]} {t[3]}".encode("utf-8", "surrogatepass")
         .replace(b"\n", b" ")),
    _scan_lines,
)


@settings(deadline=None, max_examples=300)
@given(st.lists(_chunk_lines, min_size=1, max_size=12), st.integers(0, 1 << 40))
def test_the_c_scan_reads_each_chunk_as_the_regex_does(lines: list[bytes], start: int) -> None:
    body = b"\n".join(lines)
    assert scan_chunk(body, start) == scan_chunk_py(body, start)

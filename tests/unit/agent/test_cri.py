from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.stages.cri import CriLine, parse_cri, sniff_format

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

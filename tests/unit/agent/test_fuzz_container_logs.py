"""Fuzzing container log reading: CRI and docker json-file lines, partial pieces, and
:class:`ContainerPipeline` over whole files read in arbitrary chunks.

The promise checked here: no input makes a parser raise; a line that parses keeps its message
bytes exactly; a line that does not parse goes out raw (flagged ``parse_error``); the pieces of
a long line join back in file order, each record at its first piece's byte offset; and what
comes out does not depend on how reads cut the file.
"""

from __future__ import annotations

import re
import tempfile
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.sources.identity import FileIdentity
from agent.sources.tailer import FileTailer
from agent.stages.cri import (
    CriLine,
    parse_cri,
    scan_chunk_py,
    sniff_format,
    timestamp_is_valid,
)
from agent.stages.docker_json import parse_docker_json
from agent.stages.framing import FLAG_INVALID_UTF8, FLAG_SPLIT, piece_end
from agent.stages.multiline import MultilineRules
from agent.stages.partials import FLAG_UNTERMINATED, PartialJoiner
from agent.stages.pipeline import FLAG_PARSE_ERROR, ContainerPipeline
from logferry.wire import decode

_NASTY = [b"\x00", b"\r", b"\xff", b"\xc3", b"\xc3\xa9", b"\xed\xa0\x80", b"\xef\xbb\xbf",
          b"\\", b'"', b"\t", b" ", b"  ", b"{", b"}", b"[", b"a", b"P", b"F", b"stdout", b"x" * 30]
message_bytes = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from(_NASTY), max_size=8).map(b"".join),
).map(lambda b: b.replace(b"\n", b""))

# --- CRI ------------------------------------------------------------------------------------

good_ts = st.sampled_from([
    "2026-11-25T10:15:00Z", "2026-11-25T10:15:00.1Z", "2026-11-25T10:15:00.123456789Z",
    "2026-11-25T10:15:00.5+02:00", "2026-11-25T10:15:00-07:00",
    "9999-99-99T99:99:99Z",  # the right shape, not a date: accepted as written
])
bad_ts = st.sampled_from([
    "", "2026-11-25", "2026-11-25 10:15:00Z", "2026-11-25T10:15:00.1234567890Z",
    "2026-11-25T10:15:00+0200", "2026-11-25t10:15:00z", "\uff12\uff10\uff12\uff16-11-25T10:15:00Z",
    "2026-11-25T10:15:00\x00Z", "2026-11-25T10:15:00",
])
cri_fields = st.tuples(
    st.one_of(good_ts, bad_ts),
    st.sampled_from(["stdout", "stderr", "stdin", "", "STDOUT", "stdout\x00"]),
    st.sampled_from(["F", "P", "P:x", "F:", "F:P", "X", "", "PF", "p", ":P"]),
    st.sampled_from([" ", "", "  "]),
    message_bytes,
)


def cri_line(fields: tuple[str, str, str, str, bytes]) -> bytes:
    ts, stream, tag, sep, message = fields
    return f"{ts} {stream} {tag}{sep}".encode() + message


@settings(max_examples=300, deadline=None)
@given(st.one_of(cri_fields.map(cri_line), message_bytes, st.binary(max_size=120)))
@example(b"2026-11-25T10:15:00Z stdout P")  # P without a message
@example(b"2026-11-25T10:15:00Z stdout")  # no tag
@example(b"2026-11-25T10:15:00Z  stdout F x")  # two spaces
def test_cri_never_raises_and_keeps_the_message_bytes(line: bytes) -> None:
    parsed = parse_cri(line)
    if parsed is None:
        return
    assert isinstance(parsed, CriLine)
    assert parsed.stream in ("stdout", "stderr")
    assert timestamp_is_valid(parsed.ts.encode())
    head = f"{parsed.ts} {parsed.stream} ".encode()
    assert line.startswith(head)
    tag, sep, message = line[len(head):].partition(b" ")
    # The line is its fields: nothing but the tag's forward-compatible suffix is dropped.
    assert message == parsed.message
    assert tag.split(b":", 1)[0] == (b"P" if parsed.partial else b"F")
    assert sep or not message
    assert sniff_format(line) == ("docker" if line[:1] == b"{" else "cri")


def test_cri_huge_line_completes() -> None:
    message = b"\xff \x00" * 300_000
    parsed = parse_cri(b"2026-11-25T10:15:00Z stderr F " + message)
    assert parsed is not None and parsed.message == message


# --- docker json-file -------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                | st.floats(allow_nan=False)
                | st.text(max_size=20))
docker_objects = st.dictionaries(
    st.sampled_from(["log", "stream", "time", "attrs", "Log"]),
    st.one_of(st.text(max_size=30), st.sampled_from(["stdout", "stderr", "x\n", "\n", ""]),
              json_scalars, st.lists(json_scalars, max_size=2)),
).map(orjson.dumps)

DEEP = 10_000
docker_edge_cases = [
    b"[" * DEEP + b"]" * DEEP,
    b"{" * DEEP,
    b'{"log":' + b"[" * DEEP + b"]" * DEEP + b',"stream":"stdout","time":"t"}',
    b'{"log":"a\\n","stream":"stdout","time":"t","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
    b'{"log":"a\\n","stream":"stdout","time":"t","n":' + b"9" * 5000 + b"}",
    b'{"log":"a\\n","stream":"stdout","time":"t","n":1e400}',
    b'{"log":"a\\n","log":"b","stream":"stdout","time":"t"}',  # duplicate key: last wins
    b'{"log":"\\ud800\\n","stream":"stdout","time":"t"}',  # lone surrogate
    b'{"log":"\\u0000\\r\\n","stream":"stdout","time":"t"}',
    b'{"log":"raw \x00 NUL\\n","stream":"stdout","time":"t"}',  # control char: not JSON
    b'{"log":"\xff\\n","stream":"stdout","time":"t"}',  # invalid UTF-8
    b'\xef\xbb\xbf{"log":"a\\n","stream":"stdout","time":"t"}',  # BOM
    b' {"log":"a\\n","stream":"stdout","time":"t"} ',
    b'{"log":"a\\n","stream":"stdout","time":"t"}{}',  # trailing data
    b'{"log":["a\\n"],"stream":"stdout","time":"t"}',
    b'{"log":"a\\n","stream":1,"time":"t"}',
    b'{"log":"a\\n","stream":"stdout","time":null}',
    b'["log","a\\n"]', b'"log"', b"1", b"null", b"", b"{}",
]


def _check_docker(line: bytes) -> None:
    parsed = parse_docker_json(line)
    if parsed is None:
        return
    obj = orjson.loads(line)
    assert isinstance(obj, dict)
    # The message is the "log" string exactly, less only the newline that ends a whole line.
    assert obj["log"] == parsed.message + ("" if parsed.partial else "\n")
    assert obj["stream"] == parsed.stream and obj["time"] == parsed.ts


@settings(max_examples=200, deadline=None)
@given(st.one_of(docker_objects, st.binary(max_size=100),
                 docker_objects.map(lambda b: b[: len(b) // 2])))
def test_docker_never_raises_and_keeps_the_log_text(line: bytes) -> None:
    _check_docker(line)


@pytest.mark.parametrize("line", docker_edge_cases)
def test_docker_edge_cases(line: bytes) -> None:
    _check_docker(line)
    if line.startswith(b'{"log":"a\\n","log":"b"'):
        parsed = parse_docker_json(line)
        assert parsed is not None and (parsed.message, parsed.partial) == ("b", True)


# --- ContainerPipeline: whole files, read in arbitrary chunks -------------------------------


def _text(raw: bytes, flags: list[str]) -> tuple[str, list[str]]:
    try:
        return raw.decode("utf-8"), flags
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), [*flags, FLAG_INVALID_UTF8]


Expected = tuple[int, str, str | None, list[str], str | None]  # off, line, stream, flags, ts


def model(data: bytes, fmt: str) -> list[Expected]:
    """What the agent must send for ``data`` (complete lines), pieces joined per stream, then
    what is still pending when the file is finished. Written from the documented behaviour,
    not from the pipeline's code."""
    if fmt == "auto":
        fmt = sniff_format(data.split(b"\n", 1)[0]) or "cri"
    out: list[Expected] = []
    pending: dict[str, tuple[int, str, list[bytes]]] = {}
    off = 0
    for raw in data.split(b"\n")[:-1]:
        parsed: tuple[str, str, bool, bytes] | None
        if fmt == "docker":
            d = parse_docker_json(raw)
            parsed = None if d is None else (d.ts, d.stream, d.partial, d.message.encode())
        else:
            c = parse_cri(raw)
            parsed = None if c is None else (c.ts, c.stream, c.partial, c.message)
        if parsed is None:
            line, flags = _text(raw, [FLAG_PARSE_ERROR])
            out.append((off, line, None, flags, None))
        else:
            ts, stream, partial, message = parsed
            first, first_ts, pieces = pending.pop(stream, (off, ts, []))
            pieces.append(message)
            if partial:
                pending[stream] = (first, first_ts, pieces)
            else:
                line, flags = _text(b"".join(pieces), [])
                out.append((first, line, stream, flags, first_ts))
        off += len(raw) + 1
    for stream, (first, ts, pieces) in sorted(pending.items(), key=lambda kv: kv[1][0]):
        line, flags = _text(b"".join(pieces), [FLAG_UNTERMINATED])
        out.append((first, line, stream, flags, ts))
    return out


def read_container_file(data: bytes, fmt: str, read_bytes: int, max_line: int,
                        partial_max: int = 1 << 20, multiline: MultilineRules | None = None
                        ) -> list[tuple[dict[str, Any], int]]:
    pipe = ContainerPipeline("h", "/c.log", "1:2:3", {"namespace": "ns"}, fmt, partial_max,
                             5.0, multiline, 0)
    pipe.record_max_bytes = 0  # one line per record: each with its own commit
    out: list[tuple[bytes, int]] = []
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        tailer = FileTailer("/c.log", f.fileno(), FileIdentity(0, 0, "fp", 0), 0)
        while (chunk := tailer.read_chunk(read_bytes, max_line)) is not None:
            out.extend(pipe.process(chunk, 0.0))
        tail = tailer.read_tail()
        if tail is not None:
            out.extend(pipe.process(tail, 0.0))
    out.extend(pipe.drain())
    recs = []
    for value, commit in out:
        recs.append((decode(value).to_dict(), commit))  # valid on the wire, one line
    return recs


def comparable(recs: list[tuple[dict[str, Any], int]]) -> list[Expected]:
    return [(r["off"], r["line"], r.get("stream"), r.get("flags", []),
             None if FLAG_PARSE_ERROR in r.get("flags", []) else r["ts"]) for r, _ in recs]


cri_files = st.lists(
    st.one_of(
        st.tuples(good_ts, st.sampled_from(["stdout", "stderr"]),
                  st.sampled_from(["F", "P", "P", "P:x"]), st.just(" "), message_bytes),
        cri_fields,
    ).map(cri_line) | message_bytes,
    max_size=25)

docker_lines = st.one_of(
    st.builds(lambda log, stream, ts: orjson.dumps({"log": log, "stream": stream, "time": ts}),
              st.one_of(st.text(max_size=20), st.text(max_size=20).map(lambda t: t + "\n")),
              st.sampled_from(["stdout", "stderr"]),
              st.sampled_from(["2026-11-25T10:15:00.1Z", "t", ""])),
    docker_objects, message_bytes,
)
docker_files = st.lists(docker_lines, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.one_of(cri_files.map(lambda ls: ("cri", ls)),
                 docker_files.map(lambda ls: ("docker", ls)),
                 st.one_of(cri_files, docker_files).map(lambda ls: ("auto", ls))),
       st.integers(1, 200), st.integers(1, 200))
def test_container_files_join_as_documented_however_they_are_read(
        case: tuple[str, list[bytes]], read_a: int, read_b: int) -> None:
    fmt, lines = case
    data = b"".join(line + b"\n" for line in lines)
    # Longer than every line: reads cut the file only between lines (the forced pieces of
    # longer lines are the next test's business).
    max_line = max((len(line) for line in lines), default=0) + 1
    a = read_container_file(data, fmt, read_a, max_line)
    # The C chunk scan (when built) for one reading, the pure-Python one for the other.
    with patch("agent.stages.pipeline.scan_chunk", scan_chunk_py):
        b = read_container_file(data, fmt, read_b, max_line)
    expected = model(data, fmt)
    assert comparable(a) == expected
    assert comparable(b) == expected
    commits = [c for _, c in a]
    assert commits == sorted(commits)
    assert not commits or commits[-1] == len(data)
    for rec, _ in a:
        assert rec["k8s"] == {"namespace": "ns"}


@settings(max_examples=100, deadline=None)
@given(st.one_of(cri_files.map(lambda ls: ("cri", ls)),
                 docker_files.map(lambda ls: ("docker", ls))),
       st.integers(1, 200), st.sampled_from([MultilineRules(max_lines=3, max_bytes=60),
                                             MultilineRules(mode="start_pattern",
                                                            start_pattern=re.compile(b"[a-z]"))]))
def test_multiline_events_keep_every_line_of_their_stream(
        case: tuple[str, list[bytes]], read_bytes: int, rules: MultilineRules) -> None:
    fmt, lines = case
    data = b"".join(line + b"\n" for line in lines)
    max_line = max((len(line) for line in lines), default=0) + 1
    recs = read_container_file(data, fmt, read_bytes, max_line, multiline=rules)
    expected = model(data, fmt)
    # Events join the records of one stream with "\n" and never mix streams; raw lines that
    # did not parse pass on their own.
    for stream in ("stdout", "stderr", None):
        got = [r["line"] for r, _ in recs if r.get("stream") == stream]
        want = [line for _, line, s, _, _ in expected if s == stream]
        if stream is None:
            assert got == want
        else:
            assert "\n".join(got) == "\n".join(want)
    assert {r["off"] for r, _ in recs} <= {off for off, *_ in expected}
    commits = [c for _, c in recs]
    assert commits == sorted(commits)


@settings(max_examples=150, deadline=None)
@given(st.one_of(cri_files, docker_files), st.sampled_from(["cri", "docker", "auto"]),
       st.binary(max_size=30), st.integers(1, 64), st.integers(1, 32), st.integers(1, 64))
def test_container_files_never_break_on_long_lines_or_a_tail(
        lines: list[bytes], fmt: str, tail: bytes, read_bytes: int, max_line: int,
        partial_max: int) -> None:
    data = b"".join(line + b"\n" for line in lines) + tail.replace(b"\n", b"")
    recs = read_container_file(data, fmt, read_bytes, max_line, partial_max)
    commits = [c for _, c in recs]
    assert commits == sorted(commits)
    for rec, _ in recs:
        assert 0 <= rec["off"] < len(data)
        flags = rec.get("flags", [])
        if FLAG_PARSE_ERROR in flags:
            # Raw bytes at their own offset (a piece of a long line: as far as the cut).
            raw = data[rec["off"]:].split(b"\n", 1)[0]
            if FLAG_SPLIT in flags:
                raw = raw[:piece_end(raw, 0, max_line)]
            assert rec["line"] == raw.decode("utf-8", errors="replace")
    if data:
        assert recs, "every line read is in some record"


@settings(max_examples=200, deadline=None)
@given(st.one_of(cri_files, docker_files), st.sampled_from(["cri", "docker", "auto"]),
       st.binary(max_size=30), st.integers(1, 64), st.integers(1, 64), st.integers(1, 32),
       st.sampled_from([None, MultilineRules(max_lines=3, max_bytes=60)]))
def test_container_records_do_not_depend_on_how_reads_cut_long_lines(
        lines: list[bytes], fmt: str, tail: bytes, read_a: int, read_b: int, max_line: int,
        multiline: MultilineRules | None) -> None:
    data = b"".join(line + b"\n" for line in lines) + tail.replace(b"\n", b"")
    a = read_container_file(data, fmt, read_a, max_line, multiline=multiline)
    b = read_container_file(data, fmt, read_b, max_line, multiline=multiline)
    assert comparable(a) == comparable(b)
    assert [c for _, c in a] == [c for _, c in b]
    # A line over max_line_bytes never reaches a parser: all of it goes out raw, in pieces.
    for rec, _ in a:
        if line_length_at(data, rec["off"]) > max_line:
            assert {FLAG_SPLIT, FLAG_PARSE_ERROR} <= set(rec["flags"])


def line_length_at(data: bytes, off: int) -> int:
    begin = data.rfind(b"\n", 0, off) + 1
    end = data.find(b"\n", off)
    return (len(data) if end < 0 else end) - begin


@settings(max_examples=150, deadline=None)
@given(cri_files, st.integers(1, 200), st.integers(1, 24),
       st.sampled_from([MultilineRules(max_lines=3, max_bytes=60), MultilineRules(
           mode="start_pattern", start_pattern=re.compile(b"[a-z]"))]))
@example([b"2026-11-25T10:15:00Z stdout P aaaa", b"2026-11-25T10:15:00Z stdout P  bbb",
          b"2026-11-25T10:15:00Z stdout F  ccc"], 200, 4, MultilineRules())
def test_multiline_never_joins_the_pieces_of_a_line_cut_at_partial_max_bytes(
        lines: list[bytes], read_bytes: int, partial_max: int, rules: MultilineRules) -> None:
    data = b"".join(line + b"\n" for line in lines)
    max_line = max((len(line) for line in lines), default=0) + 1
    alone = comparable(read_container_file(data, "cri", read_bytes, max_line, partial_max))
    joined = comparable(read_container_file(data, "cri", read_bytes, max_line, partial_max,
                                            multiline=rules))
    # Each piece goes out as it would without multi-line: no newline the file does not have.
    pieces = [rec for rec in alone if FLAG_SPLIT in rec[3]]
    at = {rec[0] for rec in pieces}  # (events cut at max_lines are flagged split too)
    assert [rec for rec in joined if rec[0] in at] == pieces


# --- PartialJoiner fed at random ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.sampled_from(["stdout", "stderr", "other"]), st.booleans(), message_bytes),
    st.just(None)), max_size=40),
    st.integers(1, 50), st.lists(st.sampled_from(["stale", "drain", ""]), max_size=40))
def test_partial_joiner_keeps_every_byte_of_each_stream(
        pieces: list[tuple[str, bool, bytes] | None], max_bytes: int, events: list[str]) -> None:
    joiner = PartialJoiner(max_bytes)
    fed: dict[str, list[bytes]] = {}
    got: dict[str, list[bytes]] = {}
    off = 0
    now = 0.0
    for i, piece in enumerate(pieces):
        if piece is None:
            joiner.bypass(off + 1)
        else:
            stream, partial, message = piece
            fed.setdefault(stream, []).append(message)
            joined = joiner.feed(off, off + len(message) + 1, "t", stream, partial, message,
                                 now=now)
            if joined is not None:
                got.setdefault(joined.stream, []).append(joined.message)
        off += 1 + (len(piece[2]) if piece else 0)
        now += 1.0
        event = events[i] if i < len(events) else ""
        if event == "stale":
            for joined in joiner.flush_if_stale(now, 1.5):
                got.setdefault(joined.stream, []).append(joined.message)
        elif event == "drain":
            for joined in joiner.drain():
                got.setdefault(joined.stream, []).append(joined.message)
    for joined in joiner.drain():
        got.setdefault(joined.stream, []).append(joined.message)
    assert {s: b"".join(v) for s, v in got.items()} == {s: b"".join(v) for s, v in fed.items()}
    assert joiner.pending_bytes == 0

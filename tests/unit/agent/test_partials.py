from __future__ import annotations

import itertools
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.stages.cri import parse_cri
from agent.stages.framing import FLAG_SPLIT
from agent.stages.partials import FLAG_UNTERMINATED, Joined, PartialJoiner

TS = "2024-05-01T10:00:00.000000001Z"


class Piece(NamedTuple):
    offset: int
    end: int
    stream: str
    partial: bool
    message: bytes


def cri_file(pieces: list[tuple[str, bool, bytes]], ts: str = TS) -> bytes:
    return b"".join(f"{ts} {s} {'P' if p else 'F'} ".encode() + m + b"\n" for s, p, m in pieces)


def read_pieces(data: bytes, start: int = 0) -> list[Piece | int]:
    """The file's lines from ``start`` as the agent sees them: a Piece, or the end offset of a
    line that is not CRI."""
    out: list[Piece | int] = []
    off = start
    for raw in data[start:].split(b"\n")[:-1]:
        end = off + len(raw) + 1
        parsed = parse_cri(raw)
        if parsed is None:
            out.append(end)
        else:
            out.append(Piece(off, end, parsed.stream, parsed.partial, parsed.message))
        off = end
    return out


def run(data: bytes, start: int = 0, max_bytes: int = 1 << 20) -> list[Joined]:
    """What the agent would send for ``data`` read from ``start``, ending with a drain."""
    joiner = PartialJoiner(max_bytes)
    out: list[Joined] = []
    for item in read_pieces(data, start):
        if isinstance(item, int):
            joiner.bypass(item)
            continue
        joined = joiner.feed(item.offset, item.end, TS, item.stream, item.partial, item.message,
                             now=0.0)
        if joined is not None:
            out.append(joined)
    out.extend(joiner.drain())
    return out


def test_whole_line_passes_through() -> None:
    joiner = PartialJoiner()
    assert joiner.feed(0, 30, TS, "stdout", False, b"hello", now=0.0) == Joined(
        0, 30, TS, "stdout", b"hello", 1, (), 30)
    assert joiner.pending_start() is None


def test_pieces_join_with_first_offset_and_last_end() -> None:
    joiner = PartialJoiner()
    assert joiner.feed(100, 140, TS, "stdout", True, b"aaa", now=0.0) is None
    assert joiner.pending_start() == 100
    assert joiner.feed(140, 180, "later", "stdout", True, b"bbb", now=0.0) is None
    joined = joiner.feed(180, 220, "latest", "stdout", False, b"ccc", now=0.0)
    assert joined == Joined(100, 220, TS, "stdout", b"aaabbbccc", 3, (), 220)
    assert joiner.pending_start() is None


def test_interleaved_streams_join_per_stream_and_commit_at_the_run_start() -> None:
    joiner = PartialJoiner()
    assert joiner.feed(0, 40, TS, "stdout", True, b"aaa", now=0.0) is None
    # stderr's whole line goes out at once, but the checkpoint may not pass stdout's first piece.
    assert joiner.feed(40, 80, TS, "stderr", False, b"xxx", now=0.0) == Joined(
        40, 80, TS, "stderr", b"xxx", 1, (), 0)
    assert joiner.feed(80, 120, TS, "stderr", True, b"yy", now=0.0) is None
    assert joiner.feed(120, 160, TS, "stdout", False, b"bbb", now=0.0) == Joined(
        0, 160, TS, "stdout", b"aaabbb", 2, (), 0)
    # The run started at 0 and is still open (stderr): the cut has not moved.
    assert joiner.pending_start() == 0
    assert joiner.feed(160, 200, TS, "stderr", False, b"zz", now=0.0) == Joined(
        80, 200, TS, "stderr", b"yyzz", 2, (), 200)
    assert joiner.pending_start() is None


def test_the_cut_stays_at_the_run_start_not_at_the_oldest_pending_piece() -> None:
    joiner = PartialJoiner()
    joiner.feed(0, 40, TS, "stdout", True, b"aaa", now=0.0)
    joiner.feed(40, 80, TS, "stderr", True, b"xxx", now=0.0)
    stdout = joiner.feed(80, 120, TS, "stdout", False, b"bbb", now=0.0)
    # Only stderr (from 40) is pending, but resuming at 40 would cut "bbb" loose.
    assert stdout is not None and (stdout.offset, stdout.end, stdout.commit) == (0, 120, 0)
    assert joiner.pending_start() == 0
    stderr = joiner.feed(120, 160, TS, "stderr", False, b"yyy", now=0.0)
    assert stderr is not None and (stderr.offset, stderr.message, stderr.commit) == (
        40, b"xxxyyy", 160)


def test_bypassed_lines_commit_behind_a_pending_partial() -> None:
    joiner = PartialJoiner()
    assert joiner.bypass(10) == 10
    joiner.feed(10, 50, TS, "stdout", True, b"a", now=0.0)
    assert joiner.bypass(60) == 10
    assert joiner.feed(60, 90, TS, "stdout", False, b"b", now=0.0) == Joined(
        10, 90, TS, "stdout", b"ab", 2, (), 90)


def test_max_bytes_splits_and_keeps_every_byte() -> None:
    joiner = PartialJoiner(max_bytes=10)
    out = [joiner.feed(i * 10, i * 10 + 10, TS, "stdout", True, b"abcd", now=0.0)
           for i in range(5)]
    out.append(joiner.feed(50, 60, TS, "stdout", False, b"end", now=0.0))
    records = [j for j in out if j is not None]
    assert [j.message for j in records] == [b"abcdabcdabcd", b"abcdabcdend"]
    assert [j.offset for j in records] == [0, 30]
    assert [j.end for j in records] == [30, 60]
    assert all(j.flags == (FLAG_SPLIT,) for j in records)
    # Each cut at max_bytes is a clean cut: checkpoints keep moving through a runaway line.
    assert [j.commit for j in records] == [30, 60]
    assert joiner.feed(60, 70, TS, "stdout", False, b"next", now=0.0) == Joined(
        60, 70, TS, "stdout", b"next", 1, (), 70)


def test_a_single_piece_over_max_bytes_is_emitted_alone() -> None:
    joiner = PartialJoiner(max_bytes=4)
    joined = joiner.feed(0, 20, TS, "stdout", True, b"0123456789", now=0.0)
    assert joined is not None and joined.flags == (FLAG_SPLIT,)
    last = joiner.feed(20, 30, TS, "stdout", False, b"x", now=0.0)
    assert last is not None and last.flags == (FLAG_SPLIT,) and last.offset == 20


def test_stale_partial_is_flushed_unterminated() -> None:
    joiner = PartialJoiner()
    joiner.feed(0, 40, TS, "stdout", True, b"a", now=100.0)
    joiner.feed(40, 80, TS, "stderr", True, b"b", now=103.0)
    assert joiner.flush_if_stale(now=104.9, timeout_s=5.0) == []
    first = joiner.flush_if_stale(now=105.0, timeout_s=5.0)
    assert first == [Joined(0, 40, TS, "stdout", b"a", 1, (FLAG_UNTERMINATED,), 0)]
    assert joiner.pending_start() == 0
    second = joiner.flush_if_stale(now=108.0, timeout_s=5.0)
    assert second == [Joined(40, 80, TS, "stderr", b"b", 1, (FLAG_UNTERMINATED,), 80)]
    assert joiner.pending_start() is None


def test_both_streams_stale_come_out_oldest_first() -> None:
    joiner = PartialJoiner()
    joiner.feed(0, 40, TS, "stderr", True, b"a", now=0.0)
    joiner.feed(40, 80, TS, "stdout", True, b"b", now=0.0)
    flushed = joiner.flush_if_stale(now=10.0, timeout_s=1.0)
    assert [(j.offset, j.commit) for j in flushed] == [(0, 0), (40, 80)]


def test_drain_and_reset() -> None:
    joiner = PartialJoiner()
    joiner.feed(0, 40, TS, "stdout", True, b"a", now=0.0)
    assert [j.flags for j in joiner.drain()] == [(FLAG_UNTERMINATED,)]
    joiner.feed(40, 80, TS, "stdout", True, b"b", now=0.0)
    joiner.reset()
    assert joiner.pending_start() is None
    assert joiner.pending_bytes == 0
    assert joiner.drain() == []


def test_rejects_non_positive_max_bytes() -> None:
    with pytest.raises(ValueError, match="positive"):
        PartialJoiner(0)


# -- properties ----------------------------------------------------------------------------------

_message = st.binary(max_size=60).filter(lambda b: b"\n" not in b)


def split_into_pieces(message: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(message) + 1) for c in cuts})
    bounds = [0, *points, len(message)]
    return [message[a:b] for a, b in itertools.pairwise(bounds)]


@settings(deadline=None, max_examples=100)
@given(_message, st.lists(st.integers(0, 1000), max_size=8), st.integers(0, 10_000))
def test_pieces_join_back_to_the_message(message: bytes, cuts: list[int], base: int) -> None:
    pieces = split_into_pieces(message, cuts)
    data = cri_file([("stdout", i < len(pieces) - 1, p) for i, p in enumerate(pieces)])
    records = run(b"x" * base + b"\n" + data, start=base + 1)
    assert len(records) == 1
    assert records[0].message == message
    assert records[0].offset == base + 1
    assert records[0].end == base + 1 + len(data)
    assert records[0].pieces == len(pieces)


_line = st.tuples(_message, st.lists(st.integers(0, 1000), max_size=3))


@st.composite
def interleaved_file(draw: st.DrawFn) -> tuple[bytes, dict[str, list[bytes]]]:
    """Two streams' lines, each split into P pieces + F, interleaved at random, plus junk."""
    lines: dict[str, list[bytes]] = {}
    queues: dict[str, list[tuple[str, bool, bytes]]] = {}
    for stream in ("stdout", "stderr"):
        drawn = draw(st.lists(_line, max_size=4))
        lines[stream] = [m for m, _ in drawn]
        queues[stream] = [(stream, i < len(ps) - 1, p)
                          for m, cuts in drawn for ps in [split_into_pieces(m, cuts)]
                          for i, p in enumerate(ps)]
    order = draw(st.permutations([s for s in queues for _ in queues[s]]))
    junk = draw(st.sets(st.integers(0, len(order)), max_size=3))
    chunks = []
    for i, s in enumerate(order):
        if i in junk:
            chunks.append(b"not a CRI line\n")
        chunks.append(cri_file([queues[s].pop(0)]))
    return b"".join(chunks), lines


@settings(deadline=None, max_examples=100)
@given(interleaved_file())
def test_interleaved_streams_join_per_stream(case: tuple[bytes, dict[str, list[bytes]]]) -> None:
    data, lines = case
    records = run(data)
    for stream, expected in lines.items():
        got = sorted((j for j in records if j.stream == stream), key=lambda j: j.offset)
        assert [j.message for j in got] == expected
        assert all(not j.flags for j in got)
    # Every origin is the offset of a line of the file: the first piece.
    starts = {0} | {i + 1 for i, b in enumerate(data) if b == ord("\n")}
    assert all(j.offset in starts for j in records)


@settings(deadline=None, max_examples=100)
@given(interleaved_file())
def test_resuming_at_any_commit_rebuilds_the_same_records(
        case: tuple[bytes, dict[str, list[bytes]]]) -> None:
    data, _ = case
    records = run(data)
    commits = [j.commit for j in records]
    assert commits == sorted(commits)  # the tailer's acked offset only moves forward
    for cut in set(commits):
        before = [j for j in records if j.offset < cut]
        after = [j for j in records if j.offset >= cut]
        # Nothing straddles a cut, and a restart there sends the same records again, with the
        # same origins: duplicates the indexer recognises, never loss or fragments.
        assert all(j.end <= cut for j in before)
        assert run(data, start=cut) == after


@settings(deadline=None, max_examples=100)
@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.booleans(),
                          st.binary(min_size=1, max_size=30)), max_size=30),
       st.integers(8, 64))
def test_memory_stays_bounded(pieces: list[tuple[str, bool, bytes]], max_bytes: int) -> None:
    joiner = PartialJoiner(max_bytes)
    per_stream: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    out: list[Joined] = []
    off = 0
    for stream, partial, message in pieces:
        per_stream[stream].append(message)
        joined = joiner.feed(off, off + 10, TS, stream, partial, message, now=0.0)
        off += 10
        if joined is not None:
            out.append(joined)
        assert joiner.pending_bytes < 2 * max_bytes  # under max_bytes per stream
    out.extend(joiner.drain())
    for stream, messages in per_stream.items():
        assert b"".join(j.message for j in out if j.stream == stream) == b"".join(messages)

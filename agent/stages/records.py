"""What a pipeline hands to the sink: record values in file order, each with its commit offset.

A pipeline gathers the lines of a read as :class:`Lines` (columns: offset, text, timestamp,
stream, flags, commit offset) and :func:`pack` turns them into wire v2 records, each a run of
up to :data:`RECORD_MAX_BYTES` of consecutive lines (see :mod:`logferry.wire`).

:class:`Records` keeps parallel lists rather than a list of ``(value, commit)`` tuples: the
sink takes ``values`` slices as they are, and ``lines`` says how many log lines each value
holds (for the metrics). It still reads as a sequence of ``(value, commit)`` pairs, which is
what tests and the slow paths use.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import overload

import orjson

from logferry.wire import join_batch

# Bytes of lines per Kafka record: hundreds of usual lines, so the per-record costs (framing,
# the indexer's fetch and parse) are spread thin, while a record stays far below Kafka's
# default 1 MiB message limit (a single longer line still goes alone).
RECORD_MAX_BYTES = 128 * 1024


class Records(Sequence[tuple[bytes, int]]):
    """``values[i]`` is one Kafka record value; ``commits[i]`` the offset the file's checkpoint
    may move to once that record and every one before it is acknowledged."""

    __slots__ = ("commits", "lines", "values")

    def __init__(self, values: list[bytes] | None = None,
                 commits: list[int] | None = None, lines: list[int] | None = None) -> None:
        self.values: list[bytes] = [] if values is None else values
        self.commits: list[int] = [] if commits is None else commits
        # lines[i]: how many log lines values[i] holds (1 unless given).
        self.lines: list[int] = [1] * len(self.values) if lines is None else lines
        if not len(self.values) == len(self.commits) == len(self.lines):
            raise ValueError("values, commits and lines differ in length")

    @classmethod
    def of(cls, pairs: Iterable[tuple[bytes, int]]) -> Records:
        out = cls()
        out.extend(pairs)
        return out

    def append(self, pair: tuple[bytes, int], lines: int = 1) -> None:
        self.values.append(pair[0])
        self.commits.append(pair[1])
        self.lines.append(lines)

    def extend(self, pairs: Iterable[tuple[bytes, int]]) -> None:
        if isinstance(pairs, Records):
            self.values.extend(pairs.values)
            self.commits.extend(pairs.commits)
            self.lines.extend(pairs.lines)
            return
        for value, commit in pairs:
            self.append((value, commit))

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        return zip(self.values, self.commits, strict=True)

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, int]: ...

    @overload
    def __getitem__(self, index: slice) -> Records: ...

    def __getitem__(self, index: int | slice) -> tuple[bytes, int] | Records:
        if isinstance(index, slice):
            return Records(self.values[index], self.commits[index], self.lines[index])
        return self.values[index], self.commits[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Records):
            return (self.values == other.values and self.commits == other.commits
                    and self.lines == other.lines)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Records({list(self)!r})"


def as_records(records: Sequence[tuple[bytes, int]]) -> Records:
    """``records`` as :class:`Records` (no copy if it already is one)."""
    return records if isinstance(records, Records) else Records.of(records)


class Lines:
    """The lines of one read of one file, in order, as columns.

    ``offs[i]`` is where line ``i`` starts in the file, ``texts[i]`` the line, ``stamps[i]``
    its timestamp, ``commits[i]`` the offset the checkpoint may move to once it is
    acknowledged; ``streams`` is None until some line has a stream, then one per line;
    ``flags`` maps a line's index to its flags. Hot loops append to the lists directly.
    """

    __slots__ = ("commits", "flags", "offs", "stamps", "streams", "texts")

    def __init__(self, with_streams: bool = False) -> None:
        self.offs: list[int] = []
        self.texts: list[str] = []
        self.stamps: list[str] = []
        self.commits: list[int] = []
        self.streams: list[str | None] | None = [] if with_streams else None
        self.flags: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return len(self.offs)

    def add(self, off: int, ts: str, text: str, commit: int, stream: str | None = None,
            flags: Sequence[str] = ()) -> None:
        i = len(self.offs)
        self.offs.append(off)
        self.texts.append(text)
        self.stamps.append(ts)
        self.commits.append(commit)
        if stream is not None and self.streams is None:
            self.streams = [None] * i
        if self.streams is not None:
            self.streams.append(stream)
        if flags:
            self.flags[i] = list(flags)


def _same_or_all(values: Sequence[object]) -> bytes:
    """One JSON value for all when every item is the same (a read's timestamp, a stream), else
    the list."""
    first = values[0]
    return orjson.dumps(first if values.count(first) == len(values) else values)


# About what a record adds to each line beyond its text: quotes, commas and its offset, with its
# timestamp and stream for container lines. Sized from file positions, a line already counts
# its newline, and a container line its CRI header (about as long as its timestamp and stream).
_PER_LINE = 48
_PER_LINE_FROM_FILE = 16


def pack(head: bytes, lines: Lines, max_bytes: int = RECORD_MAX_BYTES) -> Records:
    """``lines`` as v2 records after ``head`` (:func:`logferry.wire.batch_head`), each a run
    of lines of about ``max_bytes`` at most (at least one line)."""
    out = Records()
    n = len(lines)
    if not n:
        return out
    offs = lines.offs
    # ends[i] + per_line * i: about the size of lines[:i] in a record (JSON escapes aside).
    if offs == sorted(offs):
        # Lines in file order, the usual case: a run takes about the file bytes it spans,
        # known from the offsets without a pass over every line.
        ends = [*offs, offs[-1] + len(lines.texts[-1]) + 1]
        per_line = _PER_LINE_FROM_FILE
    else:
        # Joined partial lines of two streams come out of file order: their text lengths.
        ends = list(accumulate(map(len, lines.texts), initial=0))
        per_line = _PER_LINE

    def size_to(i: int) -> int:
        return ends[i] + per_line * i

    everything = range(n + 1)
    streams, flags = lines.streams, lines.flags
    start = 0
    while start < n:
        limit = size_to(start) + max_bytes
        stop = n if size_to(n) <= limit else max(
            start + 1, bisect_right(everything, limit, start + 1, n + 1, key=size_to) - 1)
        pairs = [[i - start, flags[i]] for i in sorted(flags) if start <= i < stop] \
            if flags else None
        if start == 0 and stop == n:
            stamps, off_list, texts = lines.stamps, offs, lines.texts
            stream_list = streams
        else:
            stamps, off_list, texts = (lines.stamps[start:stop], offs[start:stop],
                                       lines.texts[start:stop])
            stream_list = None if streams is None else streams[start:stop]
        out.values.append(join_batch(
            head, _same_or_all(stamps), orjson.dumps(off_list), orjson.dumps(texts),
            None if stream_list is None else _same_or_all(stream_list),
            orjson.dumps(pairs) if pairs else None))
        out.commits.append(lines.commits[stop - 1])
        out.lines.append(stop - start)
        start = stop
    return out

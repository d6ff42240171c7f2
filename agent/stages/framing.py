"""Turning bytes read from a file into lines: split, decode, cap length, note offsets.

This is the hot loop of the agent. It works on whole chunks (one :func:`split_lines` per chunk
when it is valid UTF-8, in C when built) and fills the columns of
:class:`~agent.stages.records.Lines` with whole-list operations; packing them into records is
one ``orjson.dumps`` per column (:func:`agent.stages.records.pack`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from operator import sub

from agent.stages import native
from agent.stages.native import Split
from agent.stages.records import Lines

FLAG_INVALID_UTF8 = "invalid_utf8"
FLAG_SPLIT = "split"


_NEXT_LINE = (1).__add__  # a line's length -> how far the next one starts after it


def line_offsets(start: int, lengths: Iterable[int]) -> list[int]:
    """Where each line starts, for lines of these byte ``lengths`` from ``start``, and one
    more: just past the last newline (``offsets[i + 1]`` is line ``i``'s commit)."""
    return list(accumulate(map(_NEXT_LINE, lengths), initial=start))


def split_lines_py(body: bytes, start: int) -> Split | None:
    """A chunk's lines (``body`` holds them without the last newline): where each starts and
    one more, just past the last newline (``offsets[i + 1]`` is line ``i``'s commit), and
    their text; None if ``body`` is not valid UTF-8. :func:`split_lines` is this, in C when
    built."""
    if body.isascii():
        lines = body.decode("ascii").split("\n")
        return line_offsets(start, map(len, lines)), lines
    try:
        lines = body.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None
    return line_offsets(start, map(len, body.split(b"\n"))), lines  # in bytes, unlike str


split_lines: Callable[[bytes, int], Split | None] = native.line_split or split_lines_py


def frame_chunk(out: Lines, ts: str, start: int, body: bytes, max_line_bytes: int,
                continued: bool = False) -> None:
    """Add the lines of ``body`` to ``out``, all stamped ``ts``, as :func:`frame_lines` does.

    The common chunk (valid UTF-8, no line over ``max_line_bytes``, not ``continued``) takes
    one :func:`split_lines` and a few list ``extend``s; any other chunk is handed to
    :func:`frame_lines` whole.
    """
    split = None if continued else split_lines(body, start)
    if split is None:
        frame_lines(out, ts, start, body, max_line_bytes, continued)
        return
    offsets, lines = split
    # A chunk within the limit cannot hold a line over it: with read_chunk_bytes <=
    # max_line_bytes (the default) every chunk of the tailer is, and skips this scan.
    if len(body) > max_line_bytes and max(map(sub, offsets[1:], offsets)) > max_line_bytes + 1:
        frame_lines(out, ts, start, body, max_line_bytes)
        return
    n = len(lines)
    if out.streams is not None:
        out.streams.extend([None] * n)
    out.offs.extend(offsets[:-1])
    out.commits.extend(offsets[1:])
    out.texts.extend(lines)
    out.stamps.extend([ts] * n)


def frame_lines(out: Lines, ts: str, start: int, body: bytes, max_line_bytes: int,
                continued: bool = False) -> None:
    """Add each line of ``body`` to ``out``, with the offset just past it as its commit.

    ``body`` holds complete lines without the final newline; ``start`` is the file offset of
    its first byte. Lines longer than ``max_line_bytes`` come out as several lines flagged
    ``split`` (cut where :func:`piece_end` says), each with its own exact offset, so a
    checkpoint may fall between the pieces and a resume re-splits at the same places.
    ``continued``: the first line began before ``start`` (the rest of a line whose first
    pieces were sent already), so it is a piece too, flagged ``split`` however short.
    """
    off = start
    if continued:
        nl = body.find(b"\n")
        first = body if nl < 0 else body[:nl]
        _split_long(out, ts, off, first, max_line_bytes)
        if nl < 0:
            return
        off += nl + 1
        body = body[nl + 1 :]
    for raw in body.split(b"\n"):
        n = len(raw)
        if n > max_line_bytes:
            _split_long(out, ts, off, raw, max_line_bytes)
        else:
            add_bytes(out, ts, off, raw, off + n + 1)
        off += n + 1


def add_bytes(out: Lines, ts: str, off: int, raw: bytes, commit: int,
              extra_flags: tuple[str, ...] = (), stream: str | None = None) -> None:
    """Add one line that may not be valid UTF-8; invalid bytes become U+FFFD, flagged."""
    try:
        text = raw.decode("utf-8")
        flags = extra_flags
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        flags = (*extra_flags, FLAG_INVALID_UTF8)
    out.add(off, ts, text, commit, stream, flags)


def piece_end(data: bytes, start: int, max_line_bytes: int) -> int:
    """Where the piece of an over-long line that begins at ``data[start]`` ends.

    ``max_line_bytes`` on, or the end of ``data``; moved back to the first byte of a UTF-8
    character the cut would fall inside (at most 3 bytes back, and never to an empty piece),
    so that the pieces of valid UTF-8 stay valid. Framing, the pipelines and the tailer all
    cut here: pieces come out the same however reads cut the file, and a resume between
    pieces re-cuts at the same places.
    """
    end = start + max_line_bytes
    if end >= len(data):
        return len(data)
    for cut in range(end, max(end - 3, start + 1) - 1, -1):
        byte = data[cut]
        if not 0x80 <= byte < 0xC0:  # not a continuation byte: a character starts here
            # Back to it only if the cut falls inside its sequence: stray continuation bytes
            # are invalid either way, so binary data is cut where it always was.
            if byte >= 0xC0 and 2 + (byte >= 0xE0) + (byte >= 0xF0) > end - cut > 0:
                return cut
            return end
    return end  # a character longer than a whole piece, or invalid UTF-8


def pieces(raw: bytes, max_line_bytes: int) -> Iterator[tuple[int, int]]:
    """``(begin, end)`` of each piece of ``raw``, one line, as :func:`piece_end` cuts it; the
    whole line at once when it is not over-long (also when it is empty)."""
    total = len(raw)
    if total <= max_line_bytes:
        yield 0, total
        return
    begin = 0
    while begin < total:
        end = piece_end(raw, begin, max_line_bytes)
        yield begin, end
        begin = end


def _split_long(out: Lines, ts: str, off: int, raw: bytes, max_line_bytes: int) -> None:
    total = len(raw)
    for begin, end in pieces(raw, max_line_bytes):
        # The last piece also consumes the newline that ended the line.
        add_bytes(out, ts, off + begin, raw[begin:end],
                  off + end + (1 if end == total else 0), (FLAG_SPLIT,))

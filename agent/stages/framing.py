"""Turning bytes read from a file into records: split lines, decode, cap length, encode.

This is the hot loop of the agent. It works on whole chunks (one ``split`` per chunk, one
``decode`` per chunk when it is valid UTF-8, offsets by one ``accumulate``) and builds record
bytes from a per-chunk prefix with one ``%`` format per line instead of a dict per line.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

import orjson

from agent.stages.records import Records
from logferry.wire import encode_with_prefix

FLAG_INVALID_UTF8 = "invalid_utf8"
FLAG_SPLIT = "split"


_NEXT_LINE = (1).__add__  # a line's length -> how far the next one starts after it


def frame_chunk(prefix: bytes, start: int, body: bytes, max_line_bytes: int) -> Records:
    """The records :func:`frame_lines` yields, built for the whole chunk at once.

    The common chunk (valid UTF-8, no line over ``max_line_bytes``) takes one decode, one
    split, one ``accumulate`` for the offsets and one format per line; any other chunk is
    handed to :func:`frame_lines` whole.
    """
    lengths: list[int] | None = None
    if body.isascii():
        lines = body.decode("ascii").split("\n")
    else:
        try:
            lines = body.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            return Records.of(frame_lines(prefix, start, body, max_line_bytes))
        lengths = list(map(len, body.split(b"\n")))  # in bytes, unlike the str lines
    if max(map(len, lines) if lengths is None else lengths) > max_line_bytes:
        return Records.of(frame_lines(prefix, start, body, max_line_bytes))
    # offsets[i] is where line i starts, offsets[i + 1] just past its newline (its commit).
    offsets = list(accumulate(map(_NEXT_LINE, map(len, lines) if lengths is None else lengths),
                              initial=start))
    # The prefix holds the path and host, which may hold "%".
    record = (prefix.replace(b"%", b"%%") + b'%d,"line":%b}').__mod__
    dumps = orjson.dumps
    # offsets has one more item than lines: zip stops at the last line.
    values = [record((off, dumps(line))) for off, line in zip(offsets, lines, strict=False)]
    del offsets[0]
    return Records(values, offsets)


def frame_lines(prefix: bytes, start: int, body: bytes, max_line_bytes: int
                ) -> Iterator[tuple[bytes, int]]:
    """Yield ``(record value, offset just past this record)`` for each line of ``body``.

    ``body`` holds complete lines without the final newline; ``start`` is the file offset of
    its first byte. Lines longer than ``max_line_bytes`` come out as several records flagged
    ``split``, each with its own exact offset, so a checkpoint may fall between the pieces and a
    resume re-splits at the same places.
    """
    off = start
    if body.isascii():
        for line in body.decode("ascii").split("\n"):
            n = len(line)
            if n > max_line_bytes:
                yield from _split_long(prefix, off, line.encode(), max_line_bytes)
            else:
                yield encode_with_prefix(prefix, off, line), off + n + 1
            off += n + 1
        return
    for raw in body.split(b"\n"):
        n = len(raw)
        if n > max_line_bytes:
            yield from _split_long(prefix, off, raw, max_line_bytes)
        else:
            yield encode_bytes(prefix, off, raw), off + n + 1
        off += n + 1


def encode_bytes(prefix: bytes, off: int, raw: bytes, extra_flag: str | None = None) -> bytes:
    """Encode one line that may not be valid UTF-8; invalid bytes become U+FFFD, flagged."""
    flags = [extra_flag] if extra_flag else []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        flags.append(FLAG_INVALID_UTF8)
    if not flags:
        return encode_with_prefix(prefix, off, text)
    return b"".join((prefix, str(off).encode(), b',"line":', orjson.dumps(text),
                     b',"flags":', orjson.dumps(flags), b"}"))


def _split_long(prefix: bytes, off: int, raw: bytes, max_line_bytes: int
                ) -> Iterator[tuple[bytes, int]]:
    total = len(raw)
    for i in range(0, total, max_line_bytes):
        piece = raw[i : i + max_line_bytes]
        end = off + i + len(piece)
        # The last piece also consumes the newline that ended the line.
        yield encode_bytes(prefix, off + i, piece, FLAG_SPLIT), end + (1 if end == off + total
                                                                         else 0)

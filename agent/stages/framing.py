"""Turning bytes read from a file into records: split lines, decode, cap length, encode.

This is the hot loop of the agent. It works on whole chunks (one ``split`` per chunk, one
``decode`` per chunk when it is ASCII) and builds record bytes from a per-chunk prefix instead
of a dict per line.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from logferry.wire import encode_with_prefix

FLAG_INVALID_UTF8 = "invalid_utf8"
FLAG_SPLIT = "split"


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

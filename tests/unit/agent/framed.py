"""Test helper: the framing functions' output as one v1 record per line, with its commit.

The agent packs lines many to a record; framing tests check each line's own offset, text,
flags and commit offset, which these pairs show directly.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.stages.records import Lines, Records
from logferry.wire import LogRecord, encode

TS = "2026-11-25T00:00:00Z"


def per_line(lines: Lines, host: str = "h", path: str = "/p", fid: str = "1:2:3") -> Records:
    """``lines`` as ``(v1 record, commit)`` pairs, one per line."""
    streams = lines.streams or [None] * len(lines)
    values = [encode(LogRecord(ts, host, "file", path, fid, off, text, lines.flags.get(i, []),
                               None, stream))
              for i, (off, text, ts, stream) in enumerate(zip(lines.offs, lines.texts,
                                                                lines.stamps, streams,
                                                                strict=True))]
    return Records(values, list(lines.commits))


def framed(fill: Callable[..., None], start: int, body: bytes, max_line_bytes: int,
           continued: bool = False) -> Records:
    """What ``fill`` (``frame_lines`` or ``frame_chunk``) makes of ``body``, per line."""
    out = Lines()
    fill(out, TS, start, body, max_line_bytes, continued)
    return per_line(out)

"""Lines of one file into wire v2 records, as the agent packs a backlog."""

from __future__ import annotations

from bisect import bisect_right

from logferry.wire import encode_batch

# What the agent puts in one record (agent/stages/records.py): the lines that start within
# 128 KiB of the record's first line, i.e. a few hundred usual lines.
RECORD_MAX_BYTES = 128 * 1024


def pack(head: bytes, stamps: str | list[str], offs: list[int], lines: list[str],
         stream: str | None = None, max_bytes: int = RECORD_MAX_BYTES) -> list[bytes]:
    """v2 records (after ``head``, from :func:`logferry.wire.batch_head`) of the consecutive
    ``lines`` of one file at ``offs``, each of the lines that start within ``max_bytes`` of
    its first one (at least one line)."""
    out: list[bytes] = []
    start, n = 0, len(lines)
    while start < n:
        stop = bisect_right(offs, offs[start] + max_bytes, start + 1, n)
        ts = stamps if isinstance(stamps, str) else stamps[start:stop]
        out.append(encode_batch(head, ts, offs[start:stop], lines[start:stop], stream))
        start = stop
    return out

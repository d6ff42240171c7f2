"""Lines of one file into wire v2 records, packed by the agent's own code."""

from __future__ import annotations

from agent.stages.framing import line_offsets
from agent.stages.records import Lines
from agent.stages.records import pack as pack_lines


def pack(head: bytes, stamps: str | list[str], offs: list[int], lines: list[str],
         stream: str | None = None) -> list[bytes]:
    """v2 records (after ``head``, from :func:`logferry.wire.batch_head`) of the consecutive
    ``lines`` of one file at ``offs``, exactly as the agent packs a backlog of them."""
    n = len(lines)
    out = Lines(with_streams=stream is not None)
    out.offs.extend(offs)
    out.texts.extend(lines)
    out.stamps.extend([stamps] * n if isinstance(stamps, str) else stamps)
    # Each line's commit is just past its newline (lines hold no newline of their own).
    out.commits.extend(line_offsets(offs[0], (len(line.encode()) for line in lines))[1:]
                       if n else [])
    if out.streams is not None:
        out.streams.extend([stream] * n)
    return pack_lines(head, out).values

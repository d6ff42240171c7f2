"""One open file being tailed: where reading is, where Kafka has acknowledged up to.

Offsets are byte offsets in the file. ``read_offset`` is the next byte to read (always the start
of a line, or of a piece of an over-long line). ``acked_offset`` trails it: every byte before it
is in Kafka. Only ``acked_offset`` is ever checkpointed.

Over-long lines are cut here, never in a pipeline: a line longer than ``max_line_bytes`` leaves
the tailer as forced chunks (pieces without their newline, cut by
:func:`agent.stages.framing.piece_end`) and a last piece that starts the next chunk, marked
``continued``. So a chunk that is not forced holds no line over the limit, and what the
pipelines make of a file does not depend on how reads cut it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agent.sources.identity import FileIdentity
from agent.stages.framing import piece_end


@dataclass(slots=True)
class Chunk:
    start: int
    body: bytes
    end: int
    # A piece of a line longer than max_line_bytes with no newline yet, or the last bytes of
    # a finished file: sent as one record.
    forced: bool = False
    # The first line began before ``start``: it is the rest of an over-long line.
    continued: bool = False


@dataclass(slots=True)
class _InFlight:
    end_offset: int
    nbytes: int
    done: bool = False
    ok: bool = False


@dataclass(eq=False)
class FileTailer:
    path: str
    fd: int
    identity: FileIdentity
    read_offset: int
    acked_offset: int = -1
    # The path no longer names this file (rename rotation, delete): finish it, then release.
    orphaned: bool = False
    last_growth: float = field(default_factory=time.monotonic)
    last_size: int = -1
    # The bytes after read_offset hold no newline yet; skip reads until the size changes.
    waiting_for_newline: bool = False
    generation: int = 0
    inflight: deque[_InFlight] = field(default_factory=deque)
    # Bytes of the batches in ``inflight``, kept as a count: the reader checks it per chunk.
    inflight_bytes: int = 0
    # The per-file pipeline (agent.stages.pipeline); reset whenever reading jumps back.
    pipeline: Any = None
    # Kafka record key (partition choice); by default the file id.
    key: bytes = b""
    # Where the last read stopped, and whether that was inside a line (after a forced
    # piece). A read that starts anywhere else (a resume, a rewind) looks at the byte before.
    _stop: int = field(default=-1, repr=False)
    _stop_inside: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.acked_offset < 0:
            self.acked_offset = self.read_offset

    @property
    def fid(self) -> str:
        return self.identity.fid

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read_chunk(self, max_bytes: int, max_line_bytes: int) -> Chunk | None:
        """Complete lines from ``read_offset``, or the next piece of an over-long line; None
        when neither is there yet."""
        start = self.read_offset
        # One byte over the limit: a line of exactly max_line_bytes is whole only once its
        # newline is seen, and only a line really over the limit may be cut.
        data = os.pread(self.fd, max(max_bytes, max_line_bytes + 1), start)
        if not data:
            return None
        cut = data.rfind(b"\n")
        if cut > max_line_bytes:  # only when max_bytes > max_line_bytes
            long_at = _first_long_line(data, cut, max_line_bytes)
            if long_at >= 0:
                cut = long_at - 1  # up to that line; -1 when it is the first one
        if cut < 0:
            if len(data) <= max_line_bytes:
                return None
            continued = self._starts_inside_line(start)
            end = start + piece_end(data, 0, max_line_bytes)
            self.read_offset = self._stop = end
            self._stop_inside = True
            return Chunk(start, data[: end - start], end, forced=True, continued=continued)
        continued = self._starts_inside_line(start)
        self.read_offset = self._stop = start + cut + 1
        self._stop_inside = False
        return Chunk(start, data[:cut], self.read_offset, continued=continued)

    def read_tail(self) -> Chunk | None:
        """The bytes after the last newline, for a file that will never be written again."""
        start = self.read_offset
        data = os.pread(self.fd, 1 << 30, start)
        if not data:
            return None
        continued = self._starts_inside_line(start)
        self.read_offset = self._stop = start + len(data)
        self._stop_inside = True
        return Chunk(start, data, self.read_offset, forced=True, continued=continued)

    def _starts_inside_line(self, offset: int) -> bool:
        if offset == self._stop:
            return self._stop_inside
        # read_offset is always a line start or a cut between pieces (see the module doc).
        return offset > 0 and os.pread(self.fd, 1, offset - 1) != b"\n"

    # -- acknowledgements -------------------------------------------------------------------

    def track(self, end_offset: int, nbytes: int, future: asyncio.Future[object]) -> None:
        item = _InFlight(end_offset, nbytes)
        self.inflight.append(item)
        self.inflight_bytes += nbytes
        generation = self.generation

        def _done(fut: asyncio.Future[object]) -> None:
            if generation != self.generation:
                return  # superseded by a rewind; its outcome no longer moves the checkpoint
            item.done = True
            item.ok = not fut.cancelled() and fut.exception() is None
            self._advance()

        future.add_done_callback(_done)

    def _advance(self) -> None:
        while self.inflight and self.inflight[0].done:
            head = self.inflight[0]
            if not head.ok:
                self.rewind()
                return
            self.acked_offset = head.end_offset
            self.inflight.popleft()
            self.inflight_bytes -= head.nbytes

    def rewind(self) -> None:
        """A batch failed: forget everything unacknowledged and read it again."""
        self.generation += 1
        self.inflight.clear()
        self.inflight_bytes = 0
        self.read_offset = self.acked_offset
        self.waiting_for_newline = False
        if self.pipeline is not None:
            self.pipeline.reset(self.acked_offset)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _first_long_line(data: bytes, stop: int, max_line_bytes: int) -> int:
    """Where the first line longer than ``max_line_bytes`` starts in ``data[:stop]``
    (complete lines: ``data[stop]`` is a newline), or -1 if there is none."""
    pos = 0
    # A line is over the limit iff the limit + 1 bytes from its start hold no newline. Jumping
    # to the last newline in that window moves on by more than the limit every two steps.
    while stop - pos > max_line_bytes:
        nl = data.rfind(b"\n", pos, pos + max_line_bytes + 1)
        if nl < 0:
            return pos
        pos = nl + 1
    return -1

"""One open file being tailed: where reading is, where Kafka has acknowledged up to.

Offsets are byte offsets in the file. ``read_offset`` is the next byte to read (always the start
of a line, or of a piece of an over-long line). ``acked_offset`` trails it: every byte before it
is in Kafka. Only ``acked_offset`` is ever checkpointed.
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


@dataclass(slots=True)
class Chunk:
    start: int
    body: bytes
    end: int
    # A piece of a line longer than max_line_bytes with no newline yet: sent as one record.
    forced: bool = False


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

    def __post_init__(self) -> None:
        if self.acked_offset < 0:
            self.acked_offset = self.read_offset

    @property
    def fid(self) -> str:
        return self.identity.fid

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read_chunk(self, max_bytes: int, max_line_bytes: int) -> Chunk | None:
        """Complete lines from ``read_offset``; None when no complete line is there yet."""
        data = os.pread(self.fd, max(max_bytes, max_line_bytes), self.read_offset)
        if not data:
            return None
        cut = data.rfind(b"\n")
        start = self.read_offset
        if cut < 0:
            if len(data) < max_line_bytes:
                return None
            body = data[:max_line_bytes]
            self.read_offset = start + len(body)
            return Chunk(start, body, self.read_offset, forced=True)
        self.read_offset = start + cut + 1
        return Chunk(start, data[:cut], self.read_offset)

    def read_tail(self) -> Chunk | None:
        """The bytes after the last newline, for a file that will never be written again."""
        data = os.pread(self.fd, 1 << 30, self.read_offset)
        if not data:
            return None
        start = self.read_offset
        self.read_offset = start + len(data)
        return Chunk(start, data, self.read_offset, forced=True)

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

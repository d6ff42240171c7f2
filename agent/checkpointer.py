"""Checkpoint bookkeeping: which positions are written, when, and what a failed write does.

Open files contribute their ``acked_offset`` (never ``read_offset``); files without a handle
(closed while idle, waiting, or not found again yet since the start) keep the position they
had. Files that vanished are dropped by :class:`agent.handles.HandleLimiter`, so their entries
leave the checkpoint. The file is written off the event loop; a failed write is logged and
counted, and the previous checkpoint stays intact until the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from agent.checkpoint import CheckpointStore, FileCheckpoint
from agent.handles import HandleLimiter, Key
from agent.metrics import AgentMetrics
from agent.sources.tailer import FileTailer
from logferry.errors import CheckpointError

log = logging.getLogger("logferry.agent")


def tailer_checkpoint(tailer: FileTailer) -> FileCheckpoint:
    # dev + ino are those of the file read (a copy's own), fid that of its origin.
    ident = tailer.identity
    return FileCheckpoint(tailer.fid, ident.dev, ident.ino, ident.fp, ident.fp_len,
                          tailer.path, tailer.acked_offset, tailer.orphaned)


class Checkpointer:
    def __init__(self, store: CheckpointStore, metrics: AgentMetrics, interval_s: float,
                 tailers: Mapping[Key, FileTailer], handles: HandleLimiter) -> None:
        self.store = store
        self.metrics = metrics
        self.interval_s = interval_s
        self._tailers = tailers
        self._handles = handles

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            entries = self.entries()
            await asyncio.to_thread(self.write, entries)

    def save_now(self) -> None:
        self.write(self.entries())

    def entries(self) -> list[FileCheckpoint]:
        # Built on the event loop thread: tailers and handles are only mutated there.
        entries = [tailer_checkpoint(t) for t in self._tailers.values()]
        entries.extend(self._handles.checkpoints())
        self.metrics.checkpoint_lag.set(
            sum(max(0, t.last_size - t.acked_offset) for t in self._tailers.values()))
        return entries

    def write(self, entries: list[FileCheckpoint]) -> None:
        try:
            self.store.save(entries)
        except CheckpointError as exc:
            self.metrics.checkpoint_errors.inc()
            log.error("checkpoint write failed", extra={"error": str(exc)})

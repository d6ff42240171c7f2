"""The agent service: discover files, tail them, produce to Kafka, checkpoint what was acked.

Order of truth: a line is read, framed into a record, appended to a batch, and the batch is
sent; only when Kafka acknowledges the batch does the file's ``acked_offset`` move, and only
``acked_offset`` is written to the checkpoint. A crash anywhere re-reads from the last
checkpoint: lines may repeat (same file id and offset, so the indexer drops them), never vanish.

Which files are open is :mod:`agent.files`' business (at most ``max_open_files`` at once),
writing the checkpoint :mod:`agent.checkpointer`'s; this module reads and sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from aiokafka.errors import KafkaError

from agent.checkpoint import CheckpointStore
from agent.checkpointer import Checkpointer
from agent.files import PLAN_INTERVAL_S, FileSet
from agent.handles import raise_fd_limit
from agent.metrics import AgentMetrics
from agent.paths import display_path
from agent.sinks.kafka import KafkaSink
from agent.sources.discovery import Watcher
from agent.sources.identity import still_matches
from agent.sources.pod_metadata import PodMetadataCache
from agent.sources.tailer import Chunk, FileTailer
from agent.stages import native
from agent.stages.pipeline import Records
from logferry.config import Config
from logferry.errors import ConfigError
from logferry.lean_gc import lean_gc
from logferry.telemetry import TelemetryServer

log = logging.getLogger("logferry.agent")

_IDLE_POLL_S = 0.2


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.agent
        containers = self.settings.containers
        if not self.settings.include and not containers.enabled:
            raise ConfigError("agent.include is empty and agent.containers is not enabled: "
                              "give at least one glob of files to tail")
        self.host = self.settings.host or os.environ.get("NODE_NAME") or socket.gethostname()
        self.metrics = AgentMetrics()
        meta = containers.metadata
        self.pod_meta = PodMetadataCache(meta) if containers.enabled and meta.enabled else None
        self.sink = KafkaSink(config.kafka, self.settings)
        self._wake = asyncio.Event()
        self._rescan = asyncio.Event()
        self.files = FileSet(self.settings, self.host, self.metrics, self.pod_meta, self._wake,
                             self._rescan)
        self.tailers = self.files.tailers
        self.checkpoints = Checkpointer(CheckpointStore(self.settings.state_dir), self.metrics,
                                        self.settings.checkpoint_interval_s, self.tailers,
                                        self.files.handles)
        self._acked = asyncio.Event()
        self._connected = False
        self._telemetry: TelemetryServer | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        raise_fd_limit(self.settings.max_open_files)
        store = self.checkpoints.store
        self.files.start_at_end = self.settings.start_at == "end" and not store.exists()
        self.files.handles.restore(store.load())
        await self.sink.start()
        self._connected = True
        if self.pod_meta is not None:
            await self.pod_meta.start()
            # One bounded wait, so the first scan finds the node's pods already known.
            await self.pod_meta.wait_synced(self.settings.containers.metadata.wait_for_pod_s)
        log.info("agent started", extra={"host": self.host, "include": self.settings.include,
                                         "topic": self.sink.topic,
                                         "resumed_files": len(self.files.handles.closed),
                                         "max_open_files": self.settings.max_open_files,
                                         # False: built without a C compiler; the agent
                                         # then takes about a third more CPU a line.
                                         "c_scans": native.COMPILED})
        if self.settings.metrics_port is not None:
            self._telemetry = TelemetryServer(self.metrics.registry, self.health,
                                              self.settings.metrics_port)
            await self._telemetry.start()
        watcher = Watcher(self.files.watch_roots(), self._wake, self._rescan, self.files)
        watcher.start(asyncio.get_running_loop())
        try:
            with lean_gc():
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.checkpoints.run(stop))
                    await self._main_loop(stop)
        finally:
            watcher.stop()
            await self._shutdown()

    async def _shutdown(self) -> None:
        self.files.cancel_pending()
        if self.pod_meta is not None:
            await self.pod_meta.stop()
        # Graceful stop: everything sent gets its ack (or fails), then the checkpoint records it.
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self.sink.flush(), self.config.kafka.request_timeout_s)
        await asyncio.sleep(0)  # let the ack callbacks of the flushed batches run
        self.checkpoints.save_now()
        await self.sink.stop()
        self.files.close_all()
        if self._telemetry is not None:
            await self._telemetry.stop()
        log.info("agent stopped", extra={"files": len(self.tailers)})

    def health(self) -> tuple[bool, str]:
        return (self._connected, "ok" if self._connected else "not connected to Kafka")

    # -- main loop --------------------------------------------------------------------------

    async def _main_loop(self, stop: asyncio.Event) -> None:
        next_scan = 0.0
        while not stop.is_set():
            now = time.monotonic()
            self._wake.clear()
            if now >= next_scan or self._rescan.is_set():
                self._rescan.clear()
                await self.files.scan()
                next_scan = now + self.settings.scan_interval_s
            self.files.rebalance(now)
            progressed = await self._pump()
            await self._finish_orphans()
            if not progressed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_any(stop), self._poll_s())

    def _poll_s(self) -> float:
        # Files waiting for a handle get one as soon as an open file has been idle long
        # enough, which no event announces.
        return PLAN_INTERVAL_S if self.files.handles.waiting else _IDLE_POLL_S

    async def _wait_any(self, stop: asyncio.Event) -> None:
        # An ack wakes us too: a file held back by its in-flight budget may read again.
        self._acked.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait()),
                   asyncio.ensure_future(self._acked.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _pump(self) -> bool:
        """Read and send one chunk from each file that has data. True if anything moved."""
        progressed = False
        now = time.monotonic()
        # Summed once per pass, then kept up to date by what this pass sends: re-summing every
        # file for every file would be quadratic in the number of files. Acks that land
        # meanwhile only make it an overestimate, which _pause re-checks.
        total = self._inflight_bytes()
        yielding = self.files.handles.yielding
        for key, tailer in list(self.tailers.items()):
            if key in yielding:
                continue  # its handle goes to a waiting file once its batches are acked
            if total >= self.settings.max_inflight_bytes:
                await self._pause()
                total = self._inflight_bytes()
            before = tailer.inflight_bytes
            if before >= self.settings.max_inflight_bytes_per_file:
                continue
            try:
                size = tailer.size()
            except OSError:
                continue
            if size != tailer.last_size:
                tailer.last_size = size
                tailer.last_growth = now
                tailer.waiting_for_newline = False
            if size < tailer.read_offset or (
                    tailer.last_growth == now and not still_matches(
                        tailer.fd, tailer.identity.fp, tailer.identity.fp_len)):
                # Shorter than what we read, or (checked once per growth, before reading
                # on) no longer starting with the line it was identified by.
                self.files.truncated(key, tailer, size)
                progressed = True
                continue
            if size == tailer.read_offset or tailer.waiting_for_newline:
                if tailer.pipeline.holding:
                    stale = tailer.pipeline.flush_stale(now)
                    if stale:
                        await self._send_records(tailer, stale, 0)
                        total += tailer.inflight_bytes - before
                        progressed = True
                continue
            chunk = await asyncio.to_thread(tailer.read_chunk, self.settings.read_chunk_bytes,
                                            self.settings.max_line_bytes)
            if chunk is None:
                tailer.waiting_for_newline = True
                continue
            if chunk.forced and not chunk.continued:
                # The first piece of a line over max_line_bytes (a re-read counts again).
                self.metrics.lines_split.inc()
            await self._send_chunk(tailer, chunk)
            total += tailer.inflight_bytes - before
            progressed = True
        return progressed

    async def _pause(self) -> None:
        self.metrics.paused.set(1)
        log.warning("reading paused: Kafka has not acknowledged max_inflight_bytes",
                    extra={"inflight_bytes": self._inflight_bytes()})
        while self._inflight_bytes() >= self.settings.max_inflight_bytes:
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), 1.0)
        self.metrics.paused.set(0)
        log.info("reading resumed")

    def _inflight_bytes(self) -> int:
        return sum(t.inflight_bytes for t in self.tailers.values())

    async def _send_chunk(self, tailer: FileTailer, chunk: Chunk) -> None:
        records = tailer.pipeline.process(chunk, time.monotonic())
        await self._send_records(tailer, records, chunk.end - chunk.start)

    async def _send_records(self, tailer: FileTailer, records: Records, nbytes: int) -> None:
        kind = tailer.pipeline.kind
        self.metrics.bytes_read.labels(kind).inc(nbytes)
        if not records:
            return
        key = tailer.key
        partition = self.sink.partition_for(key)
        generation = tailer.generation
        i = 0
        while i < len(records) and tailer.generation == generation:
            batch = self.sink.new_batch()
            taken, commit, lines = self.sink.fill(batch, key, records, i)
            await self._send_batch(tailer, batch, partition, commit, lines, generation)
            i += taken

    async def _send_batch(self, tailer: FileTailer, batch: object, partition: int,
                          end: int, count: int, generation: int) -> None:
        if count == 0 or tailer.generation != generation:
            return
        nbytes = batch.size()  # type: ignore[attr-defined]
        try:
            future = await self.sink.send(batch, partition)
        except KafkaError as exc:
            # Kafka did not even take the batch (down, or its buffer full for
            # request_timeout_s): forget what is unacknowledged and read it again later.
            self.metrics.produce_errors.inc()
            log.warning("Kafka is not accepting records; will re-read from the last "
                        "acknowledged offset", extra={"fid": tailer.fid, "error": repr(exc)})
            tailer.rewind()
            await asyncio.sleep(1.0)
            return
        tailer.track(end, nbytes, future)
        kind = tailer.pipeline.kind
        self.metrics.lines_read.labels(kind).inc(count)

        def _done(fut: asyncio.Future[object]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                self.metrics.produce_errors.inc()
                log.warning("Kafka did not acknowledge a batch; re-reading from the checkpoint",
                            extra={"fid": tailer.fid, "error": str(fut.exception()
                                                                   if not fut.cancelled()
                                                                   else "cancelled")})
            else:
                self.metrics.lines_acked.labels(kind).inc(count)
            self._acked.set()

        future.add_done_callback(_done)

    async def _finish_orphans(self) -> None:
        """Release rotated or deleted files once read to their end, acked and quiet."""
        now = time.monotonic()
        for key, tailer in list(self.tailers.items()):
            if not tailer.orphaned or now - tailer.last_growth < self.settings.rotate_wait_s:
                continue
            if tailer.inflight:
                continue
            try:
                size = tailer.size()
            except OSError:
                size = tailer.read_offset
            if size > tailer.read_offset:
                if not tailer.waiting_for_newline:
                    continue  # complete lines to read first (a copy adopted this pass)
                # A last line without its newline: nobody will finish it now, so send it.
                chunk = tailer.read_tail()
                if chunk is not None:
                    await self._send_chunk(tailer, chunk)
                continue
            if tailer.pipeline.holding:
                await self._send_records(tailer, tailer.pipeline.drain(), 0)
                continue
            log.info("released file", extra={"path": display_path(tailer.path),
                                              "fid": tailer.fid,
                                              "offset": tailer.acked_offset})
            self.files.release(key)

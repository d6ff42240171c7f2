"""The agent service: discover files, tail them, produce to Kafka, checkpoint what was acked.

Order of truth: a line is read, framed into a record, appended to a batch, and the batch is
sent; only when Kafka acknowledges the batch does the file's ``acked_offset`` move, and only
``acked_offset`` is written to the checkpoint. A crash anywhere re-reads from the last
checkpoint: lines may repeat (same file id and offset, so the indexer drops them), never vanish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from aiokafka.errors import KafkaError

from agent.checkpoint import CheckpointStore, FileCheckpoint
from agent.metrics import AgentMetrics
from agent.sinks.kafka import KafkaSink
from agent.sources.discovery import Discovery, Watcher
from agent.sources.identity import identify, still_matches
from agent.sources.kubernetes import PodFilter, PodLogRef, parse_pod_log_path, pod_glob
from agent.sources.pod_metadata import PodMeta, PodMetadataCache, k8s_fields, pod_allowed
from agent.sources.tailer import Chunk, FileTailer
from agent.stages.pipeline import ContainerPipeline, PlainPipeline, Records, multiline_rules
from logferry.config import Config
from logferry.errors import CheckpointError, ConfigError
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
        self.discovery = Discovery(self.settings.include, self.settings.exclude)
        self.pod_discovery = (Discovery([pod_glob(str(containers.root))],
                                        ["*.gz", "*.tmp", *self.settings.exclude])
                              if containers.enabled else None)
        self.pod_filter = PodFilter(containers.include_namespaces, containers.exclude_namespaces)
        self._plain_multiline = multiline_rules(self.settings.multiline)
        self._container_multiline = multiline_rules(containers.multiline)
        meta = containers.metadata
        self.pod_meta = PodMetadataCache(meta) if containers.enabled and meta.enabled else None
        # New container files waiting (briefly, each on its own) for their pod's metadata.
        self._pending_open: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._excluded: set[tuple[int, int]] = set()
        self.store = CheckpointStore(self.settings.state_dir)
        self.sink = KafkaSink(config.kafka, self.settings)
        self.tailers: dict[tuple[int, int], FileTailer] = {}
        self._saved: dict[tuple[int, int], FileCheckpoint] = {}
        self._first_start = False
        self._wake = asyncio.Event()
        self._rescan = asyncio.Event()
        self._acked = asyncio.Event()
        self._connected = False
        self._telemetry: TelemetryServer | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._first_start = not self.store.exists()
        self._saved = {(c.dev, c.ino): c for c in self.store.load()}
        await self.sink.start()
        self._connected = True
        if self.pod_meta is not None:
            await self.pod_meta.start()
            # One bounded wait, so the first scan finds the node's pods already known.
            await self.pod_meta.wait_synced(self.settings.containers.metadata.wait_for_pod_s)
        log.info("agent started", extra={"host": self.host, "include": self.settings.include,
                                         "topic": self.sink.topic,
                                         "resumed_files": len(self._saved)})
        if self.settings.metrics_port is not None:
            self._telemetry = TelemetryServer(self.metrics.registry, self.health,
                                              self.settings.metrics_port)
            await self._telemetry.start()
        roots = self.discovery.watch_roots() + (
            self.pod_discovery.watch_roots() if self.pod_discovery else [])
        watcher = Watcher(sorted(set(roots)), self._wake, self._rescan)
        watcher.start(asyncio.get_running_loop())
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._checkpoint_loop(stop))
                await self._main_loop(stop)
        finally:
            watcher.stop()
            await self._shutdown()

    async def _shutdown(self) -> None:
        for task in self._pending_open.values():
            task.cancel()
        if self.pod_meta is not None:
            await self.pod_meta.stop()
        # Graceful stop: everything sent gets its ack (or fails), then the checkpoint records it.
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self.sink.flush(), self.config.kafka.request_timeout_s)
        await asyncio.sleep(0)  # let the ack callbacks of the flushed batches run
        self._save_checkpoint()
        await self.sink.stop()
        for tailer in self.tailers.values():
            tailer.close()
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
                await self._scan()
                next_scan = now + self.settings.scan_interval_s
            progressed = await self._pump()
            await self._finish_orphans()
            if not progressed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_any(stop), _IDLE_POLL_S)

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

    def _discover(self) -> dict[str, PodLogRef | None]:
        found: dict[str, PodLogRef | None] = dict.fromkeys(self.discovery.scan())
        if self.pod_discovery is not None:
            for path in self.pod_discovery.scan():
                ref = parse_pod_log_path(path)
                if ref is not None and self.pod_filter.allows(ref.namespace):
                    found[path] = ref
        return found

    async def _scan(self) -> None:
        paths = await asyncio.to_thread(self._discover)
        seen: set[tuple[int, int]] = set()
        for path, ref in paths.items():
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            seen.add(key)
            tailer = self.tailers.get(key)
            if tailer is not None and not still_matches(tailer.fd, tailer.identity.fp,
                                                        tailer.identity.fp_len):
                # Truncated and already rewritten past where we were (copytruncate under a
                # fast writer): the size check cannot see it, the first line can.
                self._truncated(key, tailer, st.st_size)
                tailer = None
            if tailer is not None:
                if tailer.path != path:
                    log.info("file renamed", extra={"fid": tailer.fid, "from": tailer.path,
                                                    "to": path})
                    tailer.path = path
                    tailer.pipeline.path = path
                tailer.orphaned = False
                continue
            if ref is not None and self.pod_meta is not None:
                self._open_container(path, key, ref)
            else:
                self._open(path, ref)
        for key, tailer in self.tailers.items():
            if key in seen or tailer.orphaned:
                continue
            try:
                st = os.stat(tailer.path)
                same = (st.st_dev, st.st_ino) == key
            except OSError:
                same = False
            if not same or key not in seen:
                tailer.orphaned = True
                log.info("file rotated or deleted; reading it to its end",
                         extra={"fid": tailer.fid, "path": tailer.path})
        self._excluded &= seen
        self.metrics.files_watched.set(len(self.tailers))

    def _open_container(self, path: str, key: tuple[int, int], ref: PodLogRef) -> None:
        """Open a container file once its pod's metadata is known (or the wait expired),
        without holding up any other file."""
        assert self.pod_meta is not None
        if key in self._pending_open or key in self._excluded:
            return
        meta = self.pod_meta.get(ref.pod_uid)
        if meta is not None:
            self._open_if_allowed(path, key, ref, meta)
        else:
            self._pending_open[key] = asyncio.create_task(self._open_when_known(path, key, ref))

    async def _open_when_known(self, path: str, key: tuple[int, int], ref: PodLogRef) -> None:
        assert self.pod_meta is not None
        try:
            meta = await self.pod_meta.wait_for(
                ref.pod_uid, self.settings.containers.metadata.wait_for_pod_s)
        finally:
            self._pending_open.pop(key, None)
        if key not in self.tailers:
            self._open_if_allowed(path, key, ref, meta)
            self._wake.set()

    def _open_if_allowed(self, path: str, key: tuple[int, int], ref: PodLogRef,
                         meta: PodMeta | None) -> None:
        if not pod_allowed(meta, self.settings.containers):
            self._excluded.add(key)
            log.info("pod excluded by annotation or labels",
                     extra={"path": path, "namespace": ref.namespace, "pod": ref.pod})
            return
        self._open(path, ref, meta, expect_key=key)

    def _open(self, path: str, ref: PodLogRef | None, meta: PodMeta | None = None,
              expect_key: tuple[int, int] | None = None) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("cannot open file", extra={"path": path, "error": exc.strerror})
            return
        identity = identify(fd)
        if identity is None or (
                expect_key is not None and (identity.dev, identity.ino) != expect_key):
            # First line not complete yet (nothing to send anyway), or the path was renamed
            # while we waited for metadata: the next scan finds both files.
            os.close(fd)
            return
        key = (identity.dev, identity.ino)
        saved = self._saved.pop(key, None)
        if saved is not None and saved.fp == identity.fp and still_matches(
                fd, saved.fp, saved.fp_len):
            offset = saved.offset
        elif self._first_start and self.settings.start_at == "end":
            offset = _end_of_last_line(fd)
        else:
            offset = 0
        tailer = FileTailer(path, fd, identity, offset)
        tailer.key = self._record_key(identity.fid, ref)
        if ref is None:
            tailer.pipeline = PlainPipeline(self.host, path, identity.fid,
                                            self.settings.max_line_bytes,
                                            self._plain_multiline, offset)
        else:
            c = self.settings.containers
            tailer.pipeline = ContainerPipeline(
                self.host, path, identity.fid, k8s_fields(ref.wire_fields(), meta), c.format,
                c.partial_max_bytes, c.partial_timeout_s, self._container_multiline, offset)
        self.tailers[key] = tailer
        log.info("tailing file", extra={"path": path, "fid": identity.fid, "offset": offset,
                                        "kind": tailer.pipeline.kind})

    def _record_key(self, fid: str, ref: PodLogRef | None) -> bytes:
        mode = self.settings.partition_key
        if mode == "host":
            return self.host.encode()
        if mode == "pod" and ref is not None:
            return f"{ref.namespace}/{ref.pod}".encode()
        return fid.encode()

    async def _pump(self) -> bool:
        """Read and send one chunk from each file that has data. True if anything moved."""
        progressed = False
        now = time.monotonic()
        # Summed once per pass, then kept up to date by what this pass sends: re-summing every
        # file for every file would be quadratic in the number of files. Acks that land
        # meanwhile only make it an overestimate, which _pause re-checks.
        total = self._inflight_bytes()
        for key, tailer in list(self.tailers.items()):
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
                self._truncated(key, tailer, size)
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
            taken, commit = self.sink.fill(batch, key, records, i)
            await self._send_batch(tailer, batch, partition, commit, taken, generation)
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

    def _truncated(self, key: tuple[int, int], tailer: FileTailer, size: int) -> None:
        self.metrics.truncations.inc()
        log.warning("file truncated; it is read again from its start as a new file",
                    extra={"path": tailer.path, "fid": tailer.fid, "size": size,
                           "read_offset": tailer.read_offset})
        tailer.close()
        del self.tailers[key]
        self._rescan.set()  # the next scan opens it again under its new identity
        self._wake.set()

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
                # A last line without its newline: nobody will finish it now, so send it.
                chunk = tailer.read_tail()
                if chunk is not None:
                    await self._send_chunk(tailer, chunk)
                continue
            if tailer.pipeline.holding:
                await self._send_records(tailer, tailer.pipeline.drain(), 0)
                continue
            log.info("released file", extra={"path": tailer.path, "fid": tailer.fid,
                                              "offset": tailer.acked_offset})
            tailer.close()
            del self.tailers[key]

    # -- checkpoints ------------------------------------------------------------------------

    async def _checkpoint_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.checkpoint_interval_s)
            entries = self._checkpoint_entries()
            await asyncio.to_thread(self._write_checkpoint, entries)

    def _save_checkpoint(self) -> None:
        self._write_checkpoint(self._checkpoint_entries())

    def _checkpoint_entries(self) -> list[FileCheckpoint]:
        # Built on the event loop thread: the tailers are only ever mutated there.
        entries = [
            FileCheckpoint(t.fid, t.identity.dev, t.identity.ino, t.identity.fp,
                           t.identity.fp_len, t.path, t.acked_offset)
            for t in self.tailers.values()
        ]
        # Files not opened yet this run keep their saved position.
        entries.extend(self._saved.values())
        self.metrics.checkpoint_lag.set(
            sum(max(0, t.last_size - t.acked_offset) for t in self.tailers.values()))
        return entries

    def _write_checkpoint(self, entries: list[FileCheckpoint]) -> None:
        try:
            self.store.save(entries)
        except CheckpointError as exc:
            self.metrics.checkpoint_errors.inc()
            log.error("checkpoint write failed", extra={"error": str(exc)})


def _end_of_last_line(fd: int) -> int:
    size = os.fstat(fd).st_size
    tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
    cut = tail.rfind(b"\n")
    return 0 if cut < 0 else max(0, size - len(tail)) + cut + 1

"""Which log files the agent has open: found by the globs, opened within
``agent.max_open_files`` (:mod:`agent.handles` decides which wait and which close), followed
through renames, rotation, truncation and deletion.

Reading and sending are the agent's (:mod:`agent.app`); this module only opens and closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from agent.checkpointer import tailer_checkpoint
from agent.handles import ClosedFile, HandleLimiter, Key, OpenView, locate_all, stat_sig
from agent.metrics import AgentMetrics
from agent.sources.discovery import Discovery
from agent.sources.identity import identify, still_matches
from agent.sources.kubernetes import PodFilter, PodLogRef, parse_pod_log_path, pod_glob
from agent.sources.pod_metadata import PodMeta, PodMetadataCache, k8s_fields, pod_allowed
from agent.sources.tailer import FileTailer
from agent.stages.pipeline import ContainerPipeline, PlainPipeline, multiline_rules
from logferry.config import AgentSettings

log = logging.getLogger("logferry.agent")

# How often, while files wait for a handle, open files are looked over for one to close.
PLAN_INTERVAL_S = 0.05


class FileSet:
    def __init__(self, settings: AgentSettings, host: str, metrics: AgentMetrics,
                 pod_meta: PodMetadataCache | None, wake: asyncio.Event,
                 rescan: asyncio.Event) -> None:
        self.settings = settings
        self.host = host
        self.metrics = metrics
        self.pod_meta = pod_meta
        containers = settings.containers
        self.discovery = Discovery(settings.include, settings.exclude)
        self.pod_discovery = (Discovery([pod_glob(str(containers.root))],
                                        ["*.gz", "*.tmp", *settings.exclude])
                              if containers.enabled else None)
        self.pod_filter = PodFilter(containers.include_namespaces, containers.exclude_namespaces)
        self._plain_multiline = multiline_rules(settings.multiline)
        self._container_multiline = multiline_rules(containers.multiline)
        self.tailers: dict[Key, FileTailer] = {}
        self.handles = HandleLimiter(settings.max_open_files, settings.close_idle_s,
                                     settings.yield_after_s)
        # New container files waiting (briefly, each on its own) for their pod's metadata.
        self._pending_open: dict[Key, asyncio.Task[None]] = {}
        self._excluded: set[Key] = set()
        # start_at = "end" is for the files already there at a first start, i.e. those found
        # by its first scan; files created later are read from their beginning.
        self.start_at_end = False
        self._next_plan = 0.0
        self._wake = wake
        self._rescan = rescan

    def watch_roots(self) -> list[str]:
        roots = self.discovery.watch_roots() + (
            self.pod_discovery.watch_roots() if self.pod_discovery else [])
        return sorted(set(roots))

    def release(self, key: Key) -> None:
        """Let go of an open file for good (rotated away or deleted, and finished)."""
        self.tailers.pop(key).close()
        self.handles.released(key)

    def cancel_pending(self) -> None:
        for task in self._pending_open.values():
            task.cancel()

    def close_all(self) -> None:
        for tailer in self.tailers.values():
            tailer.close()

    def discover(self) -> dict[str, PodLogRef | None]:
        found: dict[str, PodLogRef | None] = dict.fromkeys(self.discovery.scan())
        if self.pod_discovery is not None:
            for path in self.pod_discovery.scan():
                ref = parse_pod_log_path(path)
                if ref is not None and self.pod_filter.allows(ref.namespace):
                    found[path] = ref
        return found

    async def scan(self) -> None:
        paths = await asyncio.to_thread(self.discover)
        seen: set[Key] = set()
        start_at_end = self.start_at_end
        self.start_at_end = False
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
                self.truncated(key, tailer, st.st_size)
                tailer = None
            if tailer is not None:
                if tailer.path != path:
                    log.info("file renamed", extra={"fid": tailer.fid, "from": tailer.path,
                                                    "to": path})
                    tailer.path = path
                    tailer.pipeline.path = path
                tailer.orphaned = False
                continue
            if key not in self._excluded:
                self.handles.found(key, path, ref, stat_sig(st),
                                   st.st_size if start_at_end else None)
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
        unseen = self.handles.unseen(seen)
        if unseen:
            where = await asyncio.to_thread(locate_all, unseen)
            for entry in self.handles.relocate(where):
                self._vanished(entry)
        self._excluded &= seen

    def _vanished(self, entry: ClosedFile) -> None:
        unread = entry.unread_bytes()
        if unread == 0:
            return
        self.metrics.files_vanished_unread.inc()
        log.warning("file deleted while waiting for a handle: its unread lines are lost "
                    "(raise agent.max_open_files)",
                    extra={"path": entry.path, "unread_bytes": unread,
                           "fid": entry.checkpoint.fid if entry.checkpoint else None,
                           "max_open_files": self.handles.max_open})

    # -- handles ----------------------------------------------------------------------------

    def rebalance(self, now: float) -> None:
        """Close idle (or yielding) files while others wait, then open waiting files."""
        handles = self.handles
        if handles.waiting and handles.free <= 0 and now >= self._next_plan:
            self._next_plan = now + PLAN_INTERVAL_S
            views = {key: view(t) for key, t in self.tailers.items()}
            for key in handles.to_close(now, views):
                self._close(key)
        self._fill_slots()
        handles.note_limit()
        self.metrics.files_open.set(len(self.tailers))
        self.metrics.files_waiting.set(handles.waiting)
        self.metrics.files_watched.set(len(self.tailers) + len(handles.closed))

    def _fill_slots(self) -> None:
        while (picked := self.handles.next_to_open()) is not None:
            key, entry = picked
            meta = None
            if entry.ref is not None and self.pod_meta is not None:
                meta = self.pod_meta.get(entry.ref.pod_uid) or entry.meta
                if not entry.opened:
                    if meta is None:
                        # Without holding up any other file (its handle stays reserved).
                        self._pending_open[key] = asyncio.create_task(
                            self._open_when_known(key, entry.ref))
                        continue
                    if not pod_allowed(meta, self.settings.containers):
                        self._exclude(key, entry.path, entry.ref)
                        continue
            self._open(key, entry, meta)

    async def _open_when_known(self, key: Key, ref: PodLogRef) -> None:
        assert self.pod_meta is not None
        try:
            meta = await self.pod_meta.wait_for(
                ref.pod_uid, self.settings.containers.metadata.wait_for_pod_s)
        finally:
            self._pending_open.pop(key, None)
        entry = self.handles.closed.get(key)
        if entry is None or key in self.tailers:
            self.handles.not_opened(key)
        elif not pod_allowed(meta, self.settings.containers):
            self._exclude(key, entry.path, ref)
        else:
            self._open(key, entry, meta)
        self._wake.set()

    def _exclude(self, key: Key, path: str, ref: PodLogRef) -> None:
        self._excluded.add(key)
        self.handles.not_opened(key)
        log.info("pod excluded by annotation or labels",
                 extra={"path": path, "namespace": ref.namespace, "pod": ref.pod})

    def _open(self, key: Key, entry: ClosedFile, meta: PodMeta | None) -> None:
        path = entry.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("cannot open file", extra={"path": path, "error": exc.strerror})
            self.handles.not_opened(key)
            return
        st = os.fstat(fd)
        identity = identify(fd) if (st.st_dev, st.st_ino) == key else None
        if identity is None:
            os.close(fd)
            if (st.st_dev, st.st_ino) == key:
                # First line not complete yet: nothing to send, look again once it changes.
                self.handles.not_opened(key, stat_sig(st))
            else:
                # Renamed since the scan, another file took the name: the next scan finds both.
                self.handles.not_opened(key)
            return
        saved = entry.checkpoint
        resumed = saved is not None and saved.fp == identity.fp and still_matches(
            fd, saved.fp, saved.fp_len)
        if saved is not None and resumed:
            offset = saved.offset
        elif saved is not None and entry.rotated_out:
            # Found outside the globs by its inode number alone, and it is not the file that
            # had this number: not ours to read.
            os.close(fd)
            self.handles.forget(key)
            return
        elif entry.end_limit is not None:
            offset = end_of_last_line(fd, entry.end_limit)
        else:
            offset = 0
        ref = entry.ref
        tailer = FileTailer(path, fd, identity, offset)
        tailer.orphaned = entry.rotated_out
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
        self.handles.opened(key, time.monotonic(), ref, meta)
        # Closing and reopening for the handle limit is routine: not worth a line each time.
        again = entry.opened and resumed
        log.log(logging.DEBUG if again else logging.INFO,
                "reopened file" if again else "tailing file",
                extra={"path": path, "fid": identity.fid, "offset": offset,
                       "kind": tailer.pipeline.kind})

    def _close(self, key: Key) -> None:
        """Give up an open file's handle, keeping its position, if that loses nothing."""
        tailer = self.tailers[key]
        try:
            st = os.stat(tailer.path)
            fst = os.fstat(tailer.fd)
        except OSError:
            return
        if (st.st_dev, st.st_ino) != key or tailer.inflight:
            # Renamed away or deleted since the last scan: only this handle can still read
            # it, so it stays open (the scan orphans it). In flight: its acks move it still.
            return
        caught_up = view(tailer).caught_up and fst.st_size == tailer.last_size
        if not caught_up and key not in self.handles.yielding:
            return  # grew since it was found idle: read on
        self.handles.closed_file(key, tailer.path, tailer_checkpoint(tailer), stat_sig(fst),
                                 caught_up)
        tailer.close()
        del self.tailers[key]
        self.metrics.files_closed_idle.inc()
        log.debug("closed file to free its handle",
                  extra={"path": tailer.path, "fid": tailer.fid,
                         "offset": tailer.acked_offset, "caught_up": caught_up})

    def _record_key(self, fid: str, ref: PodLogRef | None) -> bytes:
        mode = self.settings.partition_key
        if mode == "host":
            return self.host.encode()
        if mode == "pod" and ref is not None:
            return f"{ref.namespace}/{ref.pod}".encode()
        return fid.encode()

    def truncated(self, key: Key, tailer: FileTailer, size: int) -> None:
        self.metrics.truncations.inc()
        log.warning("file truncated; it is read again from its start as a new file",
                    extra={"path": tailer.path, "fid": tailer.fid, "size": size,
                           "read_offset": tailer.read_offset})
        tailer.close()
        del self.tailers[key]
        self.handles.released(key)
        self._rescan.set()  # the next scan opens it again under its new identity
        self._wake.set()


def view(tailer: FileTailer) -> OpenView:
    settled = not tailer.inflight
    return OpenView(
        tailer.last_growth, settled,
        settled and tailer.acked_offset == tailer.read_offset and not tailer.pipeline.holding
        and (tailer.last_size == tailer.read_offset or tailer.waiting_for_newline),
        tailer.orphaned)


def end_of_last_line(fd: int, limit: int) -> int:
    """Where the last complete line before ``limit`` ends (``limit``: the size when found)."""
    size = min(os.fstat(fd).st_size, limit)
    tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
    cut = tail.rfind(b"\n")
    return 0 if cut < 0 else max(0, size - len(tail)) + cut + 1

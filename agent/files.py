"""Which log files the agent has open: found by the globs, opened within
``agent.max_open_files`` (:mod:`agent.handles` decides which wait and which close), followed
through renames, rotation, truncation and deletion.

Rotation, the two ways:

- Rename (kubelet: ``0.log`` -> ``0.log.<stamp>``, logrotate's default): the renamed file is
  the same file (device + inode). Kubelet's rotated names are matched too, so a file created
  and rotated away between two scans is still found and read from its start; a rotated file is
  read to its end and released once quiet for ``rotate_wait_s``, and stays known (final offset,
  also in the checkpoint) while it exists, so no later scan or restart reads it again.
- copytruncate: when a file turns out truncated, the copy logrotate just made next to it
  (``app.log.1``, ``app.log-20261126``: same first line, at least as long as what was read) is
  read from where reading was to its end, under the file's id and offsets, so the lines written
  just before the truncation are not lost; then the truncated file is read from 0 as a new file.
  The copy is in the checkpoint while it is read, and a file found rewritten when it is opened
  again (the agent was down, or had closed it for the handle limit) gets the same search from
  its checkpoint offset: a crash between noticing the truncation and finishing the copy loses
  nothing either, unless the copy itself was deleted or compressed meanwhile.

Reading and sending are the agent's (:mod:`agent.app`); this module only opens and closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable

from agent.checkpoint import FileCheckpoint
from agent.checkpointer import tailer_checkpoint
from agent.handles import (
    ClosedFile,
    HandleLimiter,
    Key,
    OpenView,
    locate_all,
    names_file,
    stat_sig,
)
from agent.metrics import AgentMetrics
from agent.paths import display_path
from agent.sources.copies import Copy, find_copy
from agent.sources.discovery import Discovery
from agent.sources.identity import FileIdentity, identify, still_matches
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
        # Paths found before their first line was complete: a write to one is looked at now.
        self._unborn: set[str] = set()
        # What the latest scan matched: a file released while matched stays known.
        self._matched: set[Key] = set()
        # Open copies of truncated files (copytruncate), read to their end under the id of
        # the file they copy -> their size when found.
        self._copies: dict[Key, int] = {}

    def watch_roots(self) -> list[str]:
        roots = sorted(set(self.discovery.watch_roots() + (
            self.pod_discovery.watch_roots() if self.pod_discovery else [])))
        # Recursive watches: one inside another would report every event twice.
        return [r for r in roots if not any(
            other != r and r.startswith(other.rstrip("/") + "/") for other in roots)]

    # -- writes to files not identified yet (agent.sources.discovery.WriteWatch) -------------

    def wants(self, path: str) -> bool:
        # Watchdog's thread: a set lookup, while the loop may change the set.
        return path in self._unborn

    def written(self, path: str) -> None:
        """A file found before its first line was complete was written to: look at it now."""
        if path not in self._unborn:
            return
        try:
            st = os.stat(path)
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        entry = self.handles.closed.get(key)
        if entry is not None and entry.path == path and key not in self._excluded:
            self.handles.found(key, path, entry.ref, stat_sig(st), entry.end_limit,
                               entry.finish)
            self._wake.set()

    def release(self, key: Key) -> None:
        """Let go of an open file for good (rotated away or deleted, and finished)."""
        tailer = self.tailers.pop(key)
        self._copies.pop(key, None)
        keep = None
        if key in self._matched:
            try:
                st = os.fstat(tailer.fd)
                if st.st_nlink > 0 and names_file(key, tailer.path):
                    keep = st
            except OSError:
                pass
        tailer.close()
        if keep is None:
            self.handles.released(key)
        else:
            # A later scan finds it again: known, it is not read a second time.
            cp = dataclasses.replace(tailer_checkpoint(tailer), finish=True)
            self.handles.finished(key, tailer.path, cp, stat_sig(keep))

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
        self._unborn.intersection_update(paths)
        for path, ref in paths.items():
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            seen.add(key)
            # A kubelet-rotated name: never written again once the runtime reopened.
            finish = ref is not None and ref.rotated is not None
            tailer = self.tailers.get(key)
            if tailer is not None and not still_matches(tailer.fd, tailer.identity.fp,
                                                        tailer.identity.fp_len):
                # Truncated and already rewritten past where we were (copytruncate under a
                # fast writer): the size check cannot see it, the first line can.
                self.truncated(key, tailer, st.st_size)
                tailer = None
            if tailer is not None:
                if tailer.path != path:
                    log.info("file renamed", extra={"fid": tailer.fid,
                                                    "from": display_path(tailer.path),
                                                    "to": display_path(path)})
                    tailer.path = path
                    tailer.pipeline.path = display_path(path)
                tailer.orphaned = finish or key in self._copies
                continue
            if key not in self._excluded:
                self.handles.found(key, path, ref, stat_sig(st),
                                   st.st_size if start_at_end else None, finish)
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
                         extra={"fid": tailer.fid, "path": display_path(tailer.path)})
        self._matched = seen
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
                    extra={"path": display_path(entry.path), "unread_bytes": unread,
                           "fid": entry.checkpoint.fid if entry.checkpoint else None,
                           "max_open_files": self.handles.max_open})

    # -- handles ----------------------------------------------------------------------------

    def rebalance(self, now: float) -> None:
        """Close idle (or yielding) files while others wait, then open waiting files."""
        handles = self.handles
        if handles.yielding and not handles.waiting:
            # Nothing waits for their handles any more (a waiting file went away): read on.
            handles.yielding.clear()
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
                 extra={"path": display_path(path), "namespace": ref.namespace,
                        "pod": ref.pod})

    def _open(self, key: Key, entry: ClosedFile, meta: PodMeta | None) -> None:
        path = entry.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("cannot open file", extra={"path": display_path(path),
                                                   "error": exc.strerror})
            self.handles.not_opened(key)
            return
        st = os.fstat(fd)
        identity = identify(fd) if (st.st_dev, st.st_ino) == key else None
        if identity is None:
            os.close(fd)
            if (st.st_dev, st.st_ino) == key:
                # First line not complete yet: nothing to send, look again once it changes.
                self.handles.not_opened(key, stat_sig(st))
                self._unborn.add(path)
            else:
                # Renamed since the scan, another file took the name: the next scan finds both.
                self.handles.not_opened(key)
            return
        self._unborn.discard(path)
        saved = entry.checkpoint
        resumed = saved is not None and saved.fp == identity.fp and still_matches(
            fd, saved.fp, saved.fp_len)
        if saved is not None and resumed:
            offset = saved.offset
            if saved.fid != identity.fid:
                # A copytruncate copy, read under the id of the file it copies.
                identity = dataclasses.replace(identity, origin=saved.fid)
        elif saved is not None and entry.rotated_out:
            # Found outside the globs by its inode number alone, and it is not the file that
            # had this number: not ours to read.
            os.close(fd)
            self.handles.forget(key)
            return
        elif saved is not None:
            # Rewritten since its checkpoint (truncated, or replaced on the same inode) while
            # no handle was on it. Its handle goes to its copy, if there is one (what it held
            # after the checkpoint is there); it is read as a new file after the next scan.
            os.close(fd)
            entry.checkpoint = None
            self.handles.not_opened(key)
            self._rescan.set()
            self._open_copy(key, path, saved, entry.ref, meta)
            return
        elif entry.end_limit is not None:
            offset = end_of_last_line(fd, entry.end_limit)
        else:
            offset = 0
        ref = entry.ref
        tailer = self._new_tailer(path, fd, identity, offset, ref, meta)
        tailer.orphaned = entry.finish or entry.rotated_out
        self.tailers[key] = tailer
        self.handles.opened(key, time.monotonic(), ref, meta)
        # Closing and reopening for the handle limit is routine: not worth a line each time.
        again = entry.opened and resumed
        log.log(logging.DEBUG if again else logging.INFO,
                "reopened file" if again else "tailing file",
                extra={"path": display_path(path), "fid": identity.fid, "offset": offset,
                       "kind": tailer.pipeline.kind})

    def _new_tailer(self, path: str, fd: int, identity: FileIdentity, offset: int,
                    ref: PodLogRef | None, meta: PodMeta | None) -> FileTailer:
        tailer = FileTailer(path, fd, identity, offset)
        tailer.key = self._record_key(identity.fid, ref)
        # Records carry the name as text; the raw one (maybe not UTF-8) is for opening.
        shown = display_path(path)
        if ref is None:
            tailer.pipeline = PlainPipeline(self.host, shown, identity.fid,
                                            self.settings.max_line_bytes,
                                            self._plain_multiline, offset)
        else:
            c = self.settings.containers
            tailer.pipeline = ContainerPipeline(
                self.host, shown, identity.fid, k8s_fields(ref.wire_fields(), meta), c.format,
                c.partial_max_bytes, c.partial_timeout_s, self._container_multiline, offset)
        return tailer

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
                  extra={"path": display_path(tailer.path), "fid": tailer.fid,
                         "offset": tailer.acked_offset, "caught_up": caught_up})

    def _record_key(self, fid: str, ref: PodLogRef | None) -> bytes:
        mode = self.settings.partition_key
        if mode == "host":
            return self.host.encode()
        if mode == "pod" and ref is not None:
            return f"{ref.namespace}/{ref.pod}".encode()
        return fid.encode()

    def truncated(self, key: Key, tailer: FileTailer, size: int) -> None:
        """``tailer``'s file is shorter than what was read, or starts with other bytes."""
        del self.tailers[key]
        info = self.handles.released(key)
        tailer.close()  # first: its handle goes to the copy
        self._rescan.set()  # the next scan opens it again under its new identity
        self._wake.set()
        if key in self._copies:
            self._dropped_copy(key, tailer)
            return
        self.metrics.truncations.inc()
        ident = tailer.identity
        copy = find_copy(tailer.path, ident.fp, ident.fp_len, tailer.read_offset, key,
                         self._known_as(ident.fp))
        extra = {"path": display_path(tailer.path), "fid": tailer.fid, "size": size,
                 "read_offset": tailer.read_offset}
        if copy is None or not self._take_copy_key(copy):
            log.warning("file truncated; it is read again from its start as a new file",
                        extra=extra)
            return
        # The same tailer reads on: its position, in-flight batches and held lines (a
        # multi-line event, a partial CRI line) all continue in the copy.
        copy_key = (copy.st.st_dev, copy.st.st_ino)
        tailer.fd = copy.fd
        tailer.path = copy.path
        tailer.pipeline.path = display_path(copy.path)
        tailer.identity = FileIdentity(copy_key[0], copy_key[1], ident.fp, ident.fp_len,
                                       origin=tailer.fid)
        self._adopt_copy(copy_key, tailer, copy, info.ref if info else None,
                         info.meta if info else None)
        # Nothing lost: not worth a warning, which says lines were.
        log.info("file truncated; the lines not read yet are read from its copy, then it is "
                 "read again from its start as a new file",
                 extra={**extra, "copy": display_path(copy.path), "copy_size": copy.st.st_size})

    def _open_copy(self, key: Key, path: str, saved: FileCheckpoint, ref: PodLogRef | None,
                   meta: PodMeta | None) -> None:
        """Read the copy of a file found rewritten since its checkpoint ``saved``, if any."""
        copy = find_copy(path, saved.fp, saved.fp_len, saved.offset, key,
                         self._known_as(saved.fp))
        extra = {"path": display_path(path), "fid": saved.fid, "offset": saved.offset}
        if copy is None or not self._take_copy_key(copy):
            log.info("file rewritten since its checkpoint (truncated, or a new file on the "
                     "same inode); it is read from its start as a new file", extra=extra)
            return
        copy_key = (copy.st.st_dev, copy.st.st_ino)
        identity = FileIdentity(copy_key[0], copy_key[1], saved.fp, saved.fp_len,
                                origin=saved.fid)
        tailer = self._new_tailer(copy.path, copy.fd, identity, saved.offset, ref, meta)
        self._adopt_copy(copy_key, tailer, copy, ref, meta)
        log.info("file truncated while it was not open; the lines after its checkpoint are "
                 "read from its copy, then it is read from its start as a new file",
                 extra={**extra, "copy": display_path(copy.path), "copy_size": copy.st.st_size})

    def _known_as(self, fp: str) -> Callable[[Key], bool]:
        """Whether a file is one the agent reads in its own right, starting with the bytes of
        ``fp``: a rotated sibling with the same first line, not a copy (reading it as one too
        would send its lines twice, under two ids)."""

        def known(key: Key) -> bool:
            if key in self.tailers:
                return key not in self._copies  # an earlier copy on this inode: overwritten
            entry = self.handles.closed.get(key)
            return entry is not None and entry.checkpoint is not None and (
                entry.checkpoint.fp == fp)

        return known

    def _take_copy_key(self, copy: Copy) -> bool:
        """Make room for reading ``copy`` under its own key; False (``copy`` closed) when
        the globs match it and it is read as a file of its own."""
        copy_key = (copy.st.st_dev, copy.st.st_ino)
        other = self.tailers.get(copy_key)
        if other is not None:
            if copy_key not in self._copies:
                os.close(copy.fd)
                return False
            del self.tailers[copy_key]
            self.handles.released(copy_key)
            other.close()
            self._dropped_copy(copy_key, other)
        return True

    def _dropped_copy(self, key: Key, tailer: FileTailer) -> None:
        """A copy overwritten (logrotate copies onto the same app.log.1 every time) before
        it was finished: what it still had to give is gone from the disk."""
        unread = self._copies.pop(key) - tailer.read_offset
        log.log(logging.WARNING if unread > 0 or tailer.inflight else logging.DEBUG,
                "copy of a truncated file overwritten before it was finished; its lines not "
                "read or not acknowledged yet are lost",
                extra={"path": display_path(tailer.path), "fid": tailer.fid,
                       "read_offset": tailer.read_offset, "unread_bytes": max(0, unread),
                       "acked_offset": tailer.acked_offset})

    def _adopt_copy(self, copy_key: Key, tailer: FileTailer, copy: Copy,
                    ref: PodLogRef | None, meta: PodMeta | None) -> None:
        tailer.orphaned = True
        tailer.waiting_for_newline = False
        # A copy is complete when found: released as soon as it is read and acknowledged,
        # without waiting rotate_wait_s for writes that cannot come.
        tailer.last_size = copy.st.st_size
        tailer.last_growth = float("-inf")
        self.tailers[copy_key] = tailer
        self._copies[copy_key] = copy.st.st_size
        # Replaces any entry an earlier copy on this inode left.
        self.handles.opened(copy_key, time.monotonic(), ref, meta)


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

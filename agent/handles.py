"""At most ``agent.max_open_files`` log files open at once, without losing or repeating lines.

Like Filebeat's ``harvester_limit`` and ``close_inactive``, minus their silent losses:

- A file found while every handle is taken *waits*: the agent keeps its path and stat, no
  descriptor. Waiting files get handles in order as they free up; files seen under a new name
  (rotated) go first, since they are the ones about to be compressed or deleted.
- While files wait, an open file that has been idle at its end for ``close_idle_s``, with every
  line it read acknowledged by Kafka, is *closed*. Its checkpoint (dev + inode + fingerprint,
  offset) stays, in memory and in the checkpoint file, with the file's size and mtime at
  closing. Every scan stats it (no descriptor needed); when either changed, it waits for a
  handle again and is continued from its offset, after its fingerprint is checked (a new file
  on a reused inode is read from its start).
- While files wait, a file that has held its handle for ``yield_after_s`` stops reading and is
  closed once Kafka acknowledged what it sent, even if busy, then queues again behind the
  others: busy files take turns instead of starving the queue forever.
- A closed file that was renamed is found again by dev + inode: under its new name if the
  globs match it (kubelet's ``0.log`` -> ``0.log.<timestamp>``), otherwise as a sibling in its
  directory (logrotate's ``app.log`` -> ``app.log.1``). It is continued from its checkpoint;
  outside the globs it is read to its end and released, like a rotated file that stayed open.
- A file read to its end and released (rotated, or a copytruncate copy) that the globs still
  match stays known, with its final offset, for as long as it exists (also in the checkpoint,
  so across restarts): a later scan finding it again reads nothing twice, and a line appended
  after all is read from where it stopped. Like every entry, it goes once the file is gone.

The remaining loss, only while the limit is reached: a file deleted (or moved out of its
directory) while it has no handle cannot be read any more. That is a waiting file that never
got a handle, or a closed file whose new lines were not read yet. When a scan had seen those
unread bytes the loss is logged and counted (``logferry_agent_files_vanished_unread``); bytes
appended less than one scan before the deletion are not seen at all. A file with a handle is,
as always, read to its end after deletion. Renames within the directory lose nothing.

Nothing here opens or closes a file: :class:`HandleLimiter` decides, the agent does the I/O.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from agent.checkpoint import FileCheckpoint
from agent.paths import display_path
from agent.sources.kubernetes import PodLogRef
from agent.sources.pod_metadata import PodMeta

log = logging.getLogger("logferry.agent")

# Descriptors the agent needs besides log files: Kafka and API connections, the metrics server,
# epoll, inotify, directory listings of a scan, the checkpoint being written.
OTHER_FDS = 128

Key = tuple[int, int]  # (st_dev, st_ino)
Sig = tuple[int, int]  # (st_size, st_mtime_ns): what a scan compares to see a closed file change


def stat_sig(st: os.stat_result) -> Sig:
    return (st.st_size, st.st_mtime_ns)


@dataclass(slots=True)
class ClosedFile:
    """A file the agent knows of but holds no descriptor for."""

    path: str
    ref: PodLogRef | None = None
    # Where to continue; None: never read (a new file waiting for its first handle).
    checkpoint: FileCheckpoint | None = None
    # Stat when the agent last had it open with nothing left to read. None: it must be opened
    # to know (waiting for its first handle, restored from the checkpoint file, or closed with
    # lines left to read).
    sig: Sig | None = None
    # Stat at the latest scan.
    seen: Sig | None = None
    meta: PodMeta | None = None
    # It had a handle during this run: its pod's metadata is not waited for again.
    opened: bool = False
    # start_at = "end" on a first start: read from the last line that was there when found.
    end_limit: int | None = None
    # Found by its inode number alone, under a name the globs do not match: read it to its end
    # if it still is the file of the checkpoint, else it is none of the agent's business.
    rotated_out: bool = False
    # Read it to its end, then let it go (rotated, or a copytruncate copy: never written
    # again). With ``sig`` set, it was read to its end and released already.
    finish: bool = False

    @property
    def changed(self) -> bool:
        return self.sig is None or self.seen != self.sig

    def unread_bytes(self) -> int:
        """Bytes a scan saw that were never read (0 when unknown or nothing new)."""
        if not self.changed or self.seen is None:
            return 0
        base = (self.checkpoint.offset if self.checkpoint is not None
                else self.end_limit or 0)
        return max(0, self.seen[0] - base)

    def move(self, path: str) -> None:
        self.path = path
        if self.checkpoint is not None:
            self.checkpoint = dataclasses.replace(self.checkpoint, path=path)

    def saved(self) -> FileCheckpoint | None:
        cp = self.checkpoint
        if cp is None or cp.finish == self.finish:
            return cp
        return dataclasses.replace(cp, finish=self.finish)


@dataclass(frozen=True, slots=True)
class OpenView:
    """What the limiter needs to know about an open file to take its handle away."""

    last_growth: float
    # Every batch sent was acknowledged (none in flight).
    settled: bool
    # Settled, read to the end of its last complete line, and nothing held back (a partial
    # line or multi-line event): closing it now leaves nothing behind its checkpoint.
    caught_up: bool
    # Renamed out of the globs or deleted: only its descriptor can still read it.
    orphaned: bool


@dataclass(slots=True)
class _Open:
    opened_at: float
    ref: PodLogRef | None
    meta: PodMeta | None


class HandleLimiter:
    def __init__(self, max_open: int, close_idle_s: float, yield_after_s: float) -> None:
        self.max_open = max_open
        self.close_idle_s = close_idle_s
        self.yield_after_s = yield_after_s
        self.closed: dict[Key, ClosedFile] = {}
        self.open: dict[Key, _Open] = {}
        # Handed out by next_to_open and not opened yet (e.g. waiting for pod metadata).
        self.reserved: set[Key] = set()
        # Open files that stopped reading so that their handle goes to a waiting file.
        self.yielding: set[Key] = set()
        # OrderedDict: popping the oldest entry is O(1), which a plain dict's is not after many
        # deletions at its front (10 000 files queued at once).
        self._urgent: OrderedDict[Key, None] = OrderedDict()
        self._queue: OrderedDict[Key, None] = OrderedDict()
        self._at_limit = False

    @property
    def waiting(self) -> int:
        return len(self._urgent) + len(self._queue)

    @property
    def free(self) -> int:
        return self.max_open - len(self.open) - len(self.reserved)

    def restore(self, checkpoints: Iterable[FileCheckpoint]) -> None:
        """Positions from the checkpoint file: each file is opened once found by a scan."""
        for cp in checkpoints:
            self.closed[(cp.dev, cp.ino)] = ClosedFile(cp.path, checkpoint=cp, finish=cp.finish)

    def checkpoints(self) -> Iterator[FileCheckpoint]:
        for entry in self.closed.values():
            cp = entry.saved()
            if cp is not None:
                yield cp

    # -- what a scan found --------------------------------------------------------------------

    def found(self, key: Key, path: str, ref: PodLogRef | None, sig: Sig,
              end_limit: int | None = None, finish: bool = False) -> None:
        """A scan matched ``path`` (no open descriptor has this key). ``finish``: the name is
        a rotated one (read to its end, then released); such files go first."""
        entry = self.closed.get(key)
        urgent = False
        if entry is None:
            entry = self.closed[key] = ClosedFile(path, ref, end_limit=end_limit)
            urgent = finish
        elif entry.path != path:
            # A checkpoint holds a name that is not UTF-8 as display text: the same name.
            if entry.path != display_path(path):
                log.info("closed file renamed", extra={
                    "fid": entry.checkpoint.fid if entry.checkpoint else None,
                    "from": display_path(entry.path), "to": display_path(path)})
                urgent = True
            entry.move(path)
        entry.rotated_out = False
        entry.finish = finish
        entry.ref = ref
        entry.seen = sig
        if entry.changed:
            self._enqueue(key, urgent)

    def unseen(self, seen: set[Key]) -> list[tuple[Key, str]]:
        """Closed files the last scan did not match, to :meth:`relocate`."""
        return [(key, entry.path) for key, entry in self.closed.items()
                if key not in seen and key not in self.reserved]

    def relocate(self, where: Mapping[Key, str | None]) -> list[ClosedFile]:
        """Apply where unmatched closed files are now (see :class:`Locator`).

        A file still at its path is kept (present, if not matched); one found under another
        name is read to its end; one found nowhere is forgotten, with its checkpoint entry, so
        the checkpoint does not grow forever. Returns the forgotten ones.

        A file to finish (a rotated file or a copy, from the checkpoint) that was not read to
        its end in this run yet is read to its end, wherever it is; one that was just follows
        its renames.
        """
        gone: list[ClosedFile] = []
        for key, path in where.items():
            entry = self.closed.get(key)
            if entry is None or key in self.reserved:
                continue
            if path is None:
                self.forget(key)
                gone.append(entry)
            elif entry.finish and entry.sig is not None:
                if path != entry.path:
                    entry.move(path)
            elif path != entry.path or entry.finish:
                if path != entry.path:
                    log.info("closed file renamed out of the globs; reading it to its end",
                             extra={"fid": entry.checkpoint.fid if entry.checkpoint else None,
                                    "from": display_path(entry.path),
                                    "to": display_path(path)})
                entry.move(path)
                entry.rotated_out = True
                entry.finish = True
                self._enqueue(key, urgent=True)
        return gone

    def forget(self, key: Key) -> None:
        self.closed.pop(key, None)
        self._urgent.pop(key, None)
        self._queue.pop(key, None)
        self.reserved.discard(key)

    def _enqueue(self, key: Key, urgent: bool) -> None:
        if key in self.reserved or key in self.open:
            return
        if urgent:
            if key not in self._urgent:
                self._queue.pop(key, None)
                self._urgent[key] = None
        elif key not in self._urgent and key not in self._queue:
            self._queue[key] = None

    # -- handing out handles ------------------------------------------------------------------

    def next_to_open(self) -> tuple[Key, ClosedFile] | None:
        """The next waiting file, if a handle is free. The caller must then report
        :meth:`opened` or :meth:`not_opened` (or :meth:`forget`) for it."""
        while self.free > 0:
            queue = self._urgent or self._queue
            if not queue:
                return None
            key, _ = queue.popitem(last=False)
            entry = self.closed.get(key)
            if entry is not None:
                self.reserved.add(key)
                return key, entry
        return None

    def opened(self, key: Key, now: float, ref: PodLogRef | None, meta: PodMeta | None) -> None:
        self.forget(key)
        self.open[key] = _Open(now, ref, meta)

    def not_opened(self, key: Key, sig: Sig | None = None) -> None:
        """The open did not happen. With ``sig`` (its first line is not complete yet), it is
        tried again once its stat differs; without, whenever a scan finds it again."""
        self.reserved.discard(key)
        entry = self.closed.get(key)
        if entry is not None:
            entry.sig = sig

    def released(self, key: Key) -> _Open | None:
        """An open file was let go for good (rotated away and finished, or truncated).
        Returns what was known of it while open."""
        self.yielding.discard(key)
        return self.open.pop(key, None)

    def finished(self, key: Key, path: str, checkpoint: FileCheckpoint, sig: Sig) -> None:
        """An open file was read to its end and let go, and the globs still match it: it stays
        known (and in the checkpoint) so that finding it again reads nothing twice."""
        info = self.open.pop(key, None)
        self.yielding.discard(key)
        self.closed[key] = ClosedFile(path, info.ref if info else None, checkpoint, sig, sig,
                                      info.meta if info else None, opened=True, finish=True)

    def closed_file(self, key: Key, path: str, checkpoint: FileCheckpoint,
                    seen: Sig, caught_up: bool) -> None:
        """An open file was closed to free its handle; it is reopened once it changes, or at
        once (behind the others) if it still had lines to read."""
        info = self.open.pop(key)
        self.yielding.discard(key)
        entry = ClosedFile(path, info.ref, checkpoint, seen if caught_up else None, seen,
                           info.meta, opened=True)
        self.closed[key] = entry
        if entry.changed:
            self._enqueue(key, urgent=False)

    def to_close(self, now: float, views: Mapping[Key, OpenView]) -> list[Key]:
        """Open files to close now so that waiting files get their handles.

        Idle files go first (longest idle first). If that is not enough, files open for
        ``yield_after_s`` (longest open first) start yielding: they read no more and are
        returned here once settled.
        """
        need = self.waiting - max(0, self.free)
        if need <= 0:
            self.yielding.clear()
            return []
        idle = sorted((v.last_growth, key) for key, v in views.items()
                      if v.caught_up and not v.orphaned
                      and now - v.last_growth >= self.close_idle_s)
        close = [key for _, key in idle[:need]]
        need -= len(close)
        chosen = set(close)
        # Yielding files still count toward what is needed; keep the longest-open ones.
        yielding = sorted((self.open[key].opened_at, key) for key in self.yielding
                          if key in views and key in self.open and key not in chosen
                          and not views[key].orphaned)
        self.yielding = {key for _, key in yielding[:max(0, need)]}
        need -= len(self.yielding)
        if need > 0:
            busy = sorted((info.opened_at, key) for key, info in self.open.items()
                          if key in views and key not in chosen and key not in self.yielding
                          and not views[key].orphaned
                          and now - info.opened_at >= self.yield_after_s)
            self.yielding.update(key for _, key in busy[:need])
        close.extend(key for key in self.yielding if views[key].settled)
        return close

    def note_limit(self) -> bool | None:
        """Log once when files start waiting for a handle, and once when none waits any more.
        True / False when that changed now, None when not."""
        if not self._at_limit and self.waiting and self.free <= 0:
            self._at_limit = True
            log.warning("max_open_files reached: files wait for a handle; idle ones are "
                        "closed for them", extra={"max_open_files": self.max_open,
                                                  "open": len(self.open),
                                                  "waiting": self.waiting})
            return True
        if self._at_limit and not self.waiting:
            self._at_limit = False
            log.info("no file waits for a handle any more",
                     extra={"max_open_files": self.max_open, "open": len(self.open),
                            "closed": len(self.closed)})
            return False
        return None


class Locator:
    """Where a closed file is now: at its own path, under another name in the same directory,
    or nowhere. One instance per scan, so each directory is listed at most once."""

    def __init__(self) -> None:
        self._dirs: dict[str, dict[int, str]] = {}

    def __call__(self, key: Key, path: str) -> str | None:
        if names_file(key, path):
            return path
        directory = os.path.dirname(path)
        names = self._dirs.get(directory)
        if names is None:
            names = self._dirs[directory] = _list_inodes(directory)
        sibling = names.get(key[1])
        # The directory listing only has inode numbers: confirm the device too.
        return sibling if sibling is not None and names_file(key, sibling) else None


def locate_all(unseen: Iterable[tuple[Key, str]],
               locate: Callable[[Key, str], str | None] | None = None) -> dict[Key, str | None]:
    find = locate or Locator()
    return {key: find(key, path) for key, path in unseen}


def names_file(key: Key, path: str) -> bool:
    """Whether ``path`` names the file ``key`` (device, inode) right now."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == key


def _list_inodes(directory: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        with os.scandir(directory) as it:
            for item in it:
                try:
                    if item.is_file(follow_symlinks=False):
                        out[item.inode()] = item.path
                except OSError:
                    continue
    except OSError:
        pass
    return out


def raise_fd_limit(max_open: int) -> int:
    """Raise the soft RLIMIT_NOFILE to fit ``max_open`` log files plus the agent's own
    descriptors, as far as the hard limit allows. Returns the soft limit now in force.

    Many runtimes start processes with a soft limit of 1024 (and a far higher hard one): left
    there, the default ``max_open_files`` would run into EMFILE before the agent's own bound.
    """
    want = max_open + OTHER_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open file limit",
                        extra={"soft": soft, "hard": hard, "error": str(exc)})
    if soft < want:
        log.warning("the process may open fewer files than agent.max_open_files plus its "
                    "own descriptors: lower max_open_files or raise the hard RLIMIT_NOFILE",
                    extra={"max_open_files": max_open, "nofile_soft": soft,
                           "nofile_hard": hard})
    return soft

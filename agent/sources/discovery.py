"""Finding the files to tail: include/exclude globs, rescanned on a timer and woken early by
watchdog events where the filesystem sends them."""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("logferry.agent.discovery")


class Discovery:
    def __init__(self, include: Iterable[str], exclude: Iterable[str] = ()) -> None:
        self.include = list(include)
        self.exclude = list(exclude)

    def scan(self) -> list[str]:
        found: set[str] = set()
        for pattern in self.include:
            for path in glob.iglob(pattern, recursive=True):
                if any(fnmatch.fnmatch(path, ex) for ex in self.exclude):
                    continue
                if os.path.isfile(path):
                    found.add(os.path.abspath(path))
        return sorted(found)

    def watch_roots(self) -> list[str]:
        """The deepest existing directory above each glob's first wildcard."""
        roots: set[str] = set()
        for pattern in self.include:
            parts = Path(pattern).parts
            fixed: list[str] = []
            for part in parts:
                if any(ch in part for ch in "*?["):
                    break
                fixed.append(part)
            root = Path(*fixed) if fixed else Path(".")
            if root == Path(pattern):
                root = root.parent
            while not root.is_dir() and root != root.parent:
                root = root.parent
            roots.add(str(root))
        return sorted(roots)


class WriteWatch(Protocol):
    """Files whose writes matter before the next scan."""

    def wants(self, path: str) -> bool:
        """Whether a write to ``path`` is of interest (called on watchdog's thread)."""
        ...

    def written(self, path: str) -> None:
        """``path``, which :meth:`wants`, was written to (called on the event loop)."""
        ...


class Watcher:
    """Sets ``wake`` whenever watchdog reports a change below one of the roots, and ``rescan``
    when a file appeared, moved or went away (a write to a known file needs no glob). Writes
    to the files ``writes`` wants are passed on to it, one stat instead of a whole scan: a
    file found before its first line was complete waits for a scan to be opened, which could
    otherwise come only after a kubelet rotating a busy log had renamed it away.
    """

    def __init__(self, roots: list[str], wake: asyncio.Event, rescan: asyncio.Event,
                 writes: WriteWatch | None = None) -> None:
        self._roots = roots
        self._wake = wake
        self._rescan = rescan
        self._writes = writes
        self._observer: Any = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        wake = self._wake
        rescan = self._rescan
        writes = self._writes

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                kind = event.event_type
                if kind in ("created", "moved", "deleted"):
                    loop.call_soon_threadsafe(rescan.set)
                elif (writes is not None and kind in ("modified", "closed")
                      and isinstance(event.src_path, str) and writes.wants(event.src_path)):
                    loop.call_soon_threadsafe(writes.written, event.src_path)
                loop.call_soon_threadsafe(wake.set)

        observer = Observer()
        recursive_roots = [r for r in self._roots if os.path.isdir(r)]
        for root in recursive_roots:
            try:
                observer.schedule(_Handler(), root, recursive=True)
            except OSError as exc:  # e.g. inotify watch limit: polling still works
                log.warning("watch unavailable, polling only",
                            extra={"root": root, "error": str(exc)})
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

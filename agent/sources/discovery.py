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
from typing import Any

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


class Watcher:
    """Sets ``wake`` whenever watchdog reports a change below one of the roots, and ``rescan``
    when a file appeared, moved or went away (a write to a known file needs no glob)."""

    def __init__(self, roots: list[str], wake: asyncio.Event, rescan: asyncio.Event) -> None:
        self._roots = roots
        self._wake = wake
        self._rescan = rescan
        self._observer: Any = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        wake = self._wake
        rescan = self._rescan

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("created", "moved", "deleted"):
                    loop.call_soon_threadsafe(rescan.set)
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

"""Joining the lines of one multi-line event (stack traces) from one file.

Two ways to tell where an event starts:

- ``indent``: a line continues the open event when it starts with a space or a tab, is blank,
  starts with ``Caused by:``/``Suppressed:``, or is a Java ``... N more``. A Python traceback
  ends with an unindented exception line, so a line right after an indented line also continues
  when it looks like an exception (``^\\w+(\\.\\w+)*(Error|Exception)\\b``) or, inside an event
  that holds a ``Traceback (most recent call last):`` header, like any exception
  (``Name`` or ``pkg.Name: message``). The header itself continues the open event, because
  ``logging.exception()`` writes its message line first; so do the sentences that chain
  tracebacks ("During handling of the above exception...", "The above exception was the direct
  cause..."). Everything else starts a new event. Java logs that put a timestamped line before
  the exception need ``start_pattern`` instead.
- ``start_pattern``: a line the pattern matches at its start begins an event, others continue.

Patterns run on the raw line bytes: they are compiled from UTF-8, so ``\\w`` and ``\\d`` are
ASCII-only and a non-ASCII character class would match bytes, not characters.

A line of another stream (CRI stdout vs stderr) always starts a new event: events never mix
streams. The event open last stays open until a line starts the next one, ``timeout_s`` passes
without a new line (:meth:`MultilineJoiner.flush_if_stale`), or the file is done
(:meth:`MultilineJoiner.drain`). An event reaching ``max_lines`` or ``max_bytes`` is emitted
flagged ``multiline_cut`` and its next line starts a new event: nothing is dropped. That new
event is not flagged: a resume from the checkpoint between the two cannot know it continues
one, and a record must come out the same however often the agent restarts. The pieces
of a line cut at a length limit (``max_line_bytes``, a container's ``partial_max_bytes``) are
never joined: each ends the open event and goes out alone (:meth:`MultilineJoiner.alone`), so
the file's text stays recoverable from the records.

Checkpoints follow :mod:`agent.stages.partials`: an event's origin is its first line's offset;
``Event.commit`` is the latest clean cut (no event straddles it, and the stage before this one,
whose own cuts arrive as ``commit`` with each line, is clean there too). A cut is taken where an
event starts right after everything fed so far, so in a plain file every event's ``commit`` is
the origin of the event opened after it. Every line of the file goes through
:meth:`MultilineJoiner.feed` or :meth:`MultilineJoiner.bypass` (a line sent on its own): the cut
cannot pass a line it never saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

# A line directly after an indented one that names an exception: Java's next trace, Python's
# last traceback line.
_EXCEPTION = re.compile(rb"\w+(?:\.\w+)*(?:Error|Exception)\b")
# Inside a Python traceback any exception class may end it: "KeyboardInterrupt", "pkg.Http404: x".
_PY_EXCEPTION = re.compile(rb"[A-Za-z_][\w.]*(?::|$)")
_TRACEBACK = b"Traceback (most recent call last):"
_CHAINED = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)
_INDENT = (b" ", b"\t")
_CONTINUES = (*_INDENT, b"Caused by:", b"Suppressed:")
# Not "split", which marks the pieces of one over-long line (the file has no newline between
# them): this event's last line and the next record's first are separate lines of the file.
FLAG_MULTILINE_CUT = "multiline_cut"
_CUT: tuple[str, ...] = (FLAG_MULTILINE_CUT,)
_new = tuple.__new__


def compile_start_pattern(pattern: str) -> re.Pattern[bytes]:
    """The ``start_pattern`` setting as this joiner matches it (on UTF-8 bytes)."""
    return re.compile(pattern.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class MultilineRules:
    mode: Literal["indent", "start_pattern"] = "indent"
    start_pattern: re.Pattern[bytes] | None = None
    max_lines: int = 500
    max_bytes: int = 512 * 1024
    timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if self.mode == "start_pattern" and self.start_pattern is None:
            raise ValueError("mode 'start_pattern' needs a start_pattern")
        if self.mode not in ("indent", "start_pattern"):
            raise ValueError(f"unknown multiline mode {self.mode!r}")
        if self.max_lines < 1 or self.max_bytes < 1 or self.timeout_s <= 0:
            raise ValueError("max_lines, max_bytes and timeout_s must be positive")


class Event(NamedTuple):
    offset: int  # origin: the first line's offset
    end: int  # just past the last line
    ts: str  # the first line's timestamp, as given
    stream: str
    message: bytes  # the lines joined with "\n"
    lines: int
    flags: tuple[str, ...]
    commit: int  # clean cut to checkpoint once this event and all before it are acked


class MultilineJoiner:
    """Groups the lines of one file into events. Not thread-safe; no clock inside.

    ``start`` is the offset reading starts from (a checkpoint is always a clean cut).
    """

    # The open event lives in flat attributes rather than an object: most lines open one.
    __slots__ = ("_cut", "_flags", "_indented", "_last_seen", "_lines",
                 "_max_bytes", "_max_end", "_max_lines", "_nbytes", "_o_end", "_o_offset",
                 "_o_stream", "_o_ts", "_open", "_pattern", "_prev_commit", "_timeout_s",
                 "_traceback")

    def __init__(self, rules: MultilineRules, start: int = 0) -> None:
        self._pattern = rules.start_pattern if rules.mode == "start_pattern" else None
        self._max_lines = rules.max_lines
        self._max_bytes = rules.max_bytes
        self._timeout_s = rules.timeout_s
        self.reset(start)

    def reset(self, start: int) -> None:
        """Forget all state; reading restarts at ``start`` (rewind, truncation)."""
        self._open = False
        self._o_offset = self._o_end = 0
        self._o_ts = self._o_stream = ""
        self._lines: list[bytes] = []
        self._nbytes = 0
        self._flags: tuple[str, ...] = ()
        self._last_seen = 0.0
        self._indented = self._traceback = False
        self._cut = start
        self._prev_commit = start
        self._max_end = start

    def feed(self, offset: int, end: int, line: bytes, *, now: float, ts: str = "",
             stream: str = "", flags: tuple[str, ...] = (), commit: int | None = None
             ) -> Event | None:
        """Add the line at ``[offset, end)``; returns the event it closed, if any.

        ``commit`` is the upstream stage's clean cut after this line (``Joined.commit``);
        leave it None when lines come straight from the file.
        """
        if commit is None:
            commit = end
        split = False
        if self._open and stream == self._o_stream and self._continues(line):
            nbytes = self._nbytes + 1 + len(line)
            if len(self._lines) < self._max_lines and nbytes <= self._max_bytes:
                self._lines.append(line)
                self._nbytes = nbytes
                self._o_end = end
                self._last_seen = now
                if flags:
                    self._flags = _union(self._flags, flags)
                self._indented = line.startswith(_INDENT)
                if line == _TRACEBACK:
                    self._traceback = True
                self._max_end = max(self._max_end, end)
                self._prev_commit = commit
                return None
            split = True
        # An event starting right after everything fed so far, where the upstream stage is
        # clean too, is a clean cut: the closed event's commit.
        if self._prev_commit == offset and self._max_end <= offset:
            self._cut = offset
        closed = None
        if self._open:  # _close(), inlined
            lines = self._lines
            closed = _new(Event, (
                self._o_offset, self._o_end, self._o_ts, self._o_stream,
                lines[0] if len(lines) == 1 else b"\n".join(lines), len(lines),
                _union(self._flags, _CUT) if split else self._flags, self._cut))
        self._max_end = max(self._max_end, end)
        self._prev_commit = commit
        # Open the next event (inlined: this runs for most lines).
        self._open = True
        self._o_offset = offset
        self._o_end = end
        self._o_ts = ts
        self._o_stream = stream
        self._lines = [line]
        self._nbytes = len(line)
        self._flags = flags
        self._last_seen = now
        self._indented = line.startswith(_INDENT)
        self._traceback = line == _TRACEBACK
        return closed

    def bypass(self, end: int, commit: int | None = None) -> int:
        """The line ending at ``end`` is sent on its own, not fed: the ``commit`` for its
        record. It leaves the open event open.

        Every line must go through :meth:`feed` or this, else the cut can never pass it.
        """
        if commit is None:
            commit = end
        self._max_end = max(self._max_end, end)
        self._prev_commit = commit
        if not self._open and self._max_end <= commit:
            self._cut = commit
        return self._cut

    def alone(self, end: int, commit: int | None = None) -> tuple[Event | None, int]:
        """The line ending at ``end`` is a piece of a line cut at a length limit: it goes out
        as a record of its own and ends the open event. Returns that event (to be sent before
        the piece), if any, and the ``commit`` for the piece's record.

        Joined to an event, a piece would be set off by a newline the file does not have.
        """
        closed = self.drain()
        return closed, self.bypass(end, commit)

    def pending_start(self) -> int | None:
        """Where reading must resume to rebuild the open event; None if none is open.

        At or before the open event's origin. Never checkpoint past it.
        """
        return self._cut if self._open else None

    def flush_if_stale(self, now: float) -> Event | None:
        """The open event, if no line came for ``timeout_s``."""
        if not self._open or now - self._last_seen < self._timeout_s:
            return None
        return self.drain()

    def drain(self) -> Event | None:
        """The open event, now: for a file that is finished for good."""
        if not self._open:
            return None
        # Nothing stays open: if every line fed ends before the upstream's cut, that is clean.
        if self._max_end <= self._prev_commit:
            self._cut = self._prev_commit
        return self._close(())

    # -- internals ----------------------------------------------------------------------------

    def _continues(self, line: bytes) -> bool:
        if self._pattern is not None:
            return self._pattern.match(line) is None
        if not line or line.startswith(_CONTINUES):
            return True
        if line.startswith(b"... ") and line.endswith(b" more"):
            return True
        if self._indented and (_EXCEPTION.match(line) is not None or (
                self._traceback and _PY_EXCEPTION.match(line) is not None)):
            return True
        # logging.exception() writes its message, then the traceback: keep them together.
        return line == _TRACEBACK or (self._traceback and line in _CHAINED)

    def _close(self, extra: tuple[str, ...]) -> Event:
        lines = self._lines
        message = lines[0] if len(lines) == 1 else b"\n".join(lines)
        self._open = False
        flags = _union(self._flags, extra) if extra else self._flags
        return _new(Event, (self._o_offset, self._o_end, self._o_ts, self._o_stream, message,
                            len(lines), flags, self._cut))


def _union(first: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(f for f in more if f not in first)

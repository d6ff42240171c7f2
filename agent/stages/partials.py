"""Joining the partial pieces of one container log file (CRI ``P``...``F``, docker pieces).

Offsets are byte offsets in the file. A joined record's origin (``offset``) is its FIRST piece,
so a replay from a checkpoint rebuilds the same record with the same origin, which is what
makes it a harmless duplicate downstream.

stdout and stderr pieces interleave in one CRI file, so each stream has its own buffer::

    0    stdout P aaa        stdout pending from 0
    40   stderr F xxx        emitted at once: origin 40
    80   stdout F bbb        emitted: origin 0, "aaabbb"

Checkpoints. Resuming at an offset that lies inside a joined line would emit its tail as a new
record with a different origin (a duplicate nobody can recognise). A *clean cut* is an offset
with no record straddling it; every :class:`Joined` carries ``commit``, the latest clean cut once
it is emitted, and that (not ``end``) is what the tailer may checkpoint when the record is acked.
While any stream is pending, the cut stays where the current *run* began: the offset of the
first piece fed while nothing was pending. In the example above, the stderr record gets
``commit`` 0, not its end 80: resuming at 80 would turn "bbb" into a record of its own. The run
start can be earlier than every piece still pending: had line 40 been ``stderr P``, then after
line 80 the stdout record (0..120) is out and only stderr is pending, from 40, yet the cut stays
at 0 (resuming at 40 would again cut "bbb" loose) until no stream is pending. Runs usually end
at the next ``F``, so checkpoints lag by a few lines.

Limits. A buffer that reaches ``max_bytes`` is emitted flagged ``split`` and the rest of the
line continues as a new record, also flagged ``split``: memory stays bounded and nothing is
dropped (a record is at most ``max_bytes`` plus one piece). Pieces that never get their ``F``
(the container died) come out of :meth:`PartialJoiner.flush_if_stale` or
:meth:`PartialJoiner.drain` flagged ``unterminated``.
"""

from __future__ import annotations

from typing import NamedTuple

from agent.stages.framing import FLAG_SPLIT

FLAG_UNTERMINATED = "unterminated"


class Joined(NamedTuple):
    offset: int  # origin: the first piece's offset
    end: int  # just past the last piece (and its newline)
    ts: str  # the first piece's timestamp
    stream: str
    message: bytes
    pieces: int
    flags: tuple[str, ...]
    commit: int  # clean cut to checkpoint once this record and all before it are acked


class _Pending:
    __slots__ = ("end", "last_seen", "nbytes", "offset", "pieces", "split", "ts")

    def __init__(self, offset: int, end: int, ts: str, message: bytes, now: float,
                 split: bool) -> None:
        self.offset = offset
        self.end = end
        self.ts = ts
        self.pieces = [message]
        self.nbytes = len(message)
        self.last_seen = now
        self.split = split


_new = tuple.__new__
_NO_FLAGS: tuple[str, ...] = ()
_SPLIT: tuple[str, ...] = (FLAG_SPLIT,)


class PartialJoiner:
    """Joins the pieces of one file, one buffer per stream. Not thread-safe; no clock inside."""

    __slots__ = ("_continued", "_last_end", "_max_bytes", "_pending", "_run_start")

    def __init__(self, max_bytes: int = 1024 * 1024) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._max_bytes = max_bytes
        self._pending: dict[str, _Pending] = {}
        # Streams whose last record was cut at max_bytes: their next record is its continuation.
        self._continued: set[str] = set()
        self._run_start: int | None = None
        self._last_end = 0

    def feed(self, offset: int, end: int, ts: str, stream: str, partial: bool, message: bytes,
             *, now: float) -> Joined | None:
        """Add the piece at ``[offset, end)``; the completed record, or None while partial.

        ``now`` is any monotonic clock reading; it only dates the piece for
        :meth:`flush_if_stale`.
        """
        self._last_end = end
        if not partial and not self._pending and not self._continued:
            # The hot path: a whole line, nothing pending anywhere.
            return _new(Joined, (offset, end, ts, stream, message, 1, _NO_FLAGS, end))
        pending = self._pending
        p = pending.get(stream)
        if p is None:
            split = stream in self._continued
            self._continued.discard(stream)
            if not partial:
                flags = _SPLIT if split else _NO_FLAGS
                return _new(Joined, (offset, end, ts, stream, message, 1, flags,
                                     self._commit(end)))
            if self._run_start is None:
                self._run_start = offset
            p = pending[stream] = _Pending(offset, end, ts, message, now, split)
        else:
            p.pieces.append(message)
            p.nbytes += len(message)
            p.end = end
            p.last_seen = now
            if not partial:
                del pending[stream]
                return self._emit(p, stream, _NO_FLAGS)
        if p.nbytes >= self._max_bytes:
            del pending[stream]
            self._continued.add(stream)
            return self._emit(p, stream, _SPLIT)
        return None

    @property
    def idle(self) -> bool:
        """Nothing pending and no line continued: a whole line passes through unchanged."""
        return not self._pending and not self._continued

    def bypass(self, end: int) -> int:
        """A line ending at ``end`` was not fed (malformed): the ``commit`` for its record."""
        self._last_end = end
        return end if self._run_start is None else self._run_start

    def pending_start(self) -> int | None:
        """Where reading must resume to rebuild every unfinished record; None if none is.

        With interleaved streams this is the start of the current run, which can be earlier
        than the first piece still pending. Never checkpoint past it.
        """
        return self._run_start

    @property
    def pending_bytes(self) -> int:
        return sum(p.nbytes for p in self._pending.values())

    def flush_if_stale(self, now: float, timeout_s: float) -> list[Joined]:
        """Records of streams with no piece for ``timeout_s``, flagged ``unterminated``.

        A list because both streams can be stale at once; oldest origin first.
        """
        if not self._pending:
            return []
        stale = [s for s, p in self._pending.items() if now - p.last_seen >= timeout_s]
        return self._flush(stale)

    def drain(self) -> list[Joined]:
        """Everything pending, flagged ``unterminated``: for a file that is finished for good."""
        return self._flush(list(self._pending))

    def reset(self) -> None:
        """Forget all state: call it whenever reading jumps back (rewind, truncation)."""
        self._pending.clear()
        self._continued.clear()
        self._run_start = None

    # -- internals ----------------------------------------------------------------------------

    def _commit(self, end: int) -> int:
        if self._pending and self._run_start is not None:
            return self._run_start
        # Nothing pending: every piece up to ``end`` is in an emitted record, a clean cut.
        self._run_start = None
        return end

    def _emit(self, p: _Pending, stream: str, flags: tuple[str, ...]) -> Joined:
        """``p`` is already out of ``_pending``; the piece fed last ends at ``_last_end``."""
        if p.split and FLAG_SPLIT not in flags:
            flags = (FLAG_SPLIT, *flags)
        message = p.pieces[0] if len(p.pieces) == 1 else b"".join(p.pieces)
        return _new(Joined, (p.offset, p.end, p.ts, stream, message, len(p.pieces), flags,
                             self._commit(self._last_end)))

    def _flush(self, streams: list[str]) -> list[Joined]:
        out: list[Joined] = []
        for stream in sorted(streams, key=lambda s: self._pending[s].offset):
            p = self._pending.pop(stream)
            self._continued.discard(stream)
            out.append(self._emit(p, stream, (FLAG_UNTERMINATED,)))
        return out

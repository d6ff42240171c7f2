"""Per-file pipelines: bytes read from one file in, ``(record value, commit offset)`` out.

Each call gathers its lines as :class:`Lines` and packs them into wire v2 records, many lines
per record (:func:`agent.stages.records.pack`).

``commit`` is the offset the tailer may checkpoint once that record (and every one before it)
is acknowledged: a clean cut that no joined record straddles, so a resume from it rebuilds
the same records with the same origins (see :mod:`agent.stages.partials`).

- :class:`PlainPipeline`: lines of a plain file, optionally joined into multi-line events.
- :class:`ContainerPipeline`: CRI or docker json-file lines of a container, partial pieces
  joined, optionally multi-line events; unparseable lines go out raw, flagged ``parse_error``.

A line over ``max_line_bytes`` reaches a pipeline in pieces (see :mod:`agent.sources.tailer`):
each piece is one record flagged ``split``, never joined into a multi-line event (that would
add a newline the file does not have); in a container log it also skips parsing and is
flagged ``parse_error``, as no runtime writes such a line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from agent.sources.tailer import Chunk
from agent.stages.cri import (
    STREAMS,
    TS_SHAPE_TABLE,
    TS_SHAPES,
    parse_cri,
    scan_chunk,
    sniff_format,
)
from agent.stages.docker_json import parse_docker_json
from agent.stages.framing import (
    FLAG_INVALID_UTF8,
    FLAG_SPLIT,
    add_bytes,
    frame_chunk,
    pieces,
)
from agent.stages.multiline import Event, MultilineJoiner, MultilineRules, compile_start_pattern
from agent.stages.partials import Joined, PartialJoiner
from agent.stages.records import RECORD_MAX_BYTES, Lines, Records, pack
from logferry.config._agent_sources import MultilineSettings
from logferry.wire import batch_head

FLAG_PARSE_ERROR = "parse_error"


__all__ = ["ContainerPipeline", "PlainPipeline", "Records", "multiline_rules"]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def multiline_rules(settings: MultilineSettings) -> MultilineRules | None:
    if settings.mode == "off":
        return None
    pattern = (compile_start_pattern(settings.start_pattern)
               if settings.mode == "start_pattern" and settings.start_pattern else None)
    return MultilineRules(mode=settings.mode, start_pattern=pattern,
                          max_lines=settings.max_lines, max_bytes=settings.max_bytes,
                          timeout_s=settings.timeout_s)


class Pipeline(Protocol):
    kind: str
    path: str

    def process(self, chunk: Chunk, now: float) -> Records: ...

    def flush_stale(self, now: float) -> Records: ...

    def drain(self) -> Records: ...

    def reset(self, start: int) -> None: ...

    @property
    def holding(self) -> bool:
        """Whether lines are held back (an open partial line or multi-line event)."""
        ...


def _text(raw: bytes, flags: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    try:
        return raw.decode("utf-8"), flags
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), (*flags, FLAG_INVALID_UTF8)


class _FileRecords:
    """What every record of one file shares, built once (and again only after a rename)."""

    kind: str
    # Tests set 0 (one line per record) to see each line's own commit offset.
    record_max_bytes = RECORD_MAX_BYTES

    def __init__(self, host: str, path: str, fid: str,
                 k8s: dict[str, Any] | None = None) -> None:
        self.host = host
        self.path = path
        self.fid = fid
        self.k8s = k8s
        self._head_path = ""
        self._head = b""

    def _record_head(self) -> bytes:
        if self._head_path != self.path:
            self._head = batch_head(self.host, self.kind, self.path, self.fid, self.k8s)
            self._head_path = self.path
        return self._head

    def _pack(self, lines: Lines) -> Records:
        return pack(self._record_head(), lines, self.record_max_bytes) if lines else Records()


class PlainPipeline(_FileRecords):
    kind = "file"

    def __init__(self, host: str, path: str, fid: str, max_line_bytes: int,
                 multiline: MultilineRules | None, start: int) -> None:
        super().__init__(host, path, fid)
        self.max_line_bytes = max_line_bytes
        self._ml = MultilineJoiner(multiline, start) if multiline else None

    @property
    def holding(self) -> bool:
        return self._ml is not None and self._ml.pending_start() is not None

    def process(self, chunk: Chunk, now: float) -> Records:
        ts = now_iso()
        out = Lines()
        if self._ml is None:
            if chunk.forced:
                add_bytes(out, ts, chunk.start, chunk.body, chunk.end, (FLAG_SPLIT,))
            else:
                frame_chunk(out, ts, chunk.start, chunk.body, self.max_line_bytes,
                            chunk.continued)
            return self._pack(out)
        if chunk.forced:
            self._alone(chunk.start, chunk.end, chunk.body, ts, out)
            return self._pack(out)
        off = chunk.start
        limit = self.max_line_bytes
        lines = iter(chunk.body.split(b"\n"))
        if chunk.continued:  # the rest of an over-long line: its last piece
            raw = next(lines)
            end = off + len(raw) + 1
            self._pieces(off, end, raw, ts, out)
            off = end
        ml = self._ml
        for raw in lines:
            end = off + len(raw) + 1
            if len(raw) <= limit:
                event = ml.feed(off, end, raw, now=now, ts=ts)
                if event is not None:
                    self._add(event, out)
            else:  # only in chunks not cut by the tailer
                self._pieces(off, end, raw, ts, out)
            off = end
        return self._pack(out)

    def _pieces(self, off: int, end: int, raw: bytes, ts: str, out: Lines) -> None:
        """The pieces of the line ``raw`` at ``[off, end)``, each a line of its own."""
        for begin, stop in pieces(raw, self.max_line_bytes):
            self._alone(off + begin, end if stop == len(raw) else off + stop, raw[begin:stop],
                        ts, out)

    def _alone(self, off: int, end: int, raw: bytes, ts: str, out: Lines) -> None:
        assert self._ml is not None
        event, commit = self._ml.alone(end)
        if event is not None:
            self._add(event, out)
        add_bytes(out, ts, off, raw, commit, (FLAG_SPLIT,))

    def _add(self, event: Event, out: Lines) -> None:
        text, flags = _text(event.message, event.flags)
        out.add(event.offset, event.ts or now_iso(), text, event.commit, None, flags)

    def flush_stale(self, now: float) -> Records:
        out = Lines()
        if self._ml is not None:
            event = self._ml.flush_if_stale(now)
            if event is not None:
                self._add(event, out)
        return self._pack(out)

    def drain(self) -> Records:
        out = Lines()
        if self._ml is not None:
            event = self._ml.drain()
            if event is not None:
                self._add(event, out)
        return self._pack(out)

    def reset(self, start: int) -> None:
        if self._ml is not None:
            self._ml.reset(start)


class ContainerPipeline(_FileRecords):
    kind = "container"

    def __init__(self, host: str, path: str, fid: str, k8s: dict[str, Any], fmt: str,
                 partial_max_bytes: int, partial_timeout_s: float,
                 multiline: MultilineRules | None, start: int) -> None:
        super().__init__(host, path, fid, k8s)
        self.format = None if fmt == "auto" else fmt
        self.partial_timeout_s = partial_timeout_s
        self._joiner = PartialJoiner(partial_max_bytes)
        self._ml = MultilineJoiner(multiline, start) if multiline else None

    @property
    def holding(self) -> bool:
        return self._joiner.pending_start() is not None or (
            self._ml is not None and self._ml.pending_start() is not None)

    def process(self, chunk: Chunk, now: float) -> Records:
        out = Lines(with_streams=True)
        self._process(chunk, now, out)
        return self._pack(out)

    def _process(self, chunk: Chunk, now: float, out: Lines) -> None:
        if chunk.forced:
            self._raw_piece(chunk.body, chunk.start, chunk.end, out)
            return
        if chunk.continued:
            # The last piece of a line over max_line_bytes, like its first pieces: raw.
            nl = chunk.body.find(b"\n")
            if nl < 0:
                self._raw_piece(chunk.body, chunk.start, chunk.end, out)
                return
            self._raw_piece(chunk.body[:nl], chunk.start, chunk.start + nl + 1, out)
            self._process(Chunk(chunk.start + nl + 1, chunk.body[nl + 1 :], chunk.end), now,
                          out)
            return
        if self.format is None:
            first = chunk.body.split(b"\n", 1)[0]
            self.format = sniff_format(first) or "cri"
        if self.format == "cri" and self._ml is None:
            self._process_cri(chunk, now, out)
            return
        docker = self.format == "docker"
        off = chunk.start
        for raw in chunk.body.split(b"\n"):
            end = off + len(raw) + 1
            self._line(raw, off, end, docker, now, out)
            off = end

    def _process_cri(self, chunk: Chunk, now: float, out: Lines) -> None:
        """The common case in bulk: a chunk of valid UTF-8 whose every line is CRI is read by
        one :func:`~agent.stages.cri.scan_chunk` pass, and each run of whole (``F``) lines
        with nothing pending goes into the columns with list ``extend``s; ``P`` pieces and the
        lines while one is pending go to the joiner as scanned (no second parse). Any other
        chunk is read line by line (:meth:`_process_cri_lines`).
        """
        scanned = scan_chunk(chunk.body, chunk.start)
        if scanned is None:
            self._process_cri_lines(chunk, now, out)
            return
        offsets, stamps, streams, messages, partial = scanned
        n = len(messages)
        partial.append(n)
        joiner = self._joiner
        body, base = chunk.body, chunk.start
        i = p = 0
        while i < n:
            while partial[p] < i:
                p += 1
            stop = partial[p]  # the next P piece, or the end
            if i < stop and joiner.idle:
                out.offs.extend(offsets[i:stop])
                out.commits.extend(offsets[i + 1 : stop + 1])
                out.texts.extend(messages[i:stop])
                out.stamps.extend(stamps[i:stop])
                out.streams.extend(streams[i:stop])  # type: ignore[union-attr]
                i = stop
                continue
            # A P piece, or any line while one is pending (also from an earlier chunk): to the
            # joiner, which keeps bytes; the message starts after "<ts> <stream> <tag> ".
            off, end = offsets[i], offsets[i + 1]
            ts = stamps[i]
            joined = joiner.feed(off, end, ts, streams[i], i == stop,
                                 body[off - base + len(ts) + 10 : end - base - 1], now=now)
            if joined is not None:
                self._add_joined(joined, out)
            i += 1

    def _process_cri_lines(self, chunk: Chunk, now: float, out: Lines) -> None:
        """Line by line: a whole (``F``) CRI line with nothing pending goes straight into the
        columns, without going through the joiner; anything else takes :meth:`_line`.
        """
        offs, texts, stamps, commits = out.offs, out.texts, out.stamps, out.commits
        streams = out.streams
        assert streams is not None
        joiner = self._joiner
        idle = joiner.idle  # changes only in _line
        stream_of = STREAMS
        shape = TS_SHAPE_TABLE
        shapes = TS_SHAPES
        off = chunk.start
        for raw in chunk.body.split(b"\n"):
            end = off + len(raw) + 1
            parts = raw.split(b" ", 3)
            if (idle and len(parts) == 4 and parts[2] == b"F"
                    and (stream := stream_of.get(parts[1])) is not None
                    and (ts := parts[0]).translate(shape) in shapes):
                try:
                    text = parts[3].decode()
                except UnicodeDecodeError:
                    pass
                else:
                    offs.append(off)
                    texts.append(text)
                    stamps.append(ts.decode())
                    streams.append(stream)
                    commits.append(end)
                    off = end
                    continue
            self._line(raw, off, end, False, now, out)
            idle = joiner.idle
            off = end

    def _line(self, raw: bytes, off: int, end: int, docker: bool, now: float,
              out: Lines) -> None:
        if docker:
            parsed_d = parse_docker_json(raw)
            parsed = None if parsed_d is None else (
                parsed_d.ts, parsed_d.stream, parsed_d.partial, parsed_d.message.encode())
        else:
            parsed_c = parse_cri(raw)
            parsed = None if parsed_c is None else (
                parsed_c.ts, parsed_c.stream, parsed_c.partial, parsed_c.message)
        if parsed is None:
            add_bytes(out, now_iso(), off, raw, self._bypass(end), (FLAG_PARSE_ERROR,))
        else:
            joined = self._joiner.feed(off, end, parsed[0], parsed[1], parsed[2], parsed[3],
                                       now=now)
            if joined is not None:
                if self._ml is None:
                    self._add_joined(joined, out)
                else:
                    self._to_multiline(joined, now, out)

    def _raw_piece(self, raw: bytes, off: int, end: int, out: Lines) -> None:
        """A piece of a line over max_line_bytes, as is: runtimes cut their lines into ``P``
        pieces far below that limit, so such a line was never CRI or docker json-file."""
        add_bytes(out, now_iso(), off, raw, self._bypass(end), (FLAG_SPLIT, FLAG_PARSE_ERROR))

    def _bypass(self, end: int) -> int:
        commit = self._joiner.bypass(end)
        if self._ml is not None:
            commit = self._ml.bypass(end, commit)
        return commit

    def _add_joined(self, j: Joined, out: Lines) -> None:
        text, flags = _text(j.message, j.flags)
        out.add(j.offset, j.ts, text, j.commit, j.stream, flags)

    def _to_multiline(self, j: Joined, now: float, out: Lines) -> None:
        assert self._ml is not None
        if FLAG_SPLIT in j.flags:  # a piece of a line cut at partial_max_bytes: never joined
            closed, commit = self._ml.alone(j.end, j.commit)
            if closed is not None:
                self._add_event(closed, out)
            self._add_joined(j._replace(commit=commit), out)
            return
        event = self._ml.feed(j.offset, j.end, j.message, now=now, ts=j.ts, stream=j.stream,
                              flags=j.flags, commit=j.commit)
        if event is not None:
            self._add_event(event, out)

    def _add_event(self, e: Event, out: Lines) -> None:
        text, flags = _text(e.message, e.flags)
        out.add(e.offset, e.ts, text, e.commit, e.stream or None, flags)

    def flush_stale(self, now: float) -> Records:
        out = Lines(with_streams=True)
        for j in self._joiner.flush_if_stale(now, self.partial_timeout_s):
            if self._ml is None:
                self._add_joined(j, out)
            else:
                self._to_multiline(j, now, out)
        if self._ml is not None:
            event = self._ml.flush_if_stale(now)
            if event is not None:
                self._add_event(event, out)
        return self._pack(out)

    def drain(self) -> Records:
        out = Lines(with_streams=True)
        for j in self._joiner.drain():
            if self._ml is None:
                self._add_joined(j, out)
            else:
                self._to_multiline(j, 0.0, out)
        if self._ml is not None:
            event = self._ml.drain()
            if event is not None:
                self._add_event(event, out)
        return self._pack(out)

    def reset(self, start: int) -> None:
        self._joiner.reset()
        if self._ml is not None:
            self._ml.reset(start)

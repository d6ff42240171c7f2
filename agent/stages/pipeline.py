"""Per-file pipelines: bytes read from one file in, ``(record value, commit offset)`` out.

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

import orjson

from agent.sources.tailer import Chunk
from agent.stages.cri import TS_SHAPE_TABLE, TS_SHAPES, parse_cri, sniff_format
from agent.stages.docker_json import parse_docker_json
from agent.stages.framing import (
    FLAG_INVALID_UTF8,
    FLAG_SPLIT,
    encode_bytes,
    frame_chunk,
    pieces,
)
from agent.stages.multiline import Event, MultilineJoiner, MultilineRules, compile_start_pattern
from agent.stages.partials import Joined, PartialJoiner
from agent.stages.records import Records
from logferry.config._agent_sources import MultilineSettings
from logferry.wire import encode_line, record_head, record_prefix

FLAG_PARSE_ERROR = "parse_error"

# The tail of a record for a whole CRI line, by stream: the hot path's only per-line lookup.
_CRI_TAIL = {b"stdout": b',"stream":"stdout"}', b"stderr": b',"stream":"stderr"}'}

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
            self._head = record_head(self.host, self.kind, self.path, self.fid, self.k8s)
            self._head_path = self.path
        return self._head


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
        prefix = record_prefix(ts, self.host, self.kind, self.path, self.fid)
        if self._ml is None:
            if chunk.forced:
                return Records([encode_bytes(prefix, chunk.start, chunk.body, FLAG_SPLIT)],
                               [chunk.end])
            return frame_chunk(prefix, chunk.start, chunk.body, self.max_line_bytes,
                               chunk.continued)
        out = Records()
        if chunk.forced:
            self._alone(chunk.start, chunk.end, chunk.body, ts, out)
            return out
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
                    out.append(self._encode(event))
            else:  # only in chunks not cut by the tailer
                self._pieces(off, end, raw, ts, out)
            off = end
        return out

    def _pieces(self, off: int, end: int, raw: bytes, ts: str, out: Records) -> None:
        """The pieces of the line ``raw`` at ``[off, end)``, each a record of its own."""
        for begin, stop in pieces(raw, self.max_line_bytes):
            self._alone(off + begin, end if stop == len(raw) else off + stop, raw[begin:stop],
                        ts, out)

    def _alone(self, off: int, end: int, raw: bytes, ts: str, out: Records) -> None:
        assert self._ml is not None
        event, commit = self._ml.alone(end)
        if event is not None:
            out.append(self._encode(event))
        text, flags = _text(raw, (FLAG_SPLIT,))
        out.append((encode_line(self._record_head(), ts, off, text, None, flags), commit))

    def _encode(self, event: Event) -> tuple[bytes, int]:
        text, flags = _text(event.message, event.flags)
        return encode_line(self._record_head(), event.ts or now_iso(), event.offset, text,
                           None, flags), event.commit

    def flush_stale(self, now: float) -> Records:
        if self._ml is None:
            return Records()
        event = self._ml.flush_if_stale(now)
        return Records.of([self._encode(event)] if event is not None else [])

    def drain(self) -> Records:
        if self._ml is None:
            return Records()
        event = self._ml.drain()
        return Records.of([self._encode(event)] if event is not None else [])

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
        head = self._record_head()
        out = Records()
        if chunk.forced:
            self._raw_piece(chunk.body, chunk.start, chunk.end, head, out)
            return out
        if chunk.continued:
            # The last piece of a line over max_line_bytes, like its first pieces: raw.
            nl = chunk.body.find(b"\n")
            if nl < 0:
                self._raw_piece(chunk.body, chunk.start, chunk.end, head, out)
                return out
            self._raw_piece(chunk.body[:nl], chunk.start, chunk.start + nl + 1, head, out)
            out.extend(self.process(Chunk(chunk.start + nl + 1, chunk.body[nl + 1 :],
                                          chunk.end), now))
            return out
        if self.format is None:
            first = chunk.body.split(b"\n", 1)[0]
            self.format = sniff_format(first) or "cri"
        if self.format == "cri" and self._ml is None:
            return self._process_cri(chunk, now, head)
        docker = self.format == "docker"
        off = chunk.start
        for raw in chunk.body.split(b"\n"):
            end = off + len(raw) + 1
            self._line(raw, off, end, docker, now, head, out)
            off = end
        return out

    def _process_cri(self, chunk: Chunk, now: float, head: bytes) -> Records:
        """The common case, flattened: a whole (``F``) CRI line with nothing pending becomes a
        record directly, without going through the joiner; anything else takes :meth:`_line`.
        """
        out = Records()
        values = out.values
        commits = out.commits
        joiner = self._joiner
        idle = joiner.idle  # changes only in _line
        dumps = orjson.dumps
        # The head holds the path and pod fields, which may hold "%".
        record = (head.replace(b"%", b"%%") + b',"ts":"%b","off":%d,"line":%b%b').__mod__
        tails = _CRI_TAIL
        shape = TS_SHAPE_TABLE
        shapes = TS_SHAPES
        off = chunk.start
        for raw in chunk.body.split(b"\n"):
            end = off + len(raw) + 1
            parts = raw.split(b" ", 3)
            if (idle and len(parts) == 4 and parts[2] == b"F"
                    and (tail := tails.get(parts[1])) is not None
                    and (ts := parts[0]).translate(shape) in shapes):
                try:
                    text = parts[3].decode()
                except UnicodeDecodeError:
                    pass
                else:
                    values.append(record((ts, off, dumps(text), tail)))
                    commits.append(end)
                    off = end
                    continue
            self._line(raw, off, end, False, now, head, out)
            idle = joiner.idle
            off = end
        return out

    def _line(self, raw: bytes, off: int, end: int, docker: bool, now: float, head: bytes,
              out: Records) -> None:
        if docker:
            parsed_d = parse_docker_json(raw)
            parsed = None if parsed_d is None else (
                parsed_d.ts, parsed_d.stream, parsed_d.partial, parsed_d.message.encode())
        else:
            parsed_c = parse_cri(raw)
            parsed = None if parsed_c is None else (
                parsed_c.ts, parsed_c.stream, parsed_c.partial, parsed_c.message)
        if parsed is None:
            text, flags = _text(raw, (FLAG_PARSE_ERROR,))
            out.append((encode_line(head, now_iso(), off, text, None, flags),
                        self._bypass(end)))
        else:
            joined = self._joiner.feed(off, end, parsed[0], parsed[1], parsed[2], parsed[3],
                                       now=now)
            if joined is not None:
                if self._ml is None:
                    out.append(self._encode_joined(head, joined))
                else:
                    self._to_multiline(head, joined, now, out)

    def _raw_piece(self, raw: bytes, off: int, end: int, head: bytes, out: Records) -> None:
        """A piece of a line over max_line_bytes, as is: runtimes cut their lines into ``P``
        pieces far below that limit, so such a line was never CRI or docker json-file."""
        text, flags = _text(raw, (FLAG_SPLIT, FLAG_PARSE_ERROR))
        out.append((encode_line(head, now_iso(), off, text, None, flags), self._bypass(end)))

    def _bypass(self, end: int) -> int:
        commit = self._joiner.bypass(end)
        if self._ml is not None:
            commit = self._ml.bypass(end, commit)
        return commit

    def _encode_joined(self, head: bytes, j: Joined) -> tuple[bytes, int]:
        text, flags = _text(j.message, j.flags)
        return encode_line(head, j.ts, j.offset, text, j.stream, flags), j.commit

    def _to_multiline(self, head: bytes, j: Joined, now: float, out: Records) -> None:
        assert self._ml is not None
        if FLAG_SPLIT in j.flags:  # a piece of a line cut at partial_max_bytes: never joined
            closed, commit = self._ml.alone(j.end, j.commit)
            if closed is not None:
                out.append(self._encode_event(head, closed))
            out.append(self._encode_joined(head, j._replace(commit=commit)))
            return
        event = self._ml.feed(j.offset, j.end, j.message, now=now, ts=j.ts, stream=j.stream,
                              flags=j.flags, commit=j.commit)
        if event is not None:
            out.append(self._encode_event(head, event))

    def _encode_event(self, head: bytes, e: Event) -> tuple[bytes, int]:
        text, flags = _text(e.message, e.flags)
        return encode_line(head, e.ts, e.offset, text, e.stream or None, flags), e.commit

    def flush_stale(self, now: float) -> Records:
        head = self._record_head()
        out = Records()
        for j in self._joiner.flush_if_stale(now, self.partial_timeout_s):
            if self._ml is None:
                out.append(self._encode_joined(head, j))
            else:
                self._to_multiline(head, j, now, out)
        if self._ml is not None:
            event = self._ml.flush_if_stale(now)
            if event is not None:
                out.append(self._encode_event(head, event))
        return out

    def drain(self) -> Records:
        head = self._record_head()
        out = Records()
        for j in self._joiner.drain():
            if self._ml is None:
                out.append(self._encode_joined(head, j))
            else:
                self._to_multiline(head, j, 0.0, out)
        if self._ml is not None:
            event = self._ml.drain()
            if event is not None:
                out.append(self._encode_event(head, event))
        return out

    def reset(self, start: int) -> None:
        self._joiner.reset()
        if self._ml is not None:
            self._ml.reset(start)

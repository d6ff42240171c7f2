"""The record schema on the Kafka topic: the only contract between agent and indexer.

One Kafka record value is one JSON object (UTF-8). The agent writes version ``v`` = 2, a run of
consecutive lines of one file::

    {"v": 2, "host": "node-a", "kind": "container", "path": "/var/log/pods/.../0.log",
     "fid": "803:1a2b3c:9f8e7d6c5b4a3921", "k8s": {"namespace": "shop", ...},
     "off": [1234, 1301], "line": ["first line", "second line"],
     "ts": ["2026-11-25T10:15:00.123456Z", "2026-11-25T10:15:00.124000Z"],
     "stream": ["stdout", "stderr"], "flags": [[1, ["invalid_utf8"]]]}

- ``off[i]`` and ``line[i]``: line ``i`` (without its newline) and the byte offset of its first
  byte in the file. Together with ``fid`` the offset identifies a line forever, which is what
  lets the indexer turn a replay into no-ops.
- ``fid`` names one file (device, inode, fingerprint of its first bytes).
- ``ts``: one string for every line, or one per line: when the line was written if the source
  says so (CRI/docker), else when it was read.
- ``stream`` (optional): one string or one per line (``null`` where a line has none).
- ``flags`` (optional): ``[index, [flag, ...]]`` pairs, only for lines that have any
  (``invalid_utf8``, ``split``, ``parse_error``, ``unterminated``, ``multiline_cut``, ...).
- ``k8s`` (optional): namespace, pod, pod_uid, container, restart from the kubelet path; with
  API metadata also ``labels`` (dots in keys replaced by ``_``) and ``node``.

Why many lines per record: the per-file fields are written once, and Kafka frames, compresses
and the indexer fetches one record for hundreds of lines. This roughly halves the agent's CPU
per line (benchmarks/agent).

Version 1 is one line per record (``"off": 1234, "line": "...", "ts": "..."``, ``flags`` a
list); readers accept both. The indexer writes rejected lines to the dead-letter topic as v1
records, one per line, and ``logferry dlq replay`` sends them back as they are.

The Kafka record key is ``fid`` by default (or the pod or host, per ``agent.partition_key``), so
every line of one file lands in one partition, in order.
Readers ignore unknown fields; a new mandatory field means a new ``v``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from logferry.errors import WireFormatError

WIRE_VERSION = 2
# One line per record: what the dead-letter topic holds, and older agents wrote.
SINGLE_LINE_VERSION = 1


@dataclass(slots=True)
class LogRecord:
    ts: str
    host: str
    kind: str
    path: str
    fid: str
    off: int
    line: str
    flags: list[str] = field(default_factory=list)
    k8s: dict[str, Any] | None = None
    stream: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": SINGLE_LINE_VERSION, "ts": self.ts, "host": self.host, "kind": self.kind,
            "path": self.path, "fid": self.fid, "off": self.off, "line": self.line,
        }
        if self.flags:
            out["flags"] = self.flags
        if self.k8s:
            out["k8s"] = self.k8s
        if self.stream:
            out["stream"] = self.stream
        return out


def encode(record: LogRecord) -> bytes:
    """One line as a v1 record (dead letters, tests)."""
    return orjson.dumps(record.to_dict())


def batch_head(host: str, kind: str, path: str, fid: str,
               k8s: dict[str, Any] | None = None) -> bytes:
    """The fields every v2 record of one file shares, as an unclosed JSON object: the agent
    builds it once per file and appends the line columns with :func:`encode_batch` (or, in
    its hot loops, with :func:`join_batch` from JSON it assembled itself)."""
    head: dict[str, Any] = {"v": WIRE_VERSION, "host": host, "kind": kind, "path": path,
                            "fid": fid}
    if k8s:
        head["k8s"] = k8s
    return orjson.dumps(head)[:-1]


def join_batch(head: bytes, ts_json: bytes, off_json: bytes, line_json: bytes,
               stream_json: bytes | None = None, flags_json: bytes | None = None) -> bytes:
    """A v2 record from :func:`batch_head` and its columns, each already JSON."""
    parts = [head, b',"ts":', ts_json, b',"off":', off_json, b',"line":', line_json]
    if stream_json is not None:
        parts += (b',"stream":', stream_json)
    if flags_json is not None:
        parts += (b',"flags":', flags_json)
    parts.append(b"}")
    return b"".join(parts)


def encode_batch(head: bytes, ts: str | list[str], offs: list[int], lines: list[str],
                 streams: str | list[str | None] | None = None,
                 flags: list[tuple[int, list[str]]] | None = None) -> bytes:
    """A v2 record of ``lines`` (at ``offs``) from :func:`batch_head`."""
    return join_batch(head, orjson.dumps(ts), orjson.dumps(offs), orjson.dumps(lines),
                      None if streams is None else orjson.dumps(streams),
                      orjson.dumps(flags) if flags else None)


_REQUIRED: tuple[tuple[str, type], ...] = (
    ("ts", str), ("host", str), ("kind", str), ("path", str), ("fid", str), ("off", int),
    ("line", str),
)


def _load(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireFormatError(f"record is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireFormatError("record is not a JSON object")
    return obj


def decode(raw: bytes) -> LogRecord:
    """Parse a record of one line (v1, or v2 holding one line); :class:`WireFormatError`
    says what is wrong."""
    obj = _load(raw)
    if obj.get("v") == WIRE_VERSION:
        records = from_batch(obj)
        if len(records) != 1:
            raise WireFormatError(f"record holds {len(records)} lines, not one")
        return records[0]
    return from_single(obj)


def decode_lines(raw: bytes) -> list[LogRecord]:
    """Every line of a record, v1 or v2, in order; :class:`WireFormatError` says what is
    wrong (a record is taken whole or not at all)."""
    obj = _load(raw)
    if obj.get("v") == WIRE_VERSION:
        return from_batch(obj)
    return [from_single(obj)]


def from_single(obj: dict[str, Any]) -> LogRecord:
    """A v1 record, already parsed."""
    version = obj.get("v")
    if version != SINGLE_LINE_VERSION:
        raise WireFormatError(f"unsupported wire version {version!r} (expected "
                              f"{SINGLE_LINE_VERSION} or {WIRE_VERSION})")
    get: Callable[[str], Any] = obj.get
    ts, host, kind, path, fid, off, line = (get("ts"), get("host"), get("kind"), get("path"),
                                            get("fid"), get("off"), get("line"))
    # Exact type checks (bool is not an int offset); the slow loop only names the culprit.
    if not (type(ts) is str and type(host) is str and type(kind) is str
            and type(path) is str and type(fid) is str and type(off) is int
            and type(line) is str):
        for name, typ in _REQUIRED:
            if type(get(name)) is not typ:
                raise WireFormatError(f"field {name!r} missing or not {typ.__name__}")
    flags = get("flags") or []
    k8s = get("k8s")
    stream = get("stream")
    if type(flags) is not list or (k8s is not None and type(k8s) is not dict):
        raise WireFormatError("field 'flags' must be a list and 'k8s' an object")
    return LogRecord(ts, host, kind, path, fid, off, line, flags, k8s,
                     stream if type(stream) is str else None)


def _column(obj: dict[str, Any], name: str, n: int, optional: bool) -> list[Any]:
    """Field ``name`` as one value per line: a list of ``n``, or one value for all."""
    value = obj.get(name)
    if type(value) is list:
        if len(value) != n:
            raise WireFormatError(f"field {name!r} has {len(value)} items for {n} lines")
        return value
    if value is None and not optional:
        raise WireFormatError(f"field {name!r} missing")
    return [value] * n


class Batch(NamedTuple):
    """The fields of a v2 record, checked: one item per line in each column."""

    host: str
    kind: str
    path: str
    fid: str
    k8s: dict[str, Any] | None
    offs: list[int]
    lines: list[str]
    stamps: list[str]
    streams: list[str | None]
    flags: dict[int, list[Any]]  # line index -> its flags, for the lines that have any


_STR = {str}
_OPTIONAL_STR = {str, type(None)}


def batch_columns(obj: dict[str, Any]) -> Batch:
    """The columns of a v2 record, already parsed; :class:`WireFormatError` says what is
    wrong. The indexer builds documents from these directly, without a record per line."""
    get: Callable[[str], Any] = obj.get
    host, kind, path, fid, offs, lines = (get("host"), get("kind"), get("path"), get("fid"),
                                          get("off"), get("line"))
    for name, value in (("host", host), ("kind", kind), ("path", path), ("fid", fid)):
        if type(value) is not str:
            raise WireFormatError(f"field {name!r} missing or not str")
    if type(lines) is not list or not lines:
        raise WireFormatError("field 'line' missing or not a non-empty list")
    n = len(lines)
    if type(offs) is not list or len(offs) != n:
        raise WireFormatError(f"field 'off' must be a list of {n} offsets")
    stamps = _column(obj, "ts", n, optional=False)
    streams = _column(obj, "stream", n, optional=True)
    k8s = get("k8s")
    if k8s is not None and type(k8s) is not dict:
        raise WireFormatError("field 'k8s' must be an object")
    flagged: dict[int, list[Any]] = {}
    pairs = get("flags")
    if pairs is not None:
        if type(pairs) is not list:
            raise WireFormatError("field 'flags' must be a list of [index, flags] pairs")
        for pair in pairs:
            if not (type(pair) is list and len(pair) == 2 and type(pair[0]) is int
                    and 0 <= pair[0] < n and type(pair[1]) is list):
                raise WireFormatError(f"bad 'flags' item {pair!r}: expected [index, [flags]]")
            flagged[pair[0]] = pair[1]
    # Whole-column type checks run in C; the loop only names the culprit (bool is no int).
    if not (set(map(type, offs)) == {int} and min(offs) >= 0
            and set(map(type, lines)) == _STR and set(map(type, stamps)) == _STR
            and set(map(type, streams)) <= _OPTIONAL_STR):
        for i, (off, line, ts, stream) in enumerate(zip(offs, lines, stamps, streams,
                                                          strict=True)):
            if type(off) is not int or off < 0:
                raise WireFormatError(f"field 'off' item {i} is not an offset: {off!r}")
            if type(line) is not str:
                raise WireFormatError(f"field 'line' item {i} is not a string")
            if type(ts) is not str:
                raise WireFormatError(f"field 'ts' item {i} is not a string")
            if stream is not None and type(stream) is not str:
                raise WireFormatError(f"field 'stream' item {i} is not a string")
    return Batch(host, kind, path, fid, k8s, offs, lines, stamps, streams, flagged)


def from_batch(obj: dict[str, Any]) -> list[LogRecord]:
    """The lines of a v2 record, already parsed."""
    b = batch_columns(obj)
    flags = b.flags
    return [LogRecord(ts, b.host, b.kind, b.path, b.fid, off, line, flags.get(i, []), b.k8s,
                      stream)
            for i, (off, line, ts, stream) in enumerate(zip(b.offs, b.lines, b.stamps,
                                                              b.streams, strict=True))]


def origin_id(fid: str, off: int) -> str:
    """A deterministic document id for the line at ``off`` in file ``fid`` (20 chars)."""
    digest = hashlib.blake2b(f"{fid}@{off}".encode(), digest_size=15).digest()
    return base64.urlsafe_b64encode(digest).decode()

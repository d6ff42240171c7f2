"""The record schema on the Kafka topic: the only contract between agent and indexer.

One Kafka record value is one JSON object (UTF-8), version ``v`` = 1::

    {"v": 1, "ts": "2026-11-25T10:15:00.123456Z", "host": "node-a", "kind": "file",
     "path": "/var/log/app.log", "fid": "803:1a2b3c:9f8e7d6c5b4a3921", "off": 1234,
     "line": "the line, without its newline", "flags": ["invalid_utf8"]}

- ``ts``: when the line was written if the source says so (CRI/docker), else when it was read.
- ``fid`` + ``off``: the origin. ``fid`` names one file (device, inode, fingerprint of its
  first bytes) and ``off`` is the byte offset of the line's first byte in it. Together they
  identify a line forever, which is what lets the indexer turn a replay into no-ops.
- ``flags`` (optional): facts about the line (``invalid_utf8``, ``truncated``, ...).
- ``k8s`` (optional): namespace, pod, pod_uid, container, restart from the kubelet path; with
  API metadata also ``labels`` (dots in keys replaced by ``_``) and ``node``.

The Kafka record key is ``fid`` by default (or the pod or host, per ``agent.partition_key``), so
every line of one file lands in one partition, in order.
Readers ignore unknown fields; a new mandatory field means a new ``v``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from logferry.errors import WireFormatError

WIRE_VERSION = 1


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
            "v": WIRE_VERSION, "ts": self.ts, "host": self.host, "kind": self.kind,
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
    return orjson.dumps(record.to_dict())


def record_prefix(ts: str, host: str, kind: str, path: str, fid: str) -> bytes:
    """The constant head of every record from one read of one file.

    The agent's hot loop appends ``off`` and ``line`` with :func:`encode_with_prefix` instead of
    building a dict per line.
    """
    head = orjson.dumps({"v": WIRE_VERSION, "ts": ts, "host": host, "kind": kind,
                         "path": path, "fid": fid})
    return head[:-1] + b',"off":'


def encode_with_prefix(prefix: bytes, off: int, line: str) -> bytes:
    return b"".join((prefix, str(off).encode(), b',"line":', orjson.dumps(line), b"}"))


def record_head(host: str, kind: str, path: str, fid: str,
                k8s: dict[str, Any] | None = None) -> bytes:
    """The constant fields of every record of one file, as an unclosed JSON object: for
    sources whose timestamp and stream differ per line (container logs)."""
    head: dict[str, Any] = {"v": WIRE_VERSION, "host": host, "kind": kind, "path": path,
                            "fid": fid}
    if k8s:
        head["k8s"] = k8s
    return orjson.dumps(head)[:-1]


_STREAM_BYTES = {"stdout": b',"stream":"stdout"', "stderr": b',"stream":"stderr"'}


def encode_line(head: bytes, ts: str, off: int, line: str, stream: str | None = None,
                flags: tuple[str, ...] | list[str] = ()) -> bytes:
    """One record from :func:`record_head` plus its per-line fields."""
    parts = [head, b',"ts":', orjson.dumps(ts), b',"off":', str(off).encode(), b',"line":',
             orjson.dumps(line)]
    if stream:
        parts.append(_STREAM_BYTES.get(stream) or b',"stream":' + orjson.dumps(stream))
    if flags:
        parts.append(b',"flags":' + orjson.dumps(list(flags)))
    parts.append(b"}")
    return b"".join(parts)


_REQUIRED: tuple[tuple[str, type], ...] = (
    ("ts", str), ("host", str), ("kind", str), ("path", str), ("fid", str), ("off", int),
    ("line", str),
)


def decode(raw: bytes) -> LogRecord:
    """Parse one record value; :class:`WireFormatError` says what is wrong."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireFormatError(f"record is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireFormatError("record is not a JSON object")
    version = obj.get("v")
    if version != WIRE_VERSION:
        raise WireFormatError(f"unsupported wire version {version!r} (expected {WIRE_VERSION})")
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


def origin_id(fid: str, off: int) -> str:
    """A deterministic document id for the line at ``off`` in file ``fid`` (20 chars)."""
    digest = hashlib.blake2b(f"{fid}@{off}".encode(), digest_size=15).digest()
    return base64.urlsafe_b64encode(digest).decode()

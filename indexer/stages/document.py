"""From a wire record to the OpenSearch document and its bulk action line.

The document id is derived from the record's origin (file id + byte offset), so the same line
read twice, produced twice or consumed twice is one document.
"""

from __future__ import annotations

import hashlib
import re
from binascii import b2a_base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from indexer.stages.process import Processor, Shaped
from logferry.config._processing import RESERVED_FIELDS
from logferry.wire import (
    SINGLE_LINE_VERSION,
    WIRE_VERSION,
    LogRecord,
    batch_columns,
    decode_lines,
    origin_id,
)


def to_document(record: LogRecord, ingested: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": record.ts,
        "message": record.line,
        "host": {"name": record.host},
        "log": {"file": {"path": record.path}, "offset": record.off},
        "logferry": {"fid": record.fid, "kind": record.kind},
        "event": {"ingested": ingested},
    }
    if record.flags:
        doc["logferry"]["flags"] = record.flags
    if record.stream:
        doc["log"]["stream"] = record.stream
    if record.k8s:
        doc["kubernetes"] = kubernetes_fields(record.k8s)
    return doc


def kubernetes_fields(k8s: dict[str, Any]) -> dict[str, Any]:
    """The agent's ``k8s`` object under ECS-style ``kubernetes.*`` names."""
    out: dict[str, Any] = {}
    if "namespace" in k8s:
        out["namespace"] = k8s["namespace"]
    pod = {k: k8s[src] for k, src in (("name", "pod"), ("uid", "pod_uid")) if src in k8s}
    if "labels" in k8s:
        pod["labels"] = k8s["labels"]
    if pod:
        out["pod"] = pod
    container = {k: k8s[src] for k, src in (("name", "container"), ("restart_count", "restart"))
                 if src in k8s}
    if container:
        out["container"] = container
    if "node" in k8s:
        out["node"] = {"name": k8s["node"]}
    return out


class IndexNamer:
    """The index of a record, from ``opensearch.index_name``.

    Only fields fixed by the record itself are used (its agent timestamp, its namespace), so a
    replayed record always lands in the same index and meets its own 409.
    """

    def __init__(self, pattern: str, prefix: str) -> None:
        self._pattern = pattern
        self._prefix = prefix
        self._daily = pattern == "{prefix}-{date}"

    @property
    def daily(self) -> bool:
        """Whether the name depends on the record's date alone."""
        return self._daily

    def __call__(self, record: LogRecord) -> str:
        return self.name(record.ts, record.k8s)

    def name(self, ts: str, k8s: dict[str, Any] | None) -> str:
        date = f"{ts[0:4]}.{ts[5:7]}.{ts[8:10]}"
        if self._daily:
            return f"{self._prefix}-{date}"
        namespace = (k8s or {}).get("namespace") or "none"
        return self._pattern.format(prefix=self._prefix, date=date, month=date[:7],
                                    namespace=str(namespace).lower())


_SAFE_INDEX = re.compile(r"[a-z0-9][a-z0-9_.+-]*")


def bulk_lines(index: str, record: LogRecord, doc: dict[str, Any]) -> bytes:
    """The two NDJSON lines of one ``create`` action.

    The action line is formatted rather than serialized (it runs once per document): the id is
    base64url and a valid index name needs no JSON escaping; anything else takes orjson.
    """
    doc_id = origin_id(record.fid, record.off)
    if _SAFE_INDEX.fullmatch(index):
        return b'{"create":{"_index":"%s","_id":"%s"}}\n%s\n' % (
            index.encode(), doc_id.encode(), orjson.dumps(doc))
    action = {"create": {"_index": index, "_id": doc_id}}
    return orjson.dumps(action) + b"\n" + orjson.dumps(doc) + b"\n"


# -- the indexer's hot path --------------------------------------------------------------------

_URLSAFE = bytes.maketrans(b"+/", b"-_")
_CACHE_MAX = 4096
_loads = orjson.loads
_dumps = orjson.dumps
_blake2b = hashlib.blake2b
_NO_FLAGS: list[Any] = []  # only ever read
_NO_K8S: tuple[None, None] = (None, None)
# Per file: {"name": host}, {"path": path}, {"fid", "kind"}, b"fid@" (the id's hash input),
# and the same parts serialized for the C assembler: b'"host":{...},"log":{"file":{...},
# "offset":' and b'"logferry":{"fid":...,"kind":...'.
_FileParts = tuple[dict[str, Any], dict[str, Any], dict[str, Any], bytes, bytes, bytes]
# kubernetes.* fields, and b',"kubernetes":{...}' (None where they do not serialize)
_Kubernetes = tuple[dict[str, Any], bytes | None]


_Assemble = Callable[..., bytes | None]
_AssembleBatch = Callable[..., list[bytes]]


def _compiled() -> tuple[_Assemble, _AssembleBatch] | None:
    try:
        from indexer.stages._document import assemble, assemble_batch, configure
    except ImportError:
        return None
    # floats, ints beyond 64 bits...: written by orjson's own rules
    configure(_dumps, RESERVED_FIELDS)
    return assemble, assemble_batch


# Whether the build made the C assembler (indexer/stages/_document.c, an optional extension):
# a document written straight into one buffer instead of built as a dict, serialized whole and
# hashed in three calls; for a v2 record, every line shaped and written in one C loop.
_C = _compiled()
_ASSEMBLE: _Assemble | None = _C[0] if _C is not None else None
_ASSEMBLE_BATCH: _AssembleBatch | None = _C[1] if _C is not None else None
COMPILED = _C is not None


class DocumentBuilder:
    """Wire record bytes to the two bulk lines of each of its lines' documents, in one pass.

    The output is byte for byte what :func:`decode_lines`, :func:`to_document`,
    ``Processor.process(...).apply`` and :func:`bulk_lines` give together (a unit test holds
    them to it), and a line of a v2 record gives what the same line alone in a v1 record
    gives; this is what the indexer runs for every record. What it saves: one JSON parse for
    all lines of a record, no :class:`LogRecord`, no intermediate result objects, the per-file
    parts of the document (``host``, ``log.file``, ``logferry``, the id's hash input) and the
    action line of each index built once and shared, and ``kubernetes.*`` built once per
    distinct ``k8s`` object. Shared parts are only ever read (serialized), never modified.
    Where the C assembler is built, each document is written from those parts, already
    serialized, straight into its bytes (:meth:`_lines_py` is its twin).
    """

    def __init__(self, processor: Processor, index_for: IndexNamer) -> None:
        self._shape = processor.shape
        self._index_for = index_for
        self._daily = index_for.daily
        self._now: datetime | None = None
        self._event: dict[str, Any] = {}
        self._event_part = b""
        self._assemble = _ASSEMBLE
        self._assemble_batch = _ASSEMBLE_BATCH
        self._ingested = ""
        # (fid, path, host, kind) -> the parts of its documents (_FileParts)
        self._files: dict[tuple[str, str, str, str], _FileParts] = {}
        # index key (the date, and the namespace unless daily) -> start of the action line
        self._actions: dict[Any, bytes] = {}
        # the k8s object as JSON -> its kubernetes.* fields
        self._kubernetes: dict[bytes, _Kubernetes] = {}
        # the last k8s object seen (held, so never another object at the same address) and
        # its fields
        self._last_k8s: tuple[object, _Kubernetes] = (None, ({}, None))

    def begin(self, now: datetime, ingested: str) -> None:
        """Set the time of the records that follow: ``now`` for the processing stages and
        ``ingested`` for ``event.ingested``."""
        self._now = now
        self._ingested = ingested
        self._event = {"ingested": ingested}
        self._event_part = b'"event":{"ingested":%s' % _dumps(ingested)

    def build_lines(self, value: bytes) -> list[bytes]:
        """The bulk lines of each line of one wire record (v1 or v2), in order;
        :class:`WireFormatError` if it is not a valid record (then none of its lines)."""
        try:
            obj = _loads(value)
        except orjson.JSONDecodeError:
            return self._slow(value)
        if type(obj) is dict:
            if obj.get("v") == WIRE_VERSION:
                return self._batch(obj)
            one = self._single(obj)
            if one is not None:
                return [one]
        return self._slow(value)

    def _single(self, obj: dict[str, Any]) -> bytes | None:
        """A v1 record, or None where the fast checks refuse it."""
        get = obj.get
        if get("v") != SINGLE_LINE_VERSION:
            return None
        ts, host, kind, path, fid, off, line = (get("ts"), get("host"), get("kind"),
                                                get("path"), get("fid"), get("off"),
                                                get("line"))
        if not (type(ts) is str and type(host) is str and type(kind) is str
                and type(path) is str and type(fid) is str and type(off) is int
                and type(line) is str):
            return None
        flags = get("flags") or []
        k8s = get("k8s")
        if type(flags) is not list or (k8s is not None and type(k8s) is not dict):
            return None
        stream = get("stream")
        return self._lines(ts, host, kind, path, fid, off, line, flags, k8s,
                           stream if type(stream) is str else None)

    def _batch(self, obj: dict[str, Any]) -> list[bytes]:
        """The lines of a v2 record; :class:`WireFormatError` (from the wire's own checks)
        before any line is built, so a bad record yields no line at all."""
        b = batch_columns(obj)
        assemble_batch = self._assemble_batch
        if assemble_batch is not None:
            now = self._now
            assert now is not None, "begin() first"
            k8s = b.k8s
            kubernetes, kubernetes_part = self._kubernetes_fields(k8s) if k8s else _NO_K8S
            if kubernetes_part is not None or not k8s:
                key = (b.fid, b.path, b.host, b.kind)
                parts = self._files.get(key) or self._file_parts(key)

                def action_of(ts: str) -> bytes:
                    return self._action_of(ts, k8s)

                def fallback(i: int, shaped: Shaped) -> bytes:
                    return self._lines_py(action_of(b.stamps[i]), parts, b.fid, b.kind,
                                          b.offs[i], b.flags.get(i, _NO_FLAGS), kubernetes,
                                          b.streams[i], shaped)

                # the per-line loop below, in C: shape, then write, each line
                return assemble_batch(self._shape, now, action_of, parts[3], parts[4],
                                      parts[5], self._event_part, kubernetes_part, b.offs,
                                      b.lines, b.stamps, b.streams, b.flags, fallback)
        build, flags = self._lines, b.flags
        host, kind, path, fid, k8s = b.host, b.kind, b.path, b.fid, b.k8s
        return [build(ts, host, kind, path, fid, off, line,
                      flags.get(i, _NO_FLAGS) if flags else _NO_FLAGS, k8s, stream)
                for i, (off, line, ts, stream) in enumerate(zip(b.offs, b.lines, b.stamps,
                                                                  b.streams, strict=True))]

    def _slow(self, value: bytes) -> list[bytes]:
        """A record the fast checks refused: :func:`decode_lines` says why (or, should it
        accept it after all, the record takes the general path)."""
        return [self._lines(r.ts, r.host, r.kind, r.path, r.fid, r.off, r.line, r.flags,
                            r.k8s, r.stream) for r in decode_lines(value)]

    def _lines(self, ts: str, host: str, kind: str, path: str, fid: str, off: int,
               line: str, flags: list[Any], k8s: dict[str, Any] | None,
               stream: str | None) -> bytes:
        now = self._now
        assert now is not None, "begin() first"
        key = (fid, path, host, kind)
        parts = self._files.get(key)
        if parts is None:
            parts = self._file_parts(key)
        shaped = self._shape(line, ts, now)
        action = self._action_of(ts, k8s)
        kubernetes, kubernetes_part = self._kubernetes_fields(k8s) if k8s else _NO_K8S
        assemble = self._assemble
        if assemble is not None and (kubernetes_part is not None or not k8s):
            fields, timestamp, level, message, more_flags, original = shaped
            out = assemble(action, parts[3], off, timestamp, message, parts[4],
                           stream or None, level, parts[5],
                           [*flags, *more_flags] if flags or more_flags else None,
                           self._event_part, original, kubernetes_part, fields)
            if out is not None:
                return out
        return self._lines_py(action, parts, fid, kind, off, flags, kubernetes, stream,
                              shaped)

    def _lines_py(self, action: bytes, parts: _FileParts, fid: str, kind: str, off: int,
                  flags: list[Any], kubernetes: dict[str, Any] | None, stream: str | None,
                  shaped: Shaped) -> bytes:
        """The bulk lines as a dict serialized whole: the C assembler's twin, and what runs
        where it is not built or declines a document."""
        host_obj, file_obj, meta, hash_head = parts[:4]
        fields, timestamp, level, message, more_flags, original = shaped
        log: dict[str, Any] = {"file": file_obj, "offset": off}
        if stream:
            log["stream"] = stream
        if level is not None:
            log["level"] = level
        if flags or more_flags:
            meta = {"fid": fid, "kind": kind, "flags": [*flags, *more_flags]}
        doc: dict[str, Any] = {
            "@timestamp": timestamp, "message": message, "host": host_obj, "log": log,
            "logferry": meta,
            "event": self._event if original is None else {"ingested": self._ingested,
                                                           "original": original},
        }
        if kubernetes is not None:
            doc["kubernetes"] = kubernetes
        for name, field in fields.items():
            if name not in RESERVED_FIELDS:
                doc[name] = field
        doc_id = b2a_base64(_blake2b(b"%s%d" % (hash_head, off), digest_size=15).digest(),
                            newline=False).translate(_URLSAFE)
        return b'%s%s"}}\n%s\n' % (action, doc_id, _dumps(doc))

    def _file_parts(self, key: tuple[str, str, str, str]) -> _FileParts:
        fid, path, host, kind = key
        if len(self._files) >= _CACHE_MAX:
            self._files.clear()
        parts = self._files[key] = (
            {"name": host}, {"path": path}, {"fid": fid, "kind": kind}, f"{fid}@".encode(),
            b'"host":{"name":%s},"log":{"file":{"path":%s},"offset":' % (_dumps(host),
                                                                          _dumps(path)),
            b'"logferry":{"fid":%s,"kind":%s' % (_dumps(fid), _dumps(kind)))
        return parts

    def _action_of(self, ts: str, k8s: dict[str, Any] | None) -> bytes:
        """The start of the action line of a line with agent time ``ts``, up to its id."""
        if self._daily:
            key: Any = ts[:10]
        else:
            key = (ts[:10], str((k8s or {}).get("namespace") or "none"))
        action = self._actions.get(key)
        if action is None:
            action = self._action(key, ts, k8s)
        return action

    def _action(self, key: Any, ts: str, k8s: dict[str, Any] | None) -> bytes:
        if len(self._actions) >= _CACHE_MAX:
            self._actions.clear()
        index = self._index_for.name(ts, k8s)
        action = self._actions[key] = b'{"create":{"_index":%s,"_id":"' % _dumps(index)
        return action

    def _kubernetes_fields(self, k8s: dict[str, Any]) -> _Kubernetes:
        # Every line of a v2 record shares one k8s object: it is looked up once.
        if k8s is self._last_k8s[0]:
            return self._last_k8s[1]
        found = self._kubernetes_lookup(k8s)
        self._last_k8s = (k8s, found)
        return found

    def _kubernetes_lookup(self, k8s: dict[str, Any]) -> _Kubernetes:
        try:
            key = _dumps(k8s)
        except TypeError:  # not from JSON after all
            return kubernetes_fields(k8s), None
        found = self._kubernetes.get(key)
        if found is None:
            if len(self._kubernetes) >= _CACHE_MAX:
                self._kubernetes.clear()
            fields = kubernetes_fields(k8s)
            found = self._kubernetes[key] = (fields, b',"kubernetes":%s' % _dumps(fields))
        return found

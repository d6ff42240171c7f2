"""From a wire record to the OpenSearch document and its bulk action line.

The document id is derived from the record's origin (file id + byte offset), so the same line
read twice, produced twice or consumed twice is one document.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from logferry.wire import LogRecord, origin_id


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

    def __call__(self, record: LogRecord) -> str:
        ts = record.ts
        date = f"{ts[0:4]}.{ts[5:7]}.{ts[8:10]}"
        if self._daily:
            return f"{self._prefix}-{date}"
        namespace = (record.k8s or {}).get("namespace") or "none"
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

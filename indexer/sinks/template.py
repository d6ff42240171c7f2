"""The index template the indexer installs at start: sane mappings for log documents."""

from __future__ import annotations

from typing import Any


def index_template(prefix: str) -> dict[str, Any]:
    return {
        "index_patterns": [f"{prefix}-*"],
        "priority": 100,
        "template": {
            "settings": {
                "number_of_shards": 1,
                # One replica where a second node exists, none on a single dev node (green).
                "auto_expand_replicas": "0-1",
                "refresh_interval": "1s",
                "mapping.total_fields.limit": 1000,
            },
            "mappings": {
                "dynamic_templates": [
                    {"strings_as_keywords": {
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword", "ignore_above": 1024},
                    }},
                ],
                "properties": {
                    "@timestamp": {"type": "date_nanos"},
                    "message": {"type": "text"},
                    "host": {"properties": {"name": {"type": "keyword"}}},
                    "log": {"properties": {
                        "file": {"properties": {"path": {"type": "keyword"}}},
                        "offset": {"type": "long"},
                        "level": {"type": "keyword"},
                        "stream": {"type": "keyword"},
                    }},
                    "logferry": {"properties": {
                        "fid": {"type": "keyword"},
                        "kind": {"type": "keyword"},
                        "flags": {"type": "keyword"},
                    }},
                    "event": {"properties": {
                        "ingested": {"type": "date"},
                        "original": {"type": "keyword", "index": False, "doc_values": False},
                    }},
                    # Whatever apps log as fields: one flat_object, so a thousand different
                    # keys or one key with two types cannot blow up the mapping.
                    "attributes": {"type": "flat_object"},
                    "kubernetes": {"properties": {
                        "namespace": {"type": "keyword"},
                        "pod": {"properties": {"name": {"type": "keyword"},
                                               "uid": {"type": "keyword"},
                                               # one field however many label keys a
                                               # cluster uses
                                               "labels": {"type": "flat_object"}}},
                        "container": {"properties": {"name": {"type": "keyword"},
                                                     "restart_count": {"type": "integer"}}},
                        "node": {"properties": {"name": {"type": "keyword"}}},
                    }},
                },
            },
        },
    }

"""The index template the indexer installs at start: sane mappings for log documents."""

from __future__ import annotations

from typing import Any

from logferry.config import OpenSearchSettings


def index_template(settings: OpenSearchSettings) -> dict[str, Any]:
    index_settings: dict[str, Any] = {
        "number_of_shards": settings.number_of_shards,
        "refresh_interval": f"{settings.refresh_interval_s:g}s",
        "mapping.total_fields.limit": 1000,
    }
    if settings.number_of_replicas is None:
        # One replica where a second node exists, none on a single dev node (green).
        index_settings["auto_expand_replicas"] = "0-1"
    else:
        index_settings["number_of_replicas"] = settings.number_of_replicas
    return {
        "index_patterns": [f"{settings.index_prefix}-*"],
        "priority": 100,
        "template": {
            "settings": index_settings,
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


def ism_policy(settings: OpenSearchSettings) -> dict[str, Any]:
    """An Index State Management policy deleting indices ``retention_days`` after creation,
    attached to new indices of the prefix through its ``ism_template``."""
    return {"policy": {
        "description": f"logferry: delete {settings.index_prefix}-* after "
                       f"{settings.retention_days} days",
        "default_state": "hot",
        "states": [
            {"name": "hot", "actions": [], "transitions": [
                {"state_name": "delete",
                 "conditions": {"min_index_age": f"{settings.retention_days}d"}}]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": [f"{settings.index_prefix}-*"],
                          "priority": 100}],
    }}

"""The index template the indexer installs at start: sane mappings for log documents."""

from __future__ import annotations

from typing import Any

from logferry.config import OpenSearchSettings

# attributes_mapping = "fields": what a new key under attributes becomes. Numbers ignore a
# value of another type (kept in _source, listed in _ignored) instead of rejecting the line;
# date-like strings and booleans are keywords, so a later value of another shape still fits.
_TYPED_ATTRIBUTES = [
    {"attributes_long": {"path_match": "attributes.*", "match_mapping_type": "long",
                         "mapping": {"type": "long", "ignore_malformed": True}}},
    {"attributes_double": {"path_match": "attributes.*", "match_mapping_type": "double",
                           "mapping": {"type": "double", "ignore_malformed": True}}},
    {"attributes_date": {"path_match": "attributes.*",
                          "match_mapping_type": "date",
                          "mapping": {"type": "keyword", "ignore_above": 1024}}},
    {"attributes_boolean": {"path_match": "attributes.*", "match_mapping_type": "boolean",
                            "mapping": {"type": "keyword"}}},
]


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
    typed = settings.attributes_mapping == "fields"
    return {
        "index_patterns": [f"{settings.index_prefix}-*"],
        "priority": 100,
        "template": {
            "settings": index_settings,
            "mappings": {
                "dynamic_templates": [
                    *(_TYPED_ATTRIBUTES if typed else []),
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
                    # Whatever apps log as fields: by default one flat_object, so a thousand
                    # different keys or one key with two types cannot blow up the mapping.
                    "attributes": ({"type": "object", "dynamic": True} if typed
                                   else {"type": "flat_object"}),
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

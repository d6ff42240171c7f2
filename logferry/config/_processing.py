"""How the indexer turns a line into fields: parsers, patterns, renames and limits."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ParserName = Literal["json", "logfmt", "patterns"]
PresetName = Literal["nginx_access", "apache_combined", "syslog_rfc3164", "syslog_rfc5424"]

# Top-level document fields the indexer itself fills; parsed fields never replace them.
RESERVED_FIELDS = frozenset(
    {"@timestamp", "message", "host", "log", "kubernetes", "logferry", "event"})


def _default_parsers() -> list[ParserName]:
    return ["json", "logfmt", "patterns"]


class ProcessingSettings(BaseModel):
    # Unknown keys are typos far more often than forward compatibility: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Tried in this order; the first that recognizes the line wins.
    parsers: list[ParserName] = Field(default_factory=_default_parsers)
    # Regexes with named groups, tried before the presets (re.search: anchor with ^ if meant).
    patterns: list[str] = Field(default_factory=list)
    # Opt-in: a preset applied to lines of other formats could misread them.
    presets: list[PresetName] = Field(default_factory=list)
    # Where parsed fields go, as a dotted path; "" merges them at the document root, where a
    # key that names a reserved field (or starts with "_") is moved under "attributes".
    target_field: str = "attributes"
    # Dotted paths within the parsed fields, applied before anything else: renames, then drops.
    drop_fields: list[str] = Field(default_factory=list)
    rename_fields: dict[str, str] = Field(default_factory=dict)
    max_fields: int = Field(100, ge=1)
    max_value_bytes: int = Field(32768, ge=64)
    # Deeper than 100 a document cannot be serialized (orjson) or walked (recursion).
    max_depth: int = Field(5, ge=1, le=100)
    # Copy the raw line to event.original whenever a parser matched it.
    keep_original: bool = False

    @field_validator("parsers")
    @classmethod
    def _unique(cls, value: list[ParserName]) -> list[ParserName]:
        if len(set(value)) != len(value):
            raise ValueError("each parser may be listed once")
        return value

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
            if not compiled.groupindex:
                raise ValueError(f"pattern {pattern!r} has no named group (?P<name>...)")
        return value

    @field_validator("target_field")
    @classmethod
    def _target(cls, value: str) -> str:
        if value == "":
            return value
        _check_path(value)
        head = value.split(".", 1)[0]
        if head in RESERVED_FIELDS or head.startswith("_"):
            raise ValueError(f"target_field {value!r} would write into the reserved field "
                             f"{head!r}; pick another name or \"\" for the root")
        return value

    @field_validator("drop_fields")
    @classmethod
    def _drop_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            _check_path(path)
        return value

    @field_validator("rename_fields")
    @classmethod
    def _rename_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for source, dest in value.items():
            _check_path(source)
            _check_path(dest)
        return value


def _check_path(path: str) -> None:
    if not path or any(not part for part in path.split(".")):
        raise ValueError(f"field path {path!r} must be names joined by single dots")

"""From a raw line to what goes into its document: fields, time, level, message and flags.

What a processed line puts in the document (ECS names where ECS has one)::

    @timestamp      the app's own time when the line has a valid one, else the agent's
    message         the app's message (JSON/logfmt "message" or "msg", syslog MSG), else the line
    log.level       trace | debug | info | warn | error | fatal, when known
    event.original  the raw line, only with keep_original and only when a parser matched it
    logferry.flags  the flags below, after the agent's own
    attributes.*    everything else the parser found (target_field, default "attributes")

A line no parser recognizes stays as it is: the line is the message, there are no fields, the
time is the agent's and the level is detected in the text. Steps, for a line that a parser
recognizes (parsers are tried in the configured order, the first that returns fields wins):

1. ``rename_fields`` then ``drop_fields``, dotted paths in the parsed fields, relative to the
   parsed record itself, not to the document (a literal dotted key
   such as ``"log.level"`` is found as well as nested objects). Renaming first lets one keep a
   field out of an object and drop the rest of it. A rename whose destination runs through a
   non-object is skipped.
2. Promotion: the first non-empty string among ``message``, ``msg`` becomes the message; the
   first key among ``@timestamp, timestamp, time, ts, date`` whose value is a valid time (see
   :mod:`indexer.stages.timestamps`) becomes the timestamp; the first key among ``level,
   log.level, lvl, severity, levelname, loglevel, log_level`` that normalizes becomes the level.
   A promoted key leaves the fields (it would only be a second copy, often of another type). A
   time key that does not give a valid time stays, flagged ``timestamp_invalid``; app times
   before 2000 are taken as invalid too, being far more often a duration or a zero than a log
   line from the last millennium (and a 1970 index would fall to retention at once).
3. The level, if still unknown and the message is free text (an unparsed line, or a message
   promoted from the fields), is detected in the text; an access-log line is not searched.
4. Placement and limits (:func:`indexer.stages.limits.cap_fields`), applied to the parsed fields
   themselves, so the nesting under ``target_field`` does not count against ``max_depth``.

Conflict rule: parsed fields never replace the reserved top-level fields ``@timestamp``,
``message``, ``host``, ``log``, ``kubernetes``, ``logferry``, ``event``. Under a target field this
holds by construction (the settings refuse a reserved target). With ``target_field: ""`` (merge
at the root), a key whose first segment is reserved, is ``attributes`` or starts with ``_``
(OpenSearch metadata such as ``_id`` would fail the whole document) moves under ``attributes``
instead, flagged ``field_conflict``: nothing lost, nothing overwritten.

Flags: ``parse_error`` (the line starts with ``{`` but is no JSON object, and no other parser
took it: often a JSON line cut by a size limit), ``timestamp_invalid``, ``fields_capped`` (keys
dropped at ``max_fields``), ``value_truncated`` (a string cut at ``max_value_bytes``),
``fields_flattened`` (an object or array stored as JSON text by the depth rule),
``field_conflict``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from indexer.stages.levels import detect_level, normalize_level
from indexer.stages.limits import cap_fields_detailed, needs_no_capping
from indexer.stages.parsers import PatternParser, parse_json_object, parse_logfmt
from indexer.stages.timestamps import normalize_timestamp
from logferry.config._processing import RESERVED_FIELDS, ProcessingSettings

FLAG_PARSE_ERROR = "parse_error"
FLAG_TIMESTAMP_INVALID = "timestamp_invalid"
FLAG_FIELDS_CAPPED = "fields_capped"
FLAG_VALUE_TRUNCATED = "value_truncated"
FLAG_FIELDS_FLATTENED = "fields_flattened"
FLAG_FIELD_CONFLICT = "field_conflict"

MESSAGE_KEYS = ("message", "msg")
TIME_KEYS = ("@timestamp", "timestamp", "time", "ts", "date")
LEVEL_KEYS = ("level", "log.level", "lvl", "severity", "levelname", "loglevel", "log_level")
CONFLICT_FIELD = "attributes"
_ROOT_RESERVED = RESERVED_FIELDS | {CONFLICT_FIELD}
_MIN_APP_TIME = "2000-01-01T00:00:00Z"

Parser = Callable[[str], dict[str, Any] | None]
Path = tuple[str, ...]
# What Processor.shape returns: (fields, timestamp, level, message, flags, original).
Shaped = tuple[dict[str, Any], str, str | None, str, list[str], str | None]


@dataclass(slots=True)
class Processed:
    """What one line contributes to its document; :meth:`apply` writes it there."""

    fields: dict[str, Any]  # top-level document fields to add; never a reserved one
    timestamp: str
    level: str | None
    message: str
    flags: list[str] = field(default_factory=list)
    original: str | None = None  # for event.original

    def apply(self, doc: dict[str, Any]) -> None:
        """Write the result into a document from ``to_document``, keeping its other fields
        (``log.file``, ``event.ingested``, the agent's flags...)."""
        doc["@timestamp"] = self.timestamp
        doc["message"] = self.message
        if self.level is not None:
            doc.setdefault("log", {})["level"] = self.level
        if self.original is not None:
            doc.setdefault("event", {})["original"] = self.original
        if self.flags:
            meta = doc.setdefault("logferry", {})
            # A new list: the existing one may be the wire record's own.
            meta["flags"] = [*meta.get("flags", ()), *self.flags]
        for key, value in self.fields.items():
            if key not in RESERVED_FIELDS:
                doc[key] = value


class Processor:
    """The processing stages for one configuration; :meth:`process` is pure and thread-safe."""

    def __init__(self, settings: ProcessingSettings) -> None:
        self.settings = settings
        patterns = PatternParser(settings.patterns, settings.presets)
        available: dict[str, Parser | None] = {
            "json": parse_json_object,
            "logfmt": parse_logfmt,
            "patterns": patterns.parse if patterns else None,
        }
        self._parsers = [p for name in settings.parsers if (p := available[name]) is not None]
        self._json = "json" in settings.parsers
        self._renames: list[tuple[Path, Path]] = [
            (tuple(src.split(".")), tuple(dst.split(".")))
            for src, dst in settings.rename_fields.items()]
        self._drops: list[Path] = [tuple(path.split(".")) for path in settings.drop_fields]
        target = settings.target_field
        self._target: Path = tuple(target.split(".")) if target else ()
        self._max_fields = settings.max_fields
        self._max_value_bytes = settings.max_value_bytes
        self._max_depth = settings.max_depth
        self._keep_original = settings.keep_original

    def process(self, message: str, agent_ts: str, now: datetime) -> Processed:
        """Process one line. ``agent_ts`` is the record's time, used when the line has none of
        its own; ``now`` bounds plausible times and dates a year-less syslog time.

        The result depends on nothing else, so a replay gives the same document if ``now``
        does not depend on when the line is processed: derive it from the record (its
        ``agent_ts``) rather than the wall clock. With a wall-clock ``now`` only lines at the
        edges differ (a time about a day ahead, a year-less date around New Year)."""
        return Processed(*self.shape(message, agent_ts, now))

    def shape(self, message: str, agent_ts: str, now: datetime) -> Shaped:
        """:meth:`process` as a plain tuple ``(fields, timestamp, level, message, flags,
        original)``: the indexer's hot loop unpacks it straight into the document."""
        parsed: dict[str, Any] | None = None
        for parse in self._parsers:
            parsed = parse(message)
            if parsed is not None:
                break
        if parsed is None:
            flags = [FLAG_PARSE_ERROR] if self._json and _looks_like_json(message) else []
            return ({}, agent_ts if agent_ts[-1:] == "Z" else _agent_time(agent_ts, now),
                    detect_level(message), message, flags, None)

        flags = []
        fields = parsed
        if self._renames or self._drops:
            for src, dst in self._renames:
                _rename(fields, src, dst)
            for path in self._drops:
                _pop(fields, path)

        text = message
        promoted = False
        get = fields.get
        for key in MESSAGE_KEYS:
            value = get(key)
            if type(value) is str and value:
                text = value
                promoted = True
                del fields[key]
                break

        timestamp: str | None = None
        invalid_time = False
        for key in TIME_KEYS:
            if key in fields:
                found = normalize_timestamp(fields[key], now)
                if found is not None and found >= _MIN_APP_TIME:
                    timestamp = found
                    del fields[key]
                    break
                invalid_time = True
        if timestamp is None:
            if invalid_time:
                flags.append(FLAG_TIMESTAMP_INVALID)
            timestamp = agent_ts if agent_ts[-1:] == "Z" else _agent_time(agent_ts, now)

        level: str | None = None
        for key in LEVEL_KEYS:
            if key in fields:
                level = normalize_level(fields[key])
                if level is not None:
                    del fields[key]
                    break
        if level is None and promoted:
            level = detect_level(text)

        if not self._target and not _no_root_conflict(fields):
            _resolve_root_conflicts(fields, flags)
        out: dict[str, Any] = {}
        if fields:
            if needs_no_capping(fields, len(message), self._max_fields,
                                self._max_value_bytes):
                out = fields
            else:
                capped = cap_fields_detailed(fields, self._max_fields, self._max_value_bytes,
                                             self._max_depth)
                if capped.dropped:
                    flags.append(FLAG_FIELDS_CAPPED)
                if capped.truncated:
                    flags.append(FLAG_VALUE_TRUNCATED)
                if capped.stringified:
                    flags.append(FLAG_FIELDS_FLATTENED)
                out = capped.fields
            for name in reversed(self._target):
                out = {name: out}
        return (out, timestamp, level, text, flags,
                message if self._keep_original else None)


def _agent_time(agent_ts: str, now: datetime) -> str:
    # The agent writes UTC with a Z, taken as is; a CRI time with a local offset is
    # normalized. Should that fail (a clock far ahead), the value is kept anyway: a record
    # always has a time.
    if agent_ts[-1:] == "Z":
        return agent_ts
    return normalize_timestamp(agent_ts, now) or agent_ts


def _looks_like_json(message: str) -> bool:
    first = message[:1]
    return first == "{" or (first.isspace() and message.lstrip()[:1] == "{")


def _locate(obj: dict[str, Any], parts: Path) -> tuple[dict[str, Any], str] | None:
    """The object holding ``parts`` and the key in it. At each level the longest literal
    dotted key is tried first (``{"log.level": ...}``), then shorter ones with nesting."""
    n = len(parts)
    for i in range(n, 0, -1):
        key = parts[0] if i == 1 else ".".join(parts[:i])
        if key not in obj:
            continue
        if i == n:
            return obj, key
        child = obj[key]
        if isinstance(child, dict):
            found = _locate(child, parts[i:])
            if found is not None:
                return found
    return None


def _pop(obj: dict[str, Any], parts: Path) -> None:
    found = _locate(obj, parts)
    if found is not None:
        found[0].pop(found[1])


def _rename(obj: dict[str, Any], src: Path, dst: Path) -> None:
    found = _locate(obj, src)
    if found is None:
        return
    # Taken out first, so that renaming "a" to "a.b" nests it instead of making a cycle.
    src_holder, src_key = found
    value = src_holder.pop(src_key)
    holder = obj
    for part in dst[:-1]:
        child = holder.get(part)
        if child is None:
            child = holder[part] = {}
        elif not isinstance(child, dict):
            src_holder[src_key] = value  # the way is blocked by a value: leave it as it was
            return
        holder = child
    holder[dst[-1]] = value


def _no_root_conflict(fields: dict[str, Any]) -> bool:
    """Whether :func:`_resolve_root_conflicts` would certainly leave ``fields`` as they are: no
    key is a reserved field, starts with ``_`` or holds a dot (whose head could be either).

    C-level calls only: the per-key loop cost about 1 µs a JSON line, a seventh of shaping
    it, and almost no line has such a key. ``False`` means "look closer", not "there is a
    conflict" (a key holding ``\\0_`` is looked at for nothing)."""
    if not _ROOT_RESERVED.isdisjoint(fields):
        return False
    try:
        keys = "\0" + "\0".join(fields)
    except TypeError:  # a key that is not a string
        return False
    return "." not in keys and "\0_" not in keys


def _resolve_root_conflicts(fields: dict[str, Any], flags: list[str]) -> None:
    moved: dict[str, Any] | None = None
    for key in list(fields):
        # Judged on the key as OpenSearch will read it: the limits stage drops empty segments.
        head = key.lstrip(".").partition(".")[0]
        if head in _ROOT_RESERVED or head[:1] == "_":
            if moved is None:
                moved = {}
            moved[key] = fields.pop(key)
    if moved is not None:
        fields[CONFLICT_FIELD] = moved
        flags.append(FLAG_FIELD_CONFLICT)

"""Log levels, normalized to one of ``trace, debug, info, warn, error, fatal``.

The mapping (case-insensitive, surrounding blanks, brackets and a trailing ``:`` ignored):

========  =================================================================================
level     names, letters and numbers that map to it
========  =================================================================================
trace     trace, trc, finest, finer, verbose, v (Android), 10 (pino/bunyan)
debug     debug, dbg, d, fine, config (java.util.logging), debug1-5 (PostgreSQL),
          7 (syslog debug), 20 (pino/bunyan)
info      info, inf, information, informational, i, notice, log (PostgreSQL), 5 (syslog
          notice), 6 (syslog informational), 30 (pino/bunyan)
warn      warn, warning, wrn, w, 4 (syslog warning), 40 (pino/bunyan)
error     error, err, eror, e, severe (java.util.logging), dpanic (zap), 3 (syslog err),
          50 (pino/bunyan)
fatal     fatal, ftl, f, critical, crit, alert, emerg, emergency, panic, a (Android assert),
          0-2 (syslog emerg, alert, crit), 60 (pino/bunyan)
========  =================================================================================

Numbers 0-7 are syslog severities (RFC 5424 6.2.1); emergency, alert and critical all become
``fatal`` as in OpenTelemetry's syslog mapping. 10-60 are pino/bunyan levels, the usual numeric
``level`` in JSON logs (Python's numeric levels are rarer in logs and would clash with them).
Numbers may come as int or digit strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")

_NAMES: dict[str, tuple[str, ...]] = {
    "trace": ("trace", "trc", "finest", "finer", "verbose", "v", "10"),
    "debug": ("debug", "dbg", "d", "fine", "config", "debug1", "debug2", "debug3", "debug4",
              "debug5", "7", "20"),
    "info": ("info", "inf", "information", "informational", "i", "notice", "log", "5", "6",
             "30"),
    "warn": ("warn", "warning", "wrn", "w", "4", "40"),
    "error": ("error", "err", "eror", "e", "severe", "dpanic", "3", "50"),
    "fatal": ("fatal", "ftl", "f", "critical", "crit", "alert", "emerg", "emergency", "panic",
              "a", "0", "1", "2", "60"),
}

# Lower, UPPER and Title spellings up front so the usual value is one dict lookup.
_LOOKUP: dict[str, str] = {
    spelling: level
    for level, names in _NAMES.items()
    for name in names
    for spelling in (name, name.upper(), name.title())
}
_BY_NUMBER: dict[int, str] = {int(k): v for k, v in _LOOKUP.items() if k.isdigit()}
_STRIP = " \t[]()<>:"


def normalize_level(value: Any) -> str | None:
    """One of :data:`LEVELS` for a level name, letter or number; ``None`` if unknown."""
    if type(value) is str:
        level = _LOOKUP.get(value)
        if level is not None:
            return level
        return _LOOKUP.get(value.strip(_STRIP).lower())
    if type(value) is int:
        return _BY_NUMBER.get(value)
    return None


# Words that count as a level in free text: no single letters or numbers (too common in
# prose), and none that are as often a component name in brackets ([log], [config]).
_WORDS = frozenset(name for names in _NAMES.values() for name in names
                   if len(name) >= 3 and name.isalpha() and name not in {"log", "fine", "config"})
_HEAD_CHARS = 100
_DIGITS = frozenset("01234567")  # kernel priorities; str.isdigit() also takes "²"
_GLOG = re.compile(r"([IWEF])\d{4} \d\d:")
# ERROR, WARN, ... as whole tokens, upper case only ("error" alone is prose). Every alternative
# begins with a literal, so the regex engine jumps between candidate first letters instead of
# trying every position (why the left boundary is checked in Python, not by a lookbehind).
_UPPER = re.compile("(" + "|".join(sorted((w.upper() for w in _WORDS), key=len, reverse=True))
                    + r")(?![\w.-])")
# [warn] <error> (Info) [core:error] in any case; the word must be in _WORDS. The words are in
# the pattern (ASCII case-insensitive, longest first), so the first match is the answer: the
# same as finding every bracketed word and skipping those that are not levels, since a
# skipped "[word]" cannot hold the start of another one.
_BRACKETED = re.compile(r"[\[<(](?:\w+:)?(?ai:("
                        + "|".join(sorted(_WORDS, key=len, reverse=True)) + r"))[\])>]")
_KEYS = ("level", "lvl", "severity")  # loglevel, log_level, log.level end in "level"
_KV_VALUE = re.compile(r"\"?[=:] ?[\"']?([A-Za-z]+)")
_START = re.compile(r"([A-Za-z]+):")


def detect_level_py(message: str) -> str | None:
    """The level a plain-text line announces in its first 100 characters, if any.

    Recognized: glog/klog ``E1125 10:15:00.123456``, kernel ``<3>``, ``level=info`` (also
    ``lvl``, ``severity``, ``"level":"info"``, any case), ``[warn]``/``<error>``/``[core:error]``,
    upper-case tokens ``ERROR``/``WARN``/... and a line starting with ``Error:``. When several
    are present the leftmost wins; a bracketed word that is no level (``[main]``) is skipped.
    """
    head = message[:_HEAD_CHARS]
    first = head[:1]
    if first in ("I", "W", "E", "F") and _GLOG.match(head) is not None:
        return _LOOKUP[first]
    if first == "<" and head[2:3] == ">" and head[1:2] in _DIGITS:
        return _BY_NUMBER.get(int(head[1]))
    if (m := _START.match(head)) is not None and (word := m.group(1).lower()) in _WORDS:
        return _LOOKUP[word]
    best_at = _HEAD_CHARS
    best: str | None = None
    lower = head.lower()
    if len(lower) != len(head):  # "İ" lowers to two characters: positions would not line up
        lower = head
    for key in _KEYS:
        at = lower.find(key)
        while 0 <= at < best_at:
            m = _KV_VALUE.match(head, at + len(key))
            if m is not None and (level := normalize_level(m.group(1))) is not None:
                best_at, best = at, level
                break
            at = lower.find(key, at + 1)
    if "[" in head or "<" in head or "(" in head:  # skips the regex for most lines
        m = _BRACKETED.search(head, 0, best_at)
        if m is not None:
            best_at, best = m.start(), _LOOKUP[m.group(1).lower()]
    m = _UPPER.search(head, 0, best_at)
    while m is not None:
        at = m.start()
        if at == 0 or not (head[at - 1].isalnum() or head[at - 1] in "_.-"):
            return _LOOKUP[m.group(1)]
        m = _UPPER.search(head, at + 1, best_at)
    return best


def _compiled() -> Callable[[str], str | None] | None:
    try:
        from indexer.stages._levels import detect, set_fallback
    except ImportError:
        return None
    set_fallback(detect_level_py)  # for lines whose head is not ASCII
    return detect


_detect_c = _compiled()
# Whether the build made the C twin (indexer/stages/_levels.c, an optional extension): one pass
# over the head instead of up to six regex searches, 6-8x less CPU a line.
COMPILED = _detect_c is not None
detect_level: Callable[[str], str | None] = _detect_c or detect_level_py
"""The level a plain-text line announces: :func:`detect_level_py`, in C where built."""

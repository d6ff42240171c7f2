"""Parsers that turn one log line into fields, each returning ``None`` when the line is not
theirs. None of them raises on any input: a line is data, never a reason to stop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import orjson

# --- JSON -----------------------------------------------------------------------------------

_BLANKS = " \t\r\n\f\v\ufeff"


def parse_json_object(message: str) -> dict[str, Any] | None:
    """The line as a dict when it is a JSON object (leading/trailing blanks allowed)."""
    if message[:1] != "{":
        stripped = message.lstrip(_BLANKS)
        if stripped[:1] != "{":
            return None
        message = stripped
    try:
        obj = orjson.loads(message)
    except orjson.JSONDecodeError:  # also raised for lone surrogates and 1e400
        return None
    return obj if isinstance(obj, dict) else None


# --- logfmt ---------------------------------------------------------------------------------

# A key is an identifier-like token (dots, dashes and slashes allowed inside); a value is a
# double-quoted string with backslash escapes, or a run of anything but blanks and quotes
# (possibly empty). A token that is not such a pair, or a pair glued to what follows it
# (a="x"y), matches the last alternative: junk, and the line is not logfmt. One stray word
# ("Set timeout=30 for all") makes the line prose, which stays untouched.
_TOKEN = re.compile(
    r'([A-Za-z_][\w.\-/]*+)=(?:"([^"\\]*+(?:\\.[^"\\]*+)*+)"|([^\s"]*+))(?!\S)|(\S+)',
    # Possessive quantifiers (backtracking could find no other match) and ASCII classes make it
    # about twice as fast; the price is that a non-ASCII blank does not separate two pairs.
    re.DOTALL | re.ASCII)
_FIRST_PAIR = re.compile(r"\s*[A-Za-z_][\w.\-/]*+=", re.ASCII)


def parse_logfmt(message: str) -> dict[str, str] | None:
    """``key=value key2="quoted \\" value"`` as a dict, or ``None`` unless the whole line is
    at least two ``key=value`` pairs with distinct keys (a repeated key keeps its
    last value)."""
    # Most prose fails on its first word; checking that first spares tokenizing a long line.
    if "=" not in message or _FIRST_PAIR.match(message) is None:
        return None
    out: dict[str, str] = {}
    for key, quoted, bare, junk in _TOKEN.findall(message):
        if junk:
            return None
        if bare or not quoted:
            out[key] = bare
        elif "\\" in quoted:
            out[key] = _unescape(quoted)
        else:
            out[key] = quoted
    return out if len(out) >= 2 else None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(value: str) -> str:
    try:
        decoded = orjson.loads(f'"{value}"')  # Go's strconv.Quote is JSON for the usual cases
    except orjson.JSONDecodeError:  # \x41, raw tabs, bad \u...: keep what can be kept
        return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), value)
    return decoded if isinstance(decoded, str) else value


# --- regex patterns -------------------------------------------------------------------------

# The inside of a double-quoted field with backslash escapes, written as an unrolled loop: an
# alternation per character is several times slower in Python's regex engine. The presets use
# possessive quantifiers where backtracking could not find another match anyway, and ASCII
# classes (\d is 0-9 only; \S still takes any non-ASCII character).
_Q = r'[^"\\]*+(?:\\.[^"\\]*+)*+'

# Combined Log Format (Apache "combined", nginx's default "main" with its optional trailing
# "$http_x_forwarded_for"); anything after it (ingress-nginx adds timings) is ignored. A
# request that is not "METHOD path [HTTP/x]" (TLS bytes on a plain port, "-") is kept whole.
_COMBINED = (
    r"(?P<client_ip>\S++) \S++ (?P<user>\S++) \[(?P<timestamp>[^\]]++)\] "
    r'"(?:(?P<method>[A-Z]++) (?P<path>[^\s"]++)(?: (?P<http_version>HTTP/\d++(?:\.\d++)?))?'
    rf'|(?P<request>{_Q}))" (?P<status>\d{{3}}) (?P<bytes>\d++|-)'
    rf'(?: "(?P<referrer>{_Q})" "(?P<user_agent>{_Q})"(?: "(?P<forwarded_for>{_Q})")?)?'
)
# BSD syslog as written to /var/log/syslog (no <PRI>) or sent on the wire (with it).
_RFC3164 = (
    r"(?:<(?P<pri>\d{1,3})>)?(?P<timestamp>[A-Z][a-z]{2} [ 0-3]?\d \d\d:\d\d:\d\d(?:\.\d+)?) "
    r"(?P<hostname>\S++) (?:(?P<app_name>[^\s\[\]:]++)(?:\[(?P<proc_id>[^\]\s]++)\])?: )?"
    r"(?P<message>.*)"
)
_RFC5424 = (
    r"<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<timestamp>\S++) (?P<hostname>\S++) "
    r"(?P<app_name>\S++) (?P<proc_id>\S++) (?P<msg_id>\S++) "
    rf'(?P<structured_data>-|(?:\[(?:[^\]"\\]|\\.|"{_Q}")*\])+)'
    r"(?: \ufeff?(?P<message>.*))?"
)

PRESETS: Final[dict[str, str]] = {
    "nginx_access": _COMBINED,
    "apache_combined": _COMBINED,
    "syslog_rfc3164": _RFC3164,
    "syslog_rfc5424": _RFC5424,
}


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A user pattern compiled, or :class:`ValueError` saying why it cannot be used."""
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
    if not compiled.groupindex:
        raise ValueError(f"pattern {pattern!r} has no named group (?P<name>...) to extract")
    return compiled


class PatternParser:
    """Regexes with named groups, tried in order; the first that matches gives the fields.

    User patterns come first, with :func:`re.search` semantics (anchor them with ``^`` if
    that is meant) and are named ``pattern_0``, ``pattern_1``, ...; presets follow under their
    own names, anchored at the start of the line. In the result, a group that did not take
    part, captured nothing or captured ``-`` (the "no value" of the combined and syslog
    formats) is left out, and a ``pri`` group is decoded into ``facility`` and ``severity``
    (numbers as text).
    """

    def __init__(self, patterns: Iterable[str] = (), presets: Iterable[str] = ()) -> None:
        entries: list[tuple[str, re.Pattern[str], bool]] = []
        for i, pattern in enumerate(patterns):
            entries.append((f"pattern_{i}", compile_pattern(pattern), False))
        for name in presets:
            if name not in PRESETS:
                raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
            entries.append((name, re.compile(PRESETS[name], re.DOTALL | re.ASCII), True))
        # Group names in group order, to pair with Match.groups(): cheaper than groupdict().
        self._entries = [
            (name, compiled, anchored, tuple(sorted(compiled.groupindex,
                                                    key=compiled.groupindex.__getitem__)),
             compiled.groups == len(compiled.groupindex))
            for name, compiled, anchored in entries]
        self.names = [name for name, _, _ in entries]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def match(self, message: str) -> tuple[str, dict[str, str]] | None:
        """The name of the first pattern that matches, and its fields."""
        for name, pattern, anchored, group_names, all_named in self._entries:
            m = pattern.match(message) if anchored else pattern.search(message)
            if m is None:
                continue
            if all_named:
                fields = {k: v for k, v in zip(group_names, m.groups(), strict=True)
                          if v and v != "-"}
            else:  # unnamed groups too: groups() would not line up with the names
                fields = {k: v for k, v in m.groupdict().items() if v and v != "-"}
            pri = fields.pop("pri", None)
            if pri is not None and pri.isdecimal() and int(pri) < 192:
                fields["facility"] = str(int(pri) >> 3)
                fields["severity"] = str(int(pri) & 7)
            return name, fields
        return None

    def parse(self, message: str) -> dict[str, str] | None:
        found = self.match(message)
        return found[1] if found is not None else None

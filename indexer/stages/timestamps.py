"""Timestamps found in log lines, normalized to RFC 3339 UTC with a ``Z`` (``date_nanos``-ready).

Accepted, in the order they are tried:

- RFC 3339 already in UTC with ``Z`` and at most 9 fraction digits: returned unchanged after a
  regex and a range check (the common case: no datetime is built).
- numbers (int, float, or a decimal string): seconds, milliseconds, microseconds or nanoseconds
  since the epoch, told apart by magnitude (below 1e11 seconds, below 1e14 milliseconds, below
  1e17 microseconds, else nanoseconds); the output keeps the shortest of 0/3/6/9 fraction digits
  that is exact.
- ISO 8601 / RFC 3339 with ``T`` or a space, ``-`` or ``/`` in the date, ``.`` or ``,`` before
  the fraction, and ``Z``, ``UTC``, ``+hh:mm``, ``+hhmm`` or ``+hh`` (Go adds a zone name after
  the offset: ignored). No offset means UTC. Fraction digits are kept as written, up to 9.
- nginx/apache ``10/Oct/2026:13:55:36 -0700``, with or without the brackets.
- BSD syslog ``Oct 11 22:14:15`` (no year, no zone): UTC, in the year that puts it closest to
  ``now`` without being more than the one day of slack after it (so "Dec 31" read on Nov 25
  is last year's, and "Jan 1 00:00:05" read on Dec 31 at 23:59 is next year's).
- aware or naive (taken as UTC) :class:`datetime` objects.

Anything else, anything before 1970-01-01T00:00:00Z and anything more than one day after ``now``
(checked to the second) is ``None``: a clock that far off is a bug and would create an index
per absurd day.

``now`` matters for the result (year inference, future bound): pass the record's own time, not
the wall clock, if a replay must produce the same document.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_FUTURE_SLACK_S = 86400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_STRING = "1970-01-01T00:00:00"

_CANONICAL = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?Z")
# Up to 20 digits covers nanoseconds until year 5138; longer is no time (and int() refuses
# digit strings beyond 4300 characters).
_NUMBER = re.compile(r"\d{1,20}(?:\.\d*)?")
_ISO = re.compile(
    r"(\d{4})[-/](\d\d)[-/](\d\d)"
    r"(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"
    r" ?(?:[Zz]|UTC|GMT|([+-])(\d\d)(?::?(\d\d))?(?: [A-Za-z]{3,5})?)?")
_CLF = re.compile(
    r"\[?(\d\d)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)(?:\.(\d+))? ([+-])(\d\d)(\d\d)\]?")
_BSD = re.compile(r"([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?")

_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    start=1)}
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Epoch magnitude thresholds and, per unit, nanoseconds per unit and fraction digits kept.
_UNITS = ((10**11, 10**9, 9), (10**14, 10**6, 6), (10**17, 10**3, 3))


class _Bounds:
    """The upper bound for one ``now``: a batch passes the same ``now`` many times."""

    __slots__ = ("now", "now_s", "upper_s", "upper_text", "upper_year")

    def __init__(self, now: datetime, now_s: int) -> None:
        self.now = now
        self.now_s = now_s
        self.upper_s = now_s + _FUTURE_SLACK_S
        self.upper_text = _second_text(self.upper_s)
        self.upper_year = int(self.upper_text[:4])


# Seconds since the epoch to "YYYY-MM-DDTHH:MM:SS"; parsed date-time fields (all but the
# fraction) to seconds; and whole texts without a fraction to seconds. Lines come in bursts
# that share their second, and formatting or parsing one costs microseconds. Each is cleared
# when full, which is cheaper than an LRU's upkeep. None of them depends on ``now``.
_CACHE_MAX = 4096
_second_texts: dict[int, str] = {}
_parsed: dict[tuple[str | None, ...], int | None] = {}
_by_text: dict[str, int | None] = {}
_UNSEEN = -(1 << 62)  # no date-time is that far back


def _second_text(epoch_s: int) -> str:
    text = _second_texts.get(epoch_s)
    if text is None:
        t = time.gmtime(epoch_s)
        text = f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}"
        if len(_second_texts) >= _CACHE_MAX:
            _second_texts.clear()
        _second_texts[epoch_s] = text
    return text


# A one-entry cache; threads racing on it only cost a recomputation.
_last = [_Bounds(datetime(2000, 1, 1, tzinfo=UTC), 946684800)]


def _bounds(now: datetime) -> _Bounds:
    last = _last[0]
    if last.now is now or last.now == now:
        return last
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    now_s = math.floor(aware.timestamp())
    if now_s != last.now_s:
        last = _Bounds(now, now_s)
    else:
        last.now = now
    _last[0] = last
    return last


def normalize_timestamp(value: Any, now: datetime) -> str | None:
    """``value`` as ``YYYY-MM-DDTHH:MM:SS[.fraction]Z``, or ``None`` if it is not a plausible
    time; see the module docstring for the accepted forms."""
    if type(value) is str:
        if value[-1:] == "Z":
            found = canonical(value, _bounds(now).upper_text)
            if found is not NotImplemented:
                return found  # type: ignore[no-any-return]
        return _from_text(value.strip(), now)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _from_epoch(value, "", now) if value >= 0 else None
    if isinstance(value, float):
        return _from_float(value, now)
    if isinstance(value, datetime):
        return _from_datetime(value, now)
    return None


def canonical_py(value: str, upper: str) -> Any:
    """``value`` when it is RFC 3339 UTC as the indexer writes it, from 1970 on, no later than
    ``upper`` (a ``YYYY-MM-DDTHH:MM:SS`` text) and on a day that exists; ``None`` when it has
    that form but not those bounds; ``NotImplemented`` when it does not have that form."""
    if _CANONICAL.fullmatch(value) is None:
        return NotImplemented
    if value < _MIN_STRING or value[:19] > upper:
        return None
    if value[8:10] > "28" and not _day_exists(int(value[:4]), int(value[5:7]),
                                              int(value[8:10])):
        return None
    return value


def _compiled() -> Callable[[str, str], Any] | None:
    try:
        from indexer.stages._timestamps import canonical as canonical_c
        from indexer.stages._timestamps import set_fallback
    except ImportError:
        return None
    set_fallback(canonical_py)  # for values that are not ASCII
    return canonical_c


_canonical_c = _compiled()
# Whether the build made the C twin (indexer/stages/_timestamps.c, an optional extension): one
# pass over the text instead of a regex, slices and comparisons, about 0.5 us less a JSON line.
COMPILED = _canonical_c is not None
canonical: Callable[[str, str], Any] = _canonical_c or canonical_py
"""The canonical-form check of :func:`normalize_timestamp`: :func:`canonical_py`, in C where
built."""


def _day_exists(year: int, month: int, day: int) -> bool:
    if month == 2 and day == 29:
        return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= _DAYS_IN_MONTH[month]


def _from_text(text: str, now: datetime) -> str | None:
    if not text:
        return None
    # An access log repeats its second-resolution time on many consecutive lines.
    epoch_s = _by_text.get(text, _UNSEEN)
    if epoch_s != _UNSEEN:
        return _result(epoch_s, None, now)
    first = text[0]
    if first.isdigit():
        if text[2:3] == "/":
            m = _CLF.fullmatch(text)
            return _from_clf(m, text, now) if m is not None else None
        if _NUMBER.fullmatch(text):
            whole, _, fraction = text.partition(".")
            return _from_epoch(int(whole), fraction, now)
        m = _ISO.fullmatch(text)
        return _from_iso(m, text, now) if m is not None else None
    if first == "[":
        m = _CLF.fullmatch(text)
        return _from_clf(m, text, now) if m is not None else None
    m = _BSD.fullmatch(text)
    return _from_bsd(m, now) if m is not None else None


def _from_iso(m: re.Match[str], text: str, now: datetime) -> str | None:
    groups = m.groups()
    key = groups[:6] + groups[7:]  # all but the fraction
    epoch_s = _parsed.get(key, _UNSEEN)
    if epoch_s == _UNSEEN:
        # Z, UTC, GMT and no zone at all leave the sign empty: offset 0.
        year, month, day, hour, minute, second, _, sign, off_h, off_m = groups
        offset = 0
        if sign is not None:
            offset = int(off_h) * 60 + int(off_m or 0)
            if sign == "-":
                offset = -offset
        epoch_s = _remember(key, _epoch(int(year), int(month), int(day), int(hour or 0),
                                        int(minute or 0), int(second or 0), offset))
    if groups[6] is None:
        _remember_text(text, epoch_s)
    return _result(epoch_s, groups[6], now)


def _from_clf(m: re.Match[str], text: str, now: datetime) -> str | None:
    groups = m.groups()
    key = ("clf", *groups[:6], *groups[7:])
    epoch_s = _parsed.get(key, _UNSEEN)
    if epoch_s == _UNSEEN:
        day, month_name, year, hour, minute, second, _, sign, off_h, off_m = groups
        month = _MONTHS.get(month_name.lower())
        offset = int(off_h) * 60 + int(off_m)
        epoch_s = _remember(key, None if month is None else _epoch(
            int(year), month, int(day), int(hour), int(minute), int(second),
            -offset if sign == "-" else offset))
    if groups[6] is None:
        _remember_text(text, epoch_s)
    return _result(epoch_s, groups[6], now)


def _from_bsd(m: re.Match[str], now: datetime) -> str | None:
    month_name, day_text, hour_text, minute_text, second_text, fraction = m.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        return None
    bounds = _bounds(now)
    # The latest year that does not put the line in the future: logs are read after they are
    # written, so "Dec 31" seen on Nov 25 is last year's (strictly closest would say next
    # year's and then reject it as future). Going back up to 8 years finds the last Feb 29.
    for year in range(bounds.upper_year, bounds.upper_year - 9, -1):
        epoch_s = _epoch(year, month, int(day_text), int(hour_text), int(minute_text),
                         int(second_text), 0)
        if epoch_s is not None and epoch_s <= bounds.upper_s:
            return _result(epoch_s, fraction, now)
    return None


def _epoch(year: int, month: int, day: int, hour: int, minute: int, second: int,
           offset_min: int) -> int | None:
    """Seconds since the epoch, or ``None`` for a date or time that does not exist."""
    if hour > 23 or minute > 59 or second > 59:  # a leap second :60 does not parse back
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:  # Feb 29 outside leap years, Apr 31, month 13...
        return None
    return days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60


def _remember(key: tuple[str | None, ...], epoch_s: int | None) -> int | None:
    if len(_parsed) >= _CACHE_MAX:
        _parsed.clear()
    _parsed[key] = epoch_s
    return epoch_s


def _remember_text(text: str, epoch_s: int | None) -> None:
    if len(_by_text) >= _CACHE_MAX:
        _by_text.clear()
    _by_text[text] = epoch_s


def _result(epoch_s: int | None, fraction: str | None, now: datetime) -> str | None:
    if epoch_s is None or epoch_s < 0 or epoch_s > _bounds(now).upper_s:
        return None
    if fraction:
        return f"{_second_text(epoch_s)}.{fraction[:9]}Z"
    return _second_text(epoch_s) + "Z"


def _from_float(value: float, now: datetime) -> str | None:
    if not math.isfinite(value) or value < 0:
        return None
    # repr is the shortest text that round-trips: it carries the digits the app meant, where
    # float arithmetic would invent some (1700000000.1 * 1e9 is not ...100000000).
    text = repr(value)
    if "e" in text:
        try:
            text = format(Decimal(text), "f")
        except InvalidOperation:
            return None
    whole, _, fraction = text.partition(".")
    return _from_epoch(int(whole), fraction, now)


def _from_epoch(whole: int, fraction: str, now: datetime) -> str | None:
    """``whole`` (and the decimal ``fraction`` digits after it) in a unit chosen by magnitude."""
    unit_ns, digits = 1, 0
    for limit, unit, unit_digits in _UNITS:
        if whole < limit:
            unit_ns, digits = unit, unit_digits
            break
    ns = whole * unit_ns
    if digits and fraction:
        ns += int(fraction[:digits].ljust(digits, "0"))
    seconds, sub_ns = divmod(ns, 10**9)
    if seconds > _bounds(now).upper_s:
        return None
    return _second_text(seconds) + _fraction(sub_ns) + "Z"


def _fraction(sub_ns: int) -> str:
    """The shortest of 0, 3, 6 or 9 digits that is exact."""
    if sub_ns == 0:
        return ""
    if sub_ns % 1_000_000 == 0:
        return f".{sub_ns // 1_000_000:03d}"
    if sub_ns % 1_000 == 0:
        return f".{sub_ns // 1_000:06d}"
    return f".{sub_ns:09d}"


def _from_datetime(value: datetime, now: datetime) -> str | None:
    try:
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = aware - _EPOCH
    except OverflowError:  # datetime.min/max shifted by their offset
        return None
    seconds = delta.days * 86400 + delta.seconds
    if seconds < 0 or seconds > _bounds(now).upper_s:
        return None
    return _second_text(seconds) + _fraction(delta.microseconds * 1000) + "Z"

"""Bounds on what one record may add to the index mapping and to a document.

Dynamic mapping gives every new key a mapping field, forever: one app logging ids as keys, or
a deep object, would exhaust ``mapping.total_fields.limit`` and get every later document of
the index rejected. :func:`cap_fields` bounds one record:

- depth: the top-level keys are depth 1. An object whose keys would lie deeper than
  ``max_depth`` is replaced by its JSON text, and so is an array that holds an object or an
  array (object arrays map every element's keys; nested arrays are one field in name only).
  Arrays of scalars stay arrays. ``max_depth`` counts as at most :data:`MAX_DEPTH`: deeper,
  orjson cannot serialize the document (it stops at 255 levels) and the walk would exhaust
  Python's recursion limit, so one deep JSON line would stop the indexer.
- count: every key kept counts one field, objects included, as in the mapping. An object's own
  keys are kept (in their order) before anything nested in them, and nested objects are then
  filled in order: the shallow fields, usually the ones that matter, win. Once ``max_fields``
  are kept the others are dropped, a dropped object counting once however much it held.
- size: a string (an array element or a JSON text from the depth rule included) longer than
  ``max_value_bytes`` in UTF-8 is cut at a character boundary and ends with
  :data:`TRUNCATION_MARKER`, the whole staying within the limit (for a limit below the
  marker's size, the value is only cut).
- keys OpenSearch rejects outright are mended: an empty key becomes ``_``, empty segments of a
  dotted key are removed (``.a..b.`` becomes ``a.b``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson

TRUNCATION_MARKER = "…[truncated]"
_MARKER_BYTES = len(TRUNCATION_MARKER.encode())
_SCALARS = (str, int, float, bool, type(None))
# Far above OpenSearch's own index.mapping.depth.limit (20), far below orjson's 255 levels.
MAX_DEPTH = 100


@dataclass(slots=True)
class CapResult:
    fields: dict[str, Any]
    dropped: int  # keys left out because max_fields was reached
    truncated: int  # string values cut to max_value_bytes
    stringified: int  # objects and arrays replaced by their JSON text


def cap_fields(fields: dict[str, Any], max_fields: int, max_value_bytes: int,
               max_depth: int) -> tuple[dict[str, Any], int]:
    """``fields`` within the limits, and how many keys were dropped plus values truncated.

    The input is not modified. See :func:`cap_fields_detailed` for the counts one by one.
    """
    result = cap_fields_detailed(fields, max_fields, max_value_bytes, max_depth)
    return result.fields, result.dropped + result.truncated


def cap_fields_detailed(fields: dict[str, Any], max_fields: int, max_value_bytes: int,
                        max_depth: int) -> CapResult:
    capper = _Capper(max_fields, max_value_bytes, max_depth)
    out = capper.object(fields, 1)
    return CapResult(out, capper.dropped, capper.truncated, capper.stringified)


_FLAT_TYPES = frozenset({str, int, float, bool, type(None)})


def needs_no_capping_py(fields: dict[str, Any], source_chars: int, max_fields: int,
                        max_value_bytes: int) -> bool:
    """Whether ``fields``, parsed from a text of ``source_chars`` characters, is certainly left
    unchanged by :func:`cap_fields` (whatever ``max_depth``): flat, few enough keys, keys that
    need no mending, and strings that cannot be too long (a parsed string is never longer than
    the text it came from, and a character is at most 4 bytes).

    Only C-level calls, no loop over the keys in Python: most log records are small and flat,
    and this spares them the walk. ``False`` means "walk it", not "it breaks a limit".
    """
    if source_chars * 4 > max_value_bytes or len(fields) > max_fields:
        return False
    if not set(map(type, fields.values())) <= _FLAT_TYPES:
        return False
    try:
        return "" not in fields and "." not in "\n".join(fields)
    except TypeError:  # a key that is not a string: let the walk turn it into one
        return False


def _compiled() -> Callable[[dict[str, Any], int, int, int], bool] | None:
    try:
        from indexer.stages._limits import needs_no_capping
    except ImportError:
        return None
    return needs_no_capping


_needs_no_capping_c = _compiled()
# Whether the build made the C twin (indexer/stages/_limits.c, an optional extension): one pass
# over the dict instead of a set of types and a join, about 1 us less a parsed line.
COMPILED = _needs_no_capping_c is not None
needs_no_capping: Callable[[dict[str, Any], int, int, int], bool] = (
    _needs_no_capping_c or needs_no_capping_py)
"""Whether ``fields`` needs no capping: :func:`needs_no_capping_py`, in C where built."""


class _Capper:
    __slots__ = ("budget", "dropped", "max_bytes", "max_depth", "short", "stringified",
                 "truncated")

    def __init__(self, max_fields: int, max_value_bytes: int, max_depth: int) -> None:
        self.budget = max_fields if max_fields > 0 else 0
        self.max_bytes = max_value_bytes if max_value_bytes > 0 else 0
        self.max_depth = min(max_depth, MAX_DEPTH) if max_depth > 1 else 1
        # A string of at most this many characters cannot exceed max_bytes (4 bytes a char at
        # most): the usual value is checked without being encoded.
        self.short = self.max_bytes // 4
        self.dropped = 0
        self.truncated = 0
        self.stringified = 0

    def object(self, src: dict[Any, Any], depth: int) -> dict[str, Any]:
        # A copy fixed in place: most records need no change, and a C-level copy plus a loop
        # that only reads is cheaper than building a new dict key by key.
        budget = self.budget
        if len(src) <= budget:
            out = dict(src)
        else:
            out = dict(islice(src.items(), budget))
            self.dropped += len(src) - budget
        self.budget = budget - len(out)
        short = self.short
        nest = depth < self.max_depth
        mend = False
        for key, value in out.items():  # values are replaced, never added: safe to iterate
            if type(key) is not str or not key or (
                    "." in key and (key[0] == "." or key[-1] == "." or ".." in key)):
                mend = True
            kind = type(value)
            if kind is str:
                if len(value) > short:
                    out[key] = self.text(value)
            elif kind is int or kind is float or kind is bool or value is None:
                continue
            elif kind is dict:
                out[key] = self.object(value, depth + 1) if nest else self.stringify(value)
            elif kind is list:
                out[key] = self.array(value)
            else:
                out[key] = self.other(value, depth)
        if mend:
            return {_mend(key): value for key, value in out.items()}
        return out

    def other(self, value: Any, depth: int) -> Any:
        """The rare types: subclasses, tuples, anything a caller built by hand."""
        if isinstance(value, str):
            return self.text(str(value))
        if isinstance(value, int | float) or value is None:
            return value
        if isinstance(value, dict):
            if depth >= self.max_depth:
                return self.stringify(value)
            return self.object(value, depth + 1)
        if isinstance(value, list | tuple):
            return self.array(value)
        return self.text(str(value))

    def array(self, values: list[Any] | tuple[Any, ...]) -> list[Any] | str:
        for value in values:
            if not isinstance(value, _SCALARS):
                return self.stringify(values)
        return [self.text(str(v)) if isinstance(v, str) else v for v in values]

    def stringify(self, value: Any) -> str:
        self.stringified += 1
        try:
            text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # lone surrogates, nesting beyond orjson's 254 levels
            try:
                text = json.dumps(value, default=str)
            except (TypeError, ValueError, RecursionError):
                text = f"<{type(value).__name__} that is not JSON>"
        return self.text(text)

    def text(self, value: str) -> str:
        if len(value) <= self.short:
            return value
        raw = value.encode("utf-8", "surrogatepass")
        if len(raw) <= self.max_bytes:
            return value
        self.truncated += 1
        if self.max_bytes <= _MARKER_BYTES:
            return raw[:self.max_bytes].decode("utf-8", "ignore")
        # "ignore" drops the partial character at the cut (and any lone surrogate).
        return raw[:self.max_bytes - _MARKER_BYTES].decode("utf-8", "ignore") + TRUNCATION_MARKER


def _mend(key: Any) -> str:
    """A key OpenSearch accepts: no empty name, no empty segment in a dotted one."""
    text = key if type(key) is str else str(key)
    if not text or ("." in text and (text[0] == "." or text[-1] == "." or ".." in text)):
        return ".".join(part for part in text.split(".") if part) or "_"
    return text

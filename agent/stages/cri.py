"""Parsing one line of a CRI container log (containerd, CRI-O), as the kubelet writes it::

    2016-10-06T00:17:09.669794202Z stdout P the first 16 KiB of a long line
    2016-10-06T00:17:09.669794202Z stdout F ...and its end

``<RFC3339Nano timestamp> <stdout|stderr> <tag> <message>``. Tag ``P`` marks a partial piece of
a line longer than the runtime's buffer; the next ``F`` piece of the same stream ends it (see
:mod:`agent.stages.partials`). This runs once per line: one ``split``, two dict lookups and a
timestamp shape check, no regex (:data:`CRI_LINE` is for whole chunks).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, NamedTuple

from agent.stages import native
from agent.stages.framing import line_offsets
from agent.stages.native import Scanned


class CriLine(NamedTuple):
    ts: str  # as written, e.g. "2016-10-06T00:17:09.669794202Z"
    stream: str  # "stdout" or "stderr"
    partial: bool  # tag P: more pieces of this line follow
    message: bytes


_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}
_TAGS = {b"F": False, b"P": True}

# Every digit becomes "0", so checking the timestamp's shape is one translate and one set
# lookup among its 30 possible shapes: Go's RFC3339Nano drops trailing zeros of the fraction
# (0 to 9 digits left) and writes "Z" for UTC, else a "+hh:mm"/"-hh:mm" offset.
_SHAPE = bytes.maketrans(b"123456789", b"000000000")
_SHAPES = frozenset(
    b"0000-00-00T00:00:00" + frac + zone
    for frac in [b""] + [b"." + b"0" * n for n in range(1, 10)]
    for zone in (b"Z", b"+00:00", b"-00:00")
)
# For callers that check the shape and stream inline (the pipeline's hot loop).
TS_SHAPE_TABLE = _SHAPE
TS_SHAPES = _SHAPES
STREAMS = _STREAMS
# A whole chunk's lines at once (the pipeline's bulk path, on decoded text): a line with tag F
# or P, a timestamp of the shapes in TS_SHAPES (ASCII digits only) and a message. Lines
# parse_cri also takes but this does not (no message, "P:x" tags) are parsed line by line.
CRI_LINE = re.compile(
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})) (stdout|stderr) ([FP]) (.*)$", re.MULTILINE)
_new = tuple.__new__  # skips NamedTuple's Python-level __new__: measurably cheaper per line


def parse_cri(line: bytes) -> CriLine | None:
    """One CRI line without its newline; None if it is not in CRI format.

    A line that ends right after the tag (no space, no message) is read as an empty message;
    the kubelet itself rejects it, but losing a line over a missing space helps nobody.
    """
    parts = line.split(b" ", 3)
    if len(parts) == 4:
        ts, stream, tag, message = parts
    elif len(parts) == 3:
        ts, stream, tag = parts
        message = b""
    else:
        return None
    name = _STREAMS.get(stream)
    if name is None:
        return None
    partial = _TAGS.get(tag)
    if partial is None:
        # The kubelet keeps the tag forward compatible: "P:x" is a partial, only the first
        # colon-separated tag counts.
        partial = _TAGS.get(tag.split(b":", 1)[0])
        if partial is None:
            return None
    if ts.translate(_SHAPE) not in _SHAPES:
        return None
    # The shape check leaves only ASCII digits and separators, so this decode cannot fail.
    return _new(CriLine, (ts.decode("ascii"), name, partial, message))


def scan_chunk_py(body: bytes, start: int) -> Scanned | None:
    """A chunk's lines (``body`` holds them without the last newline) read by
    :data:`CRI_LINE` in one pass, when the whole body is valid UTF-8 and every line matches;
    else None, and the caller goes line by line. :func:`scan_chunk` is this, in C when built.
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    matches = CRI_LINE.findall(text)
    if len(matches) != body.count(b"\n") + 1:  # some line is not CRI
        return None
    stamps, streams, tags, messages = zip(*matches, strict=True)
    offsets = line_offsets(start, map(len, body.split(b"\n")))
    partial = [i for i, tag in enumerate(tags) if tag == "P"] if "P" in tags else []
    return offsets, list(stamps), list(streams), list(messages), partial


# The C scan (about 5x faster) when it was built, else the regex.
scan_chunk: Callable[[bytes, int], Scanned | None] = native.cri_scan or scan_chunk_py


def timestamp_is_valid(ts: bytes) -> bool:
    """Whether ``ts`` has the shape of a CRI RFC 3339 timestamp (also JSON-safe then)."""
    return ts.translate(_SHAPE) in _SHAPES


def sniff_format(line: bytes) -> Literal["cri", "docker"] | None:
    """Which container log format a file's first line is in, for ``format: auto``."""
    if line[:1] == b"{":
        return "docker"
    if parse_cri(line) is not None:
        return "cri"
    return None

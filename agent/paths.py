"""File names as text for people and for JSON.

``glob`` and ``os.scandir`` hand back a name that is not valid UTF-8 with its bad bytes as lone
surrogates (``caf\\udce9.log``): right for opening the file again, but not encodable, so a Kafka
record, a checkpoint or a log line holding it would fail to serialize. The agent opens files by
their raw name and writes :func:`display_path` everywhere else.
"""

from __future__ import annotations


def display_path(path: str) -> str:
    """``path`` with every byte that is not UTF-8 shown as U+FFFD (``path`` itself if valid)."""
    if path.isascii():
        return path
    try:
        path.encode()
        return path
    except UnicodeEncodeError:
        pass
    raw = path.encode("utf-8", "surrogateescape" if _escaped_only(path) else "replace")
    return raw.decode("utf-8", "replace")


def _escaped_only(path: str) -> bool:
    # surrogateescape can only give back bytes for \udc80-\udcff; any other lone surrogate
    # did not come from a file name's bytes.
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in path)

"""Parsing one line of a docker ``json-file`` container log::

    {"log":"the line\\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}

Docker splits a line longer than its 16 KiB buffer into several objects; only the last one's
``log`` ends in a newline. Join the pieces with :class:`agent.stages.partials.PartialJoiner`
(give it ``message.encode()``: the joiners work on bytes, like the rest of the agent).
"""

from __future__ import annotations

from typing import NamedTuple

import orjson


class DockerLine(NamedTuple):
    ts: str  # as written
    stream: str  # "stdout" or "stderr"
    partial: bool  # "log" does not end in "\n": more pieces of this line follow
    message: str  # without the trailing newline


_STREAMS = {"stdout": "stdout", "stderr": "stderr"}
_new = tuple.__new__


def parse_docker_json(line: bytes) -> DockerLine | None:
    """One json-file line without its newline; None if it is not such an object."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:  # also raised for invalid UTF-8 and too-deep nesting
        return None
    if not isinstance(obj, dict):
        return None
    log = obj.get("log")
    ts = obj.get("time")
    raw_stream = obj.get("stream")
    if not isinstance(log, str) or not isinstance(ts, str) or not isinstance(raw_stream, str):
        return None
    stream = _STREAMS.get(raw_stream)
    if stream is None:
        return None
    if log.endswith("\n"):
        return _new(DockerLine, (ts, stream, False, log[:-1]))
    return _new(DockerLine, (ts, stream, True, log))

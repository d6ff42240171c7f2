from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.stages.docker_json import DockerLine, parse_docker_json

TS = "2016-10-20T18:39:20.57606443Z"


def test_full_line() -> None:
    line = orjson.dumps({"log": "hello\n", "stream": "stdout", "time": TS})
    assert parse_docker_json(line) == DockerLine(TS, "stdout", False, "hello")


def test_partial_piece() -> None:
    line = orjson.dumps({"log": "a" * 16384, "stream": "stderr", "time": TS})
    assert parse_docker_json(line) == DockerLine(TS, "stderr", True, "a" * 16384)


def test_only_the_last_newline_is_removed() -> None:
    line = orjson.dumps({"log": "a\n\n", "stream": "stdout", "time": TS, "attrs": {"k": "v"}})
    assert parse_docker_json(line) == DockerLine(TS, "stdout", False, "a\n")


def test_unicode_escapes() -> None:
    line = b'{"log":"caf\\u00e9 \\u2603\\n","stream":"stdout","time":"t"}'
    parsed = parse_docker_json(line)
    assert parsed is not None and parsed.message == "café ☃"


@pytest.mark.parametrize("line", [
    b"",
    b"not json",
    b"[1, 2]",
    b'"a string"',
    b'{"log":"x\\n","stream":"stdout"}',  # no time
    b'{"log":"x\\n","time":"t"}',  # no stream
    b'{"stream":"stdout","time":"t"}',  # no log
    b'{"log":1,"stream":"stdout","time":"t"}',
    b'{"log":"x","stream":"stdin","time":"t"}',
    b'{"log":"x","stream":["stdout"],"time":"t"}',  # unhashable stream
    b'{"log":"x","stream":"stdout","time":null}',
    b'{"log":"\xff","stream":"stdout","time":"t"}',  # invalid UTF-8
    b'{"log":"x\\n","stream":"stdout","time":"t"',  # cut short
    b"[" * 5000 + b"]" * 5000,  # deeper than orjson's limit
])
def test_malformed_lines(line: bytes) -> None:
    assert parse_docker_json(line) is None


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=200))
def test_never_raises_on_arbitrary_bytes(line: bytes) -> None:
    parsed = parse_docker_json(line)
    assert parsed is None or isinstance(parsed, DockerLine)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=10,
)


@settings(deadline=None, max_examples=100)
@given(st.dictionaries(st.sampled_from(["log", "stream", "time", "attrs"]), _json))
def test_never_raises_on_arbitrary_objects(obj: dict[str, Any]) -> None:
    parsed = parse_docker_json(orjson.dumps(obj))
    assert parsed is None or isinstance(parsed, DockerLine)


@settings(deadline=None, max_examples=100)
@given(st.text(max_size=50), st.sampled_from(["stdout", "stderr"]), st.booleans(),
       st.text(max_size=40))
def test_round_trip(text: str, stream: str, full: bool, ts: str) -> None:
    log = text + "\n" if full else text
    parsed = parse_docker_json(orjson.dumps({"log": log, "stream": stream, "time": ts}))
    assert parsed is not None
    assert parsed.partial == (not log.endswith("\n"))
    assert parsed.message == (log if parsed.partial else log[:-1])
    assert (parsed.stream, parsed.ts) == (stream, ts)

"""What ``logferry dlq replay`` re-sends from a dead-letter entry, without Kafka."""

from __future__ import annotations

import base64

import orjson

from indexer.replay import _original
from indexer.sources.kafka import dead_letter_entry
from logferry.wire import LogRecord, batch_head, encode, encode_batch

TS = "2026-11-25T11:00:00Z"


def entry(value: bytes, line_index: int | None = None) -> bytes:
    return orjson.dumps(dead_letter_entry(value, "logs", 2, 41, "why", 400, "idx",
                                          line_index=line_index))


def test_a_rejected_line_goes_back_alone_to_its_topic() -> None:
    line = encode(LogRecord(TS, "h", "file", "/p", "803:1:2", 300, "the line"))
    assert _original(entry(line, line_index=3)) == ("logs", line, b"803:1:2")


def test_a_v2_record_dead_lettered_whole_goes_back_whole() -> None:
    """E.g. by an indexer that did not read v2 yet."""
    record = encode_batch(batch_head("h", "file", "/p", "803:1:2"), TS, [0, 9], ["a", "b"])
    assert _original(entry(record)) == ("logs", record, b"803:1:2")


def test_what_is_not_a_wire_record_is_skipped() -> None:
    for value in (b"not a wire record", b'{"v":2,"fid":"f"}', b"\xff\xfe"):
        assert _original(entry(value)) == (None, None, None)
    assert _original(b"not an entry") == (None, None, None)


def test_a_record_that_is_not_utf8_travels_as_base64() -> None:
    raw = entry(b"\xff\xfe")
    assert orjson.loads(raw)["record_b64"] == base64.b64encode(b"\xff\xfe").decode()

"""The agent's direct use of aiokafka's record-batch builder must build exactly what the
public ``BatchBuilder.append`` builds (it guards against aiokafka changing its internals)."""

from __future__ import annotations

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from agent.sinks.kafka import KafkaSink


def _records(batch: BatchBuilder) -> list[tuple[bytes | None, bytes | None]]:
    parsed = DefaultRecordBatch(bytes(batch._build()))
    return [(r.key, r.value) for r in parsed]


def test_fill_matches_public_append_and_stops_when_full() -> None:
    records = [(f"line {i} ".encode() * 20, (i + 1) * 100) for i in range(500)]
    fast = BatchBuilder(16 * 1024, 0)
    taken, commit = KafkaSink.fill(fast, b"fid", records, 0)
    assert 0 < taken < 500
    assert commit == records[taken - 1][1]
    slow = BatchBuilder(16 * 1024, 0)
    for value, _ in records[:taken]:
        assert slow.append(key=b"fid", value=value, timestamp=None) is not None
    assert slow.append(key=b"fid", value=records[taken][0], timestamp=None) is None
    assert _records(fast) == _records(slow)
    rest = BatchBuilder(16 * 1024, 0)
    taken2, _ = KafkaSink.fill(rest, b"fid", records, taken)
    assert _records(rest)[0] == (b"fid", records[taken][0]) and taken2 > 0

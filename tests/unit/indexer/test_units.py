"""How the indexer turns one poll into a unit, without Kafka or OpenSearch: documents per line
of v1 and v2 records, bulk requests capped in documents, units capped whatever the estimate of
lines per record, and rejected lines dead-lettered one by one as v1 records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from indexer.app import Indexer, _split
from indexer.sinks.opensearch import Rejected
from logferry.config import Config
from logferry.wire import LogRecord, batch_head, decode, decode_lines, encode, encode_batch

TS = "2026-11-25T11:00:00.000000Z"
P0, P1 = TopicPartition("logs", 0), TopicPartition("logs", 1)


@dataclass
class Message:
    offset: int
    value: bytes


@dataclass
class FakeConsumer:
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


@dataclass
class FakeSource:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)


@dataclass
class FakeSink:
    """Rejects every document whose line says REJECT; records each request's size."""

    requests: list[int] = field(default_factory=list)

    async def write(self, lines: list[bytes],
                    keepalive: Callable[[float], Awaitable[None]]) -> list[Rejected]:
        self.requests.append(len(lines))
        return [Rejected(i, 400, "mapper_parsing_exception: no") for i, line in enumerate(lines)
                if b"REJECT" in line]


@dataclass
class FakeDeadLetters:
    topic: str = "dlq"
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def send_all(self, entries: list[dict[str, Any]]) -> None:
        self.sent.extend(orjson.loads(orjson.dumps(e)) for e in entries)


@pytest.fixture
async def indexer() -> AsyncIterator[Indexer]:
    idx = Indexer(Config.model_validate({"indexer": {"bulk_max_docs": 10}}))
    source, sink, dead_letters = idx.source, idx.sink, idx.dead_letters
    idx.source = FakeSource()  # type: ignore[assignment]
    idx.sink = FakeSink()  # type: ignore[assignment]
    idx.dead_letters = FakeDeadLetters()  # type: ignore[assignment]
    yield idx
    await source.stop()
    await sink.close()
    await dead_letters.stop()


def v2(fid: str, first_off: int, lines: list[str]) -> bytes:
    offs = [first_off + 100 * i for i in range(len(lines))]
    return encode_batch(batch_head("node-a", "file", f"/var/log/{fid}.log", fid), TS, offs,
                        lines)


def v1(fid: str, off: int, line: str) -> bytes:
    return encode(LogRecord(TS, "node-a", "file", f"/var/log/{fid}.log", fid, off, line))


async def run_unit(idx: Indexer, batch: dict[TopicPartition, list[Message]]) -> None:
    idx._start_unit(batch)
    unit = idx._units.popleft()
    await unit.task
    idx._units.appendleft(unit)


async def test_lines_of_v1_and_v2_records_rejected_one_by_one(indexer: Indexer) -> None:
    batch = {
        P0: [Message(5, v2("a", 0, ["a0", "a1 REJECT", "a2", "a3 REJECT"])),
             Message(6, b"not a wire record"),
             Message(7, v1("b", 40, "b REJECT"))],
        P1: [Message(9, v2("c", 1000, ["c0", "c1", "c2 REJECT"]))],
    }
    await run_unit(indexer, batch)
    assert indexer._units[0].offsets == {P0: 8, P1: 10}
    assert indexer.sink.requests == [8]  # type: ignore[attr-defined]
    sent = indexer.dead_letters.sent  # type: ignore[attr-defined]
    wire = [e for e in sent if e["status"] is None]
    assert [(e["source"], e["record"]) for e in wire] == [
        ({"topic": "logs", "partition": 0, "offset": 6}, "not a wire record")]
    rejected = [e for e in sent if e["status"] == 400]
    got = {(e["source"]["partition"], e["source"]["offset"], e["source"]["line_index"]):
           decode(e["record"].encode()) for e in rejected}
    expected = {(0, 5, 1): decode_lines(batch[P0][0].value)[1],
                (0, 5, 3): decode_lines(batch[P0][0].value)[3],
                (0, 7, 0): decode(batch[P0][2].value),
                (1, 9, 2): decode_lines(batch[P1][0].value)[2]}
    assert got == expected
    # The record of a rejected line is that line alone, as a v1 record.
    assert all(orjson.loads(e["record"])["v"] == 1 for e in rejected)
    assert {e["index"] for e in rejected} == {"logferry-logs-2026.11.25"}
    assert all(e["reason"] == "mapper_parsing_exception: no" for e in rejected)
    registry = indexer.metrics.registry
    assert registry.get_sample_value("logferry_indexer_records_consumed_total") == 9
    assert registry.get_sample_value("logferry_indexer_dead_lettered_total",
                                     {"reason": "http_400"}) == 4


async def test_bulk_requests_hold_at_most_bulk_max_docs(indexer: Indexer) -> None:
    batch = {P0: [Message(i, v2(f"f{i}", 0, [f"l{j}" for j in range(6)])) for i in range(3)]}
    await run_unit(indexer, batch)
    assert indexer.sink.requests == [10, 8]  # type: ignore[attr-defined]
    assert indexer.dead_letters.sent == []  # type: ignore[attr-defined]


async def test_a_unit_stops_at_twice_bulk_max_docs_and_the_rest_is_fetched_again(
        indexer: Indexer) -> None:
    assert indexer._max_records() == 10  # no estimate yet: one line per record
    lines = [f"l{j}" for j in range(8)]
    batch = {P0: [Message(i, v2("a", 1000 * i, lines)) for i in range(5)],
             P1: [Message(i, v2("b", 1000 * i, lines)) for i in range(2)]}
    await run_unit(indexer, batch)
    # 8 + 8 + 8 documents reach the cap of 20: the other records are sought back.
    assert indexer._units[0].offsets == {P0: 3}
    assert indexer.source.consumer.seeks == [(P0, 3), (P1, 0)]
    assert sum(indexer.sink.requests) == 24  # type: ignore[attr-defined]
    # Next polls ask for fewer records, down to about bulk_max_docs lines' worth.
    assert indexer._max_records() == 2
    for i in (3, 4):
        await run_unit(indexer, {P0: [Message(i, v2("a", 1000 * i, lines))]})
    assert indexer._max_records() == 1


def test_split_caps_documents_and_bytes() -> None:
    lines = [b"x" * 10] * 7
    assert _split(lines, 1000, 7) == [(0, 7)]
    assert _split(lines, 1000, 3) == [(0, 3), (3, 6), (6, 7)]
    assert _split(lines, 25, 3) == [(0, 2), (2, 4), (4, 6), (6, 7)]

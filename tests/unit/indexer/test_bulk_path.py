"""The indexer's bulk path without a cluster: item statuses, retries, request splitting, and
the lean Kafka records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition

from indexer.app import _split
from indexer.metrics import IndexerMetrics
from indexer.sinks.opensearch import BULK_FILTER_PATH, OpenSearchSink
from indexer.sources.kafka import lean_records, raw_value
from logferry.config import IndexerSettings, OpenSearchSettings


class FakeClient:
    """Answers each bulk with the next list of statuses (one per document sent)."""

    def __init__(self, answers: list[list[int]]) -> None:
        self.answers: Iterator[list[int]] = iter(answers)
        self.bodies: list[bytes] = []
        self.params: list[dict[str, Any]] = []

    async def bulk(self, body: bytes, **params: Any) -> dict[str, Any]:
        self.bodies.append(body)
        self.params.append(params)
        statuses = next(self.answers)
        items = [{"create": {"status": s} if s < 300 else
                  {"status": s, "error": {"type": "t", "reason": f"r{s}"}}}
                 for s in statuses]
        return {"errors": any(s >= 300 for s in statuses), "items": items}


def sink(answers: list[list[int]], max_retries: int = 2) -> tuple[OpenSearchSink, FakeClient]:
    s = OpenSearchSink(OpenSearchSettings(), IndexerSettings(max_retries=max_retries),
                       IndexerMetrics())
    client = FakeClient(answers)
    s.client = client
    return s, client


async def no_wait(_: float) -> None:
    return None


def value(s: OpenSearchSink, name: str) -> float:
    return float(s.metrics.registry.get_sample_value(name) or 0)


LINES = [b'{"create":{}}\n{"n":%d}\n' % i for i in range(4)]


async def test_all_created_in_one_request_with_a_filtered_response() -> None:
    s, client = sink([[201, 201, 201, 201]])
    assert await s.write(LINES, no_wait) == []
    assert client.bodies == [b"".join(LINES)]
    assert client.params == [{"filter_path": BULK_FILTER_PATH}]
    assert value(s, "logferry_indexer_docs_indexed_total") == 4


async def test_duplicates_retries_and_rejections() -> None:
    # 409: done; 429: retried until it passes; 503 retried forever; 500 retried max_retries
    # times then rejected; 400: rejected at once.
    s, client = sink([[201, 409, 429, 500, 400], [503, 500], [201, 500]], max_retries=2)
    lines = [*LINES, b'{"create":{}}\n{"n":4}\n']
    rejected = await s.write(lines, no_wait)
    assert [(r.position, r.status) for r in rejected] == [(4, 400), (3, 500)]
    assert rejected[0].reason == "t: r400"
    assert client.bodies == [b"".join(lines), lines[2] + lines[3], lines[2] + lines[3]]
    assert value(s, "logferry_indexer_docs_indexed_total") == 2
    assert value(s, "logferry_indexer_docs_duplicate_total") == 1


async def test_item_count_mismatch_fails_the_write() -> None:
    s, _ = sink([[201]])
    with pytest.raises(ValueError, match="1 items for 4 documents"):
        await s.write(LINES, no_wait)


def test_split_keeps_requests_under_the_byte_limit() -> None:
    lines = [b"x" * n for n in (10, 10, 30, 5, 50, 1)]
    assert _split(lines, 1000, 100) == [(0, 6)]
    assert _split([], 1000, 100) == []
    ranges = _split(lines, 40, 100)
    assert ranges == [(0, 2), (2, 4), (4, 5), (5, 6)]  # a too-large line goes alone
    assert [i for a, b in ranges for i in range(a, b)] == list(range(len(lines)))


def _partition_records(deserializer: Any) -> list[Any]:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i in range(3):
        builder.append(i, timestamp=None, key=b"k", value=b"v%d" % i, headers=[])
    records = MemoryRecords(bytes(builder.build()))
    return list(fetcher.PartitionRecords(TopicPartition("t", 0), records, [], 1, None,
                                         deserializer, True, 0))


def test_lean_records_only_for_the_indexer_consumer() -> None:
    assert lean_records()
    assert lean_records()  # installing twice is harmless
    mine = _partition_records(raw_value)
    assert [(r.offset, r.value) for r in mine] == [(1, b"v1"), (2, b"v2")]
    assert not isinstance(mine[0], ConsumerRecord)
    others = _partition_records(None)
    assert all(isinstance(r, ConsumerRecord) for r in others)
    assert [(r.topic, r.offset, r.value) for r in others] == [("t", 1, b"v1"), ("t", 2, b"v2")]

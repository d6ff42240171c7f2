"""The agent builds its Kafka record batches itself (agent.sinks.recordbatch): they must be what
aiokafka's own builder builds, parse with aiokafka's reader for every codec, and be cut at
``batch_max_bytes`` (this also guards against aiokafka changing what it calls on a batch)."""

from __future__ import annotations

import os
import random

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from agent.sinks.kafka import KafkaSink
from agent.sinks.recordbatch import CODECS, HEADER_SIZE, RecordBatch, varint
from agent.stages.records import Records
from logferry.config import AgentSettings, KafkaSettings


def _values(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = [rng.randbytes(rng.randrange(0, 400)) + b"line" * rng.randrange(0, 50)
           for _ in range(n)]
    # Lengths around the varint and lookup-table edges, and a long one.
    out += [b"x" * k for k in (0, 1, 63, 64, 8191, 8192, 70_000)]
    return out


def _parse(batch: RecordBatch) -> DefaultRecordBatch:
    parsed = DefaultRecordBatch(bytes(batch._build()))
    assert parsed.validate_crc()
    return parsed


def test_varint_is_kafkas_zigzag_varint() -> None:
    assert [varint(n) for n in (0, 1, 63, 64, 8191, 8192)] == [
        b"\x00", b"\x02", b"\x7e", b"\x80\x01", b"\xfe\x7f", b"\x80\x80\x01"]


def test_uncompressed_batch_is_byte_identical_to_aiokafkas_builder() -> None:
    values = _values(300)
    ours = RecordBatch(CODECS["none"])
    ours.set_records(b"803:1a:2b", values)
    ours._set_producer_state(42, 3, 1000)
    built = bytes(ours._build())
    theirs = DefaultRecordBatchBuilder(2, 0, 0, 42, 3, 1000, 1 << 30)
    for i, value in enumerate(values):
        theirs.append(i, ours._timestamp, b"803:1a:2b", value, [])
    assert built == bytes(theirs.build())
    assert ours.size() == len(built) and ours.record_count() == len(values)


@pytest.mark.parametrize("codec", ["zstd", "gzip", "lz4", "snappy"])
def test_compressed_batches_parse_with_aiokafka(codec: str) -> None:
    values = [f"line {i} {'x' * (i % 300)}".encode() for i in range(2000)]
    batch = RecordBatch(CODECS[codec], None)
    batch.set_records(b"fid", values)
    batch.compress()
    batch._set_producer_state(7, 0, 12)
    parsed = _parse(batch)
    assert parsed.compression_type == CODECS[codec]
    assert parsed.producer_id == 7 and parsed.base_sequence == 12
    records = list(parsed)
    assert [(r.offset, r.key, r.value) for r in records] == [
        (i, b"fid", v) for i, v in enumerate(values)]
    assert len(batch._build()) < batch.size()  # compressed; size() stays the raw size


def test_incompressible_batch_is_sent_uncompressed() -> None:
    values = [os.urandom(10_000)]
    batch = RecordBatch(CODECS["zstd"], 3)
    batch.set_records(b"k", values)
    batch.compress()
    parsed = _parse(batch)
    assert parsed.compression_type == 0
    assert [r.value for r in parsed] == values


def test_build_is_stable_across_retries_and_takes_the_producer_state() -> None:
    batch = RecordBatch(CODECS["zstd"], 1)
    batch.set_records(b"k", [b"a" * 100] * 10)
    batch._set_producer_state(1, 2, 3)
    first = batch._build()
    assert batch._build() is first  # a retry resends the same bytes (same sequence)
    assert _parse(batch).base_sequence == 3


def test_batches_are_cut_at_max_bytes_and_take_at_least_one() -> None:
    values = _values(2000, seed=2)
    key = b"fid-123"
    start = 0
    seen: list[bytes] = []
    while start < len(values):
        batch = RecordBatch()
        stop = batch.set_records(key, values, start, 16 * 1024)
        assert stop > start
        if stop - start > 1:
            assert batch.size() - HEADER_SIZE <= 16 * 1024
        if stop < len(values):  # the next record would not have fit
            bigger = RecordBatch()
            bigger.set_records(key, values[start:stop + 1])
            assert bigger.size() - HEADER_SIZE > 16 * 1024
        seen += [r.value or b"" for r in _parse(batch)]
        start = stop
    assert seen == values
    assert RecordBatch().set_records(b"k", [b"y" * 100_000, b"z"], 0, 1024) == 1


async def test_fill_takes_records_in_order_with_their_commit() -> None:
    sink = KafkaSink(KafkaSettings(), AgentSettings(batch_max_bytes=16 * 1024,
                                                    compression="zstd"))
    try:
        records = Records([f"line {i} ".encode() * 20 for i in range(500)],
                          [(i + 1) * 100 for i in range(500)], [i % 7 + 1 for i in range(500)])
        got: list[bytes] = []
        start = 0
        while start < len(records):
            batch = sink.new_batch()
            taken, commit, lines = sink.fill(batch, b"fid", records, start)
            assert taken > 0 and commit == records.commits[start + taken - 1]
            assert lines == sum(records.lines[start:start + taken])
            batch.compress()
            got += [r.value for r in _parse(batch) if r.value is not None]
            start += taken
        assert got == records.values and start == 500
        # A plain list of (value, commit) pairs works too.
        batch = sink.new_batch()
        assert sink.fill(batch, b"fid", list(records)[:3], 1) == (2, 300, 2)
    finally:
        await sink.stop()


@pytest.mark.parametrize(("codec", "level", "off_loop"), [
    ("zstd", None, False), ("zstd", 3, False), ("zstd", -5, False), ("lz4", None, False),
    ("snappy", None, False), ("none", None, False),
    ("zstd", 4, True), ("zstd", 19, True), ("gzip", None, True), ("gzip", 1, True),
])
async def test_only_slow_codecs_compress_off_the_event_loop(codec: str, level: int | None,
                                                            off_loop: bool) -> None:
    # A fast codec takes ~3 ms a 1 MiB batch, like parsing a chunk: on the loop it costs less
    # CPU than a thread hand-off. A slow one would hold the loop for tens of ms a batch.
    sink = KafkaSink(KafkaSettings(), AgentSettings(compression=codec,
                                                    compression_level=level))
    try:
        assert (sink._compressor is not None) is off_loop
    finally:
        await sink.stop()

"""Kafka record batches (message format v2) built in bulk, for the agent's producer.

aiokafka's ``BatchBuilder`` appends one record per Python call and compresses the batch on the
event loop when the sender takes it, at the codec's default level. The agent has all the
records of a batch at once, so :func:`frame_records` lays out the records section in one
tight loop, :meth:`RecordBatch.compress` compresses it (on the event loop for the fast codecs,
in a worker thread for the slow ones: see :mod:`agent.sinks.kafka`) with a reusable per-thread
zstd context at the configured level,
and only the 61-byte header and its CRC-32C are written when the sender takes the batch, once
the idempotent producer has given it its producer id and sequence number.

A :class:`RecordBatch` is handed to ``AIOKafkaProducer.send_batch`` in place of aiokafka's
``BatchBuilder``: it has the methods aiokafka's accumulator and sender call on one
(``record_count``, ``closed``, ``_set_producer_state``, ``_build``, ``size``). aiokafka is
pinned; tests/unit/test_kafka_fill.py parses what this module builds with aiokafka's own
record-batch reader.

Layout (https://kafka.apache.org/documentation/#recordbatch)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 (2)
    crc uint32 (CRC-32C of everything after it) | attributes int16 (codec in bits 0-2)
    lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64 | producerId int64
    producerEpoch int16 | baseSequence int32 | recordCount int32 | records (compressed)

    record: length varint | attributes int8 | timestampDelta varint | offsetDelta varint
            | keyLength varint | key | valueLength varint | value | headerCount varint

Every record of a batch carries the batch's timestamp (delta 0) and no headers.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Sequence

import zstandard
from aiokafka.codec import gzip_encode, lz4_encode, snappy_encode
from aiokafka.record.util import calc_crc32c

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# Level 1 costs ~40% less CPU than zstd's default 3 for ~10% larger batches on log lines:
# compression is the agent's biggest single cost per line (agent.compression_level).
ZSTD_DEFAULT_LEVEL = 1

_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = _HEADER.size  # 61
_CRC_OFFSET = 17  # after baseOffset, batchLength, partitionLeaderEpoch, magic
_ATTRIBUTES_OFFSET = 21  # the CRC covers everything from here on
_AFTER_LENGTH = 12  # batchLength counts the bytes after itself


def varint(n: int) -> bytes:
    """Kafka's zigzag varint of a non-negative int below 2**63."""
    v = n << 1
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


# Every varint a usual batch needs, looked up instead of computed: offset deltas, value and
# record lengths below 8 KiB (one or two bytes each).
_TABLE_SIZE = 8192
_VARINT = [varint(i) for i in range(_TABLE_SIZE)]


def frame_records(key: bytes, values: Sequence[bytes], start: int = 0,
                  max_bytes: int | None = None) -> tuple[bytes, int]:
    """The (uncompressed) records section of ``values[start:]``, all with ``key``, and the
    index it stopped at: before the record that would take it past ``max_bytes`` (it takes
    at least one).

    Offset deltas count from 0; timestamp deltas are 0. One loop of table lookups per record
    (measured cheaper than list-wide ``map`` passes: their per-record ints cost more than
    they save), gathering the pieces for one ``join``: one allocation and one copy of the
    values, where a growing bytearray copied them again at each resize.
    """
    parts: list[bytes] = []
    add = parts.append
    table = _VARINT
    key_part = varint(len(key)) + key
    fixed = 3 + len(key_part)  # attributes, timestamp delta and header count; the key
    limit = (1 << 62) if max_bytes is None else max_bytes
    size = 0
    stop = start
    for delta, value in enumerate(values[start:]):
        n = len(value)
        value_len = table[n] if n < _TABLE_SIZE else varint(n)
        delta_len = table[delta] if delta < _TABLE_SIZE else varint(delta)
        body = fixed + len(delta_len) + len(value_len) + n
        record_len = table[body] if body < _TABLE_SIZE else varint(body)
        size += len(record_len) + body
        if size > limit and delta:
            break
        add(record_len)
        add(b"\x00\x00")
        add(delta_len)
        add(key_part)
        add(value_len)
        add(value)
        add(b"\x00")
        stop += 1
    return b"".join(parts), stop


_local = threading.local()


def _zstd(level: int) -> zstandard.ZstdCompressor:
    # A compression context is ~1 MiB of tables: one per thread and level, reused, instead of
    # one allocated (and page-faulted in) per batch.
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "zstd", None)
    if cache is None:
        cache = _local.zstd = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def compress(codec: int, level: int | None, data: bytes | bytearray) -> bytes:
    """``data`` compressed as Kafka expects it for ``codec`` (see :data:`CODECS`)."""
    if codec == 4:
        return _zstd(ZSTD_DEFAULT_LEVEL if level is None else level).compress(data)
    data = bytes(data)  # aiokafka's encoders take bytes only
    packed: bytes
    if codec == 1:
        packed = gzip_encode(data, compresslevel=level if level and 1 <= level <= 9 else None)
    elif codec == 2:
        packed = snappy_encode(data)
    elif codec == 3:
        packed = lz4_encode(data)
    else:
        raise ValueError(f"unknown codec {codec}")
    return packed


class RecordBatch:
    """One batch of records for one partition, for ``AIOKafkaProducer.send_batch``."""

    __slots__ = ("_buffer", "_codec", "_count", "_level", "_payload", "_producer",
                 "_records", "_size", "_timestamp")

    def __init__(self, codec: int = 0, level: int | None = None) -> None:
        self._codec = codec
        self._level = level
        self._records: bytes | bytearray = b""
        # The records section as sent (compressed or not).
        self._payload: bytes | bytearray | None = None
        self._count = 0
        self._size = HEADER_SIZE
        self._timestamp = 0
        self._producer = (-1, -1, -1)
        self._buffer: bytearray | None = None

    def set_records(self, key: bytes, values: Sequence[bytes], start: int = 0,
                    max_bytes: int | None = None) -> int:
        """Frame ``values[start:]`` (all with ``key``) as this batch's records, as many as fit
        in ``max_bytes`` (at least one); returns the index after the last one taken."""
        records, stop = frame_records(key, values, start, max_bytes)
        self._records = records
        self._count = stop - start
        self._size = HEADER_SIZE + len(records)
        self._timestamp = int(time.time() * 1000)
        self._payload = None
        self._buffer = None
        return stop

    def compress(self) -> None:
        """Compress the records section (thread-safe: touches only this batch); idempotent.

        Sent uncompressed, as aiokafka does, when compression would not make it smaller.
        """
        if self._payload is not None:
            return
        if self._codec:
            packed = compress(self._codec, self._level, self._records)
            if len(packed) < len(self._records):
                self._payload = packed
                self._records = b""
                return
            self._codec = 0
        self._payload = self._records

    # -- what aiokafka's accumulator and sender call ----------------------------------------

    def size(self) -> int:
        """Bytes of the batch uncompressed (what the agent counts as in flight)."""
        return self._size

    def record_count(self) -> int:
        return self._count

    def closed(self) -> bool:
        return True  # never takes appends from aiokafka: sent as soon as the sender can

    def close(self) -> None:
        pass

    def _set_producer_state(self, producer_id: int, producer_epoch: int,
                            base_sequence: int) -> None:
        self._producer = (producer_id, producer_epoch, base_sequence)
        self._buffer = None

    def _build(self) -> bytearray:
        """The whole batch: header (with the producer state and CRC) + records section.

        Built once; a retry sends the same bytes (same sequence number), as aiokafka does.
        """
        if self._buffer is not None:
            return self._buffer
        self.compress()
        payload = self._payload
        assert payload is not None
        producer_id, producer_epoch, base_sequence = self._producer
        buf = bytearray(HEADER_SIZE)
        buf += payload
        _HEADER.pack_into(buf, 0, 0, len(buf) - _AFTER_LENGTH, -1, 2, 0, self._codec,
                          self._count - 1, self._timestamp, self._timestamp, producer_id,
                          producer_epoch, base_sequence, self._count)
        struct.pack_into(">I", buf, _CRC_OFFSET,
                         calc_crc32c(memoryview(buf)[_ATTRIBUTES_OFFSET:]))
        self._buffer = buf
        return buf


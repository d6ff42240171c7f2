"""The indexer's Kafka side: a consumer group member with manual commits, and the producer
for the dead-letter topic."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import orjson
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.consumer import fetcher as _fetcher
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from logferry.config import IndexerSettings, KafkaSettings
from logferry.kafka import client_kwargs, start_error

log = logging.getLogger("logferry.indexer.kafka")


def raw_value(value: bytes | None) -> bytes | None:
    """The value deserializer of the indexer's consumer: the bytes as they are. Being this
    very function also marks the consumer whose records :func:`lean_records` hands over
    unwrapped."""
    return value


def lean_records() -> bool:
    """Let consumers whose ``value_deserializer`` is :func:`raw_value` receive aiokafka's own
    record objects instead of a ``ConsumerRecord`` built for each.

    aiokafka (0.14) copies every record into a ``ConsumerRecord`` of 11 fields, with a tuple of
    its headers: about 1.5 µs a record, a good share of what the indexer spends per document.
    The indexer reads only ``offset`` and ``value``, which the record objects have themselves.
    Other consumers in the process are not affected. Returns whether the lean path is in
    place (False on an aiokafka without the hook: records are then ConsumerRecords, which
    work the same, only slower).
    """
    cls = getattr(_fetcher, "PartitionRecords", None)
    wrap = getattr(cls, "_consumer_record", None)
    if cls is None or wrap is None:
        return False
    if getattr(wrap, "_logferry_lean", False):
        return True

    def _consumer_record(self: Any, tp: TopicPartition, record: Any) -> Any:
        if self._value_deserializer is raw_value and self._key_deserializer is None:
            return record
        return wrap(self, tp, record)

    _consumer_record._logferry_lean = True  # type: ignore[attr-defined]
    cls._consumer_record = _consumer_record
    return True


class KafkaSource:
    def __init__(self, kafka: KafkaSettings, indexer: IndexerSettings) -> None:
        self.topics = indexer.topics or [kafka.topic]
        self._kafka = kafka
        self._timeout_s = kafka.request_timeout_s
        self.consumer = AIOKafkaConsumer(
            **client_kwargs(kafka),
            group_id=indexer.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=indexer.bulk_max_docs,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # A topic created after we subscribed (no agent has produced yet) is noticed
            # within this, not after aiokafka's default of five minutes.
            metadata_max_age_ms=10_000,
            # Records come out as aiokafka's own objects (offset, value), not ConsumerRecords.
            value_deserializer=raw_value,
        )
        lean_records()

    async def start(self, listener: ConsumerRebalanceListener) -> None:
        try:
            await asyncio.wait_for(self.consumer.start(), self._timeout_s)
            self.consumer.subscribe(self.topics, listener=listener)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.consumer.stop()
            raise await start_error(self._kafka, exc) from exc

    async def commit(self, offsets: dict[TopicPartition, int]) -> bool:
        """Commit ``offsets`` for the partitions still assigned to us. False if the group moved
        on (rebalance): the new owner re-reads those records and the writes are idempotent."""
        owned = self.consumer.assignment()
        mine = {tp: off for tp, off in offsets.items() if tp in owned}
        if not mine:
            return False
        try:
            await self.consumer.commit(mine)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offset commit refused after a rebalance; records will be re-read by "
                        "their new owner", extra={"error": str(exc)})
            return False
        return len(mine) == len(offsets)

    async def stop(self) -> None:
        await self.consumer.stop()


class DeadLetterProducer:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self.producer = AIOKafkaProducer(**client_kwargs(kafka), acks="all",
                                         enable_idempotence=True,
                                         max_request_size=16 * 1024 * 1024)

    async def start(self) -> None:
        await self.producer.start()

    async def send_all(self, entries: list[dict[str, Any]]) -> None:
        """Send and wait until Kafka acknowledged every entry (before offsets are committed).

        Retries forever: giving up would mean either committing past records that are nowhere
        (loss) or crashing into a restart loop that re-reads them anyway."""
        attempt = 0
        while True:
            try:
                futures = [await self.producer.send(self.topic, orjson.dumps(e))
                           for e in entries]
                await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                attempt += 1
                delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
                log.warning("dead-letter produce failed; retrying",
                            extra={"error": str(exc), "count": len(entries), "delay_s": delay})
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        await self.producer.stop()


def dead_letter_entry(value: bytes, topic: str, partition: int, offset: int, reason: str,
                      status: int | None, index: str | None,
                      line_index: int | None = None) -> dict[str, Any]:
    """A dead-letter topic entry. ``value`` is the rejected line as a v1 record, its place
    in the Kafka record being ``source.line_index``; or, for a record that is not a valid
    wire record (no ``line_index``), the whole record as it came."""
    try:
        original: dict[str, Any] = {"record": value.decode("utf-8")}
    except UnicodeDecodeError:
        original = {"record_b64": base64.b64encode(value).decode()}
    source: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
    if line_index is not None:
        source["line_index"] = line_index
    return {"reason": reason, "status": status, "index": index, "source": source, **original}

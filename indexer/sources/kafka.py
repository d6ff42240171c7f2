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
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from logferry.config import IndexerSettings, KafkaSettings
from logferry.kafka import client_kwargs, start_error

log = logging.getLogger("logferry.indexer.kafka")


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
        )

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
                      status: int | None, index: str | None) -> dict[str, Any]:
    try:
        original: dict[str, Any] = {"record": value.decode("utf-8")}
    except UnicodeDecodeError:
        original = {"record_b64": base64.b64encode(value).decode()}
    return {"reason": reason, "status": status, "index": index,
            "source": {"topic": topic, "partition": partition, "offset": offset}, **original}

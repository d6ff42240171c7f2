"""The agent's Kafka sink: idempotent, acks=all, one partition per source file.

Records are appended to aiokafka record-batch builders and handed over a whole batch at a time
(``send_batch``), which costs one Python call per line instead of a coroutine per line. The
future of each batch resolves when the broker has acknowledged it; the caller moves checkpoints
only then.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner

from logferry.config import AgentSettings, KafkaSettings
from logferry.kafka import client_kwargs, start_error


class KafkaSink:
    def __init__(self, kafka: KafkaSettings, agent: AgentSettings) -> None:
        self.topic = kafka.topic
        self._kafka = kafka
        self._connect_timeout_s = kafka.request_timeout_s
        self._partitioner = DefaultPartitioner()
        self._partitions: list[int] = []
        self._agent = agent
        self._producer = self._new_producer()
        # Set when a batch of the current producer failed; see _replace_producer.
        self._broken = False
        self._retiring: set[asyncio.Task[None]] = set()

    def _new_producer(self) -> AIOKafkaProducer:
        agent = self._agent
        return AIOKafkaProducer(
            **client_kwargs(self._kafka),
            acks="all",
            enable_idempotence=True,
            compression_type=None if agent.compression == "none" else agent.compression,
            linger_ms=int(agent.linger_s * 1000),
            max_batch_size=agent.batch_max_bytes,
            # One record may be a whole max_line_bytes line plus JSON escaping.
            max_request_size=max(agent.batch_max_bytes, 2 * agent.max_line_bytes) + 65536,
        )

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._producer.start(), self._connect_timeout_s)
            await self.refresh_partitions()
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._producer.stop()
            raise await start_error(self._kafka, exc) from exc

    async def refresh_partitions(self) -> None:
        parts = await self._producer.partitions_for(self.topic)
        self._partitions = sorted(parts)

    def partition_for(self, key: bytes) -> int:
        return int(self._partitioner(key, self._partitions, self._partitions))

    def new_batch(self) -> Any:
        return self._producer.create_batch()

    @staticmethod
    def fill(batch: Any, key: bytes, records: list[tuple[bytes, int]], start: int
             ) -> tuple[int, int]:
        """Append ``records[start:]`` to ``batch`` until it is full.

        Returns how many were taken and the commit offset of the last one. This is the agent's
        hottest loop, so it calls aiokafka's C record-batch builder directly instead of going
        through ``BatchBuilder.append`` (two Python frames per line); aiokafka is pinned, and
        tests/unit/test_kafka_fill.py checks the result against the public API.
        """
        append = batch._builder.append
        rel = batch._relative_offset
        no_headers: list[tuple[str, bytes | None]] = []
        i = start
        n = len(records)
        commit = 0
        while i < n:
            value, next_commit = records[i]
            if append(rel, None, key, value, no_headers) is None:
                break  # full (the first record of a batch always fits)
            rel += 1
            commit = next_commit
            i += 1
        batch._relative_offset = rel
        return i - start, commit

    async def send(self, batch: Any, partition: int) -> asyncio.Future[Any]:
        if self._broken:
            await self._replace_producer()
        batch.close()
        producer = self._producer
        fut: asyncio.Future[Any] = await producer.send_batch(batch, self.topic,
                                                             partition=partition)

        def _failed(done: asyncio.Future[Any]) -> None:
            if producer is self._producer and (done.cancelled() or done.exception()):
                self._broken = True

        fut.add_done_callback(_failed)
        return fut

    async def _replace_producer(self) -> None:
        """A new idempotent producer after a batch was lost.

        The caller re-reads the lost lines and sends them as new batches, but the broker
        still expects the sequence number of the lost batch from this producer id: every later
        batch would fail with OutOfOrderSequenceNumber, forever (seen after a broker restart).
        A new producer gets a new id whose sequences start at 0. Raises KafkaError while Kafka
        is unreachable; the caller then re-reads later, as for any refused send.
        """
        fresh = self._new_producer()
        try:
            await asyncio.wait_for(fresh.start(), self._connect_timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await fresh.stop()
            raise KafkaConnectionError(f"cannot start a new producer: {exc!r}") from exc
        old, self._producer, self._broken = self._producer, fresh, False
        # The old one may still wait on batches that will fail: let it finish on its own.
        task = asyncio.create_task(old.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def flush(self) -> None:
        await self._producer.flush()

    async def stop(self) -> None:
        await self._producer.stop()
        for task in list(self._retiring):
            with contextlib.suppress(KafkaError, OSError):
                await task

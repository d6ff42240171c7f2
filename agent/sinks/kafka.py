"""The agent's Kafka sink: idempotent, acks=all, one partition per source file.

The pipeline hands over all the records of a chunk at once; each batch of them is framed in
bulk and compressed (:mod:`agent.sinks.recordbatch`), then given to the
producer whole (``send_batch``): no Python call per line here. The future of each batch
resolves when the broker has acknowledged it; the caller moves checkpoints only then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner

from agent.sinks.recordbatch import CODECS, RecordBatch
from agent.stages.records import Records, as_records
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
        self._codec = CODECS[agent.compression]
        self._level = agent.compression_level
        self._batch_max_bytes = agent.batch_max_bytes
        # The fast codecs compress a batch (1 MiB by default) in about 3 ms, no longer than
        # the loop spends parsing a chunk, so on the loop: measured 5-15% less CPU in all
        # than handing each batch to a thread (the hand-off, and two threads competing with
        # the broker on a small node), at the same throughput. The slow ones (gzip, zstd
        # above level 3: tens of ms a batch) go to one thread, one compression context, so
        # the loop keeps serving acks meanwhile.
        slow = self._codec == CODECS["gzip"] or (
            self._codec == CODECS["zstd"] and (self._level or 0) > 3)
        self._compressor = ThreadPoolExecutor(1, thread_name_prefix="logferry-compress") \
            if slow else None

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

    def new_batch(self) -> RecordBatch:
        return RecordBatch(self._codec, self._level)

    def fill(self, batch: RecordBatch, key: bytes, records: Sequence[tuple[bytes, int]],
             start: int) -> tuple[int, int, int]:
        """Put ``records[start:]`` in ``batch``, as many as fit in ``batch_max_bytes``.

        Returns how many were taken, the commit offset of the last one and how many log
        lines they hold.
        """
        recs: Records = as_records(records)
        stop = batch.set_records(key, recs.values, start, self._batch_max_bytes)
        return stop - start, recs.commits[stop - 1], sum(recs.lines[start:stop])

    async def send(self, batch: object, partition: int) -> asyncio.Future[Any]:
        assert isinstance(batch, RecordBatch)
        if self._broken:
            await self._replace_producer()
        if self._compressor is None:
            batch.compress()
        else:
            await asyncio.get_running_loop().run_in_executor(self._compressor, batch.compress)
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
        if self._compressor is not None:
            self._compressor.shutdown(wait=False)

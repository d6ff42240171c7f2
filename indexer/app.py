"""The indexer service: Kafka records in, OpenSearch documents out, offsets committed last.

Per poll: decode and shape every record, bulk-write the documents (each item checked), send what
OpenSearch rejected for good to the dead-letter topic and wait for Kafka to acknowledge it, and
only then commit the offsets. A crash before the commit re-delivers the records; their
deterministic ids make the second write a harmless 409.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import TopicPartition

from indexer.metrics import IndexerMetrics
from indexer.sinks.opensearch import OpenSearchSink, PendingDoc, Rejected
from indexer.sources.kafka import DeadLetterProducer, KafkaSource, dead_letter_entry
from indexer.stages.document import bulk_lines, index_for, to_document
from logferry.config import Config
from logferry.errors import WireFormatError
from logferry.telemetry import TelemetryServer
from logferry.wire import decode

log = logging.getLogger("logferry.indexer")


class Indexer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.indexer
        self.metrics = IndexerMetrics()
        self.source = KafkaSource(config.kafka, self.settings)
        self.sink = OpenSearchSink(config.opensearch, self.settings, self.metrics)
        self.dead_letters = DeadLetterProducer(config.kafka, self.settings.dead_letter_topic)
        self._ready = False
        self._telemetry: TelemetryServer | None = None

    def health(self) -> tuple[bool, str]:
        return (self._ready, "ok" if self._ready else "starting")

    async def run(self, stop: asyncio.Event) -> None:
        await self.sink.start()
        try:
            await self.source.start()
            try:
                await self.dead_letters.start()
                if self.settings.metrics_port is not None:
                    self._telemetry = TelemetryServer(self.metrics.registry, self.health,
                                                      self.settings.metrics_port)
                    await self._telemetry.start()
                self._ready = True
                log.info("indexer started", extra={"topics": self.source.topics,
                                                   "group": self.settings.group_id})
                await self._loop(stop)
            finally:
                self._ready = False
                await self.dead_letters.stop()
                await self.source.stop()
                if self._telemetry is not None:
                    await self._telemetry.stop()
        finally:
            await self.sink.close()
            log.info("indexer stopped")

    async def _loop(self, stop: asyncio.Event) -> None:
        consumer = self.source.consumer
        timeout_ms = int(self.settings.flush_interval_s * 1000)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=timeout_ms,
                                           max_records=self.settings.bulk_max_docs)
            if batch:
                await self._process(batch)
            await self._update_lag()

    async def _process(self, batch: dict[TopicPartition, list[object]]) -> None:
        ingested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        prefix = self.config.opensearch.index_prefix
        docs: list[PendingDoc] = []
        dead: list[dict[str, object]] = []
        offsets: dict[TopicPartition, int] = {}
        count = 0
        for tp, messages in batch.items():
            for msg in messages:
                count += 1
                value: bytes = msg.value  # type: ignore[attr-defined]
                offset: int = msg.offset  # type: ignore[attr-defined]
                offsets[tp] = offset + 1
                try:
                    record = decode(value)
                except WireFormatError as exc:
                    dead.append(dead_letter_entry(value or b"", tp.topic, tp.partition, offset,
                                                  f"wire: {exc}", None, None))
                    self.metrics.dead_lettered.labels("wire").inc()
                    continue
                index = index_for(prefix, record.ts)
                docs.append(PendingDoc(index, bulk_lines(index, record,
                                                         to_document(record, ingested)),
                                       tp.topic, tp.partition, offset, value))
        self.metrics.consumed.inc(count)
        consumer = self.source.consumer
        try:
            rejected = await self.sink.write(docs, self._keepalive) if docs else []
        finally:
            consumer.resume(*consumer.assignment())
        dead.extend(self._dead_letter(r) for r in rejected)
        if dead:
            await self.dead_letters.send_all(dead)
            log.warning("records sent to the dead-letter topic",
                        extra={"count": len(dead), "topic": self.dead_letters.topic})
        if await self.source.commit(offsets):
            self.metrics.commits.inc()

    def _dead_letter(self, rejected: Rejected) -> dict[str, object]:
        doc = rejected.doc
        self.metrics.dead_lettered.labels(f"http_{rejected.status}").inc()
        return dead_letter_entry(doc.value, doc.topic, doc.partition, doc.offset,
                                 rejected.reason, rejected.status, doc.index)

    async def _keepalive(self, delay_s: float) -> None:
        """Wait between bulk retries while polling Kafka, so the group does not evict us for
        missing max.poll.interval. Every partition is paused; should a fetch slip through
        (a partition assigned meanwhile), we seek back so nothing is skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay_s
        consumer = self.source.consumer
        while (left := deadline - loop.time()) > 0:
            consumer.pause(*consumer.assignment())
            got = await consumer.getmany(timeout_ms=max(1, int(min(left, 1.0) * 1000)))
            for tp, messages in got.items():
                consumer.seek(tp, messages[0].offset)

    async def _update_lag(self) -> None:
        consumer = self.source.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = await consumer.position(tp)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

"""The indexer service: Kafka records in, OpenSearch documents out, offsets committed last.

Each poll becomes one *unit*: its records are decoded and shaped, bulk-written (every item
checked), what OpenSearch rejected for good is sent to the dead-letter topic and acknowledged
there, and only then may the unit's offsets be committed. Up to ``bulk_concurrency`` units are in
flight at once, but commits happen strictly in poll order, so a committed offset always means
"everything before it is in OpenSearch or in the dead-letter topic". A crash before a commit
re-delivers records; their deterministic ids make the second write a harmless 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from indexer.metrics import IndexerMetrics
from indexer.sinks.opensearch import OpenSearchSink, PendingDoc, Rejected
from indexer.sources.kafka import DeadLetterProducer, KafkaSource, dead_letter_entry
from indexer.stages.document import IndexNamer, bulk_lines, to_document
from indexer.stages.process import Processor
from logferry.config import Config
from logferry.errors import WireFormatError
from logferry.telemetry import TelemetryServer
from logferry.wire import decode

log = logging.getLogger("logferry.indexer")

# How long a rebalance waits for in-flight units of revoked partitions before giving them up
# (their offsets are then not committed; the new owner re-reads and re-writes idempotently).
_REVOKE_DRAIN_S = 20.0


@dataclass
class _Unit:
    task: asyncio.Task[None]
    offsets: dict[TopicPartition, int]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.indexer.drain(_REVOKE_DRAIN_S)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(
            f"{tp.topic}:{tp.partition}" for tp in assigned)})


class Indexer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.indexer
        self.metrics = IndexerMetrics()
        self.source = KafkaSource(config.kafka, self.settings)
        self.sink = OpenSearchSink(config.opensearch, self.settings, self.metrics)
        self.dead_letters = DeadLetterProducer(config.kafka, self.settings.dead_letter_topic)
        self.processor = Processor(self.settings.processing)
        self.index_for = IndexNamer(config.opensearch.index_name, config.opensearch.index_prefix)
        self._units: deque[_Unit] = deque()
        self._ready = False
        self._telemetry: TelemetryServer | None = None

    def health(self) -> tuple[bool, str]:
        return (self._ready, "ok" if self._ready else "starting")

    async def run(self, stop: asyncio.Event) -> None:
        await self.sink.start()
        await self.sink.install_retention()
        try:
            await self.source.start(_Rebalance(self))
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
                # Graceful stop: finish what is in flight and commit it.
                await self.drain(None)
            finally:
                self._ready = False
                for unit in self._units:
                    unit.task.cancel()
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
            await self._commit_done()
            full = len(self._units) >= self.settings.bulk_concurrency
            assigned = consumer.assignment()
            # Back-pressure without leaving the group: keep polling, but with every partition
            # paused while the in-flight limit is reached (OpenSearch slow or down).
            if full:
                consumer.pause(*assigned)
            else:
                consumer.resume(*assigned)
            batch = await consumer.getmany(timeout_ms=100 if full else timeout_ms,
                                           max_records=self.settings.bulk_max_docs)
            if full:
                for tp, messages in batch.items():  # fetched despite the pause: not ours yet
                    consumer.seek(tp, messages[0].offset)
            elif batch:
                self._start_unit(batch)
            await self._update_lag()

    def _start_unit(self, batch: dict[TopicPartition, list[Any]]) -> None:
        now = datetime.now(UTC)
        ingested = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        process = self.processor.process
        index_for = self.index_for
        docs: list[PendingDoc] = []
        dead: list[dict[str, object]] = []
        offsets: dict[TopicPartition, int] = {}
        count = 0
        for tp, messages in batch.items():
            count += len(messages)
            offsets[tp] = messages[-1].offset + 1
            for msg in messages:
                value: bytes = msg.value or b""
                try:
                    record = decode(value)
                except WireFormatError as exc:
                    dead.append(dead_letter_entry(value, tp.topic, tp.partition, msg.offset,
                                                  f"wire: {exc}", None, None))
                    self.metrics.dead_lettered.labels("wire").inc()
                    continue
                # The index follows the agent's timestamp, not the app's: it is fixed by the
                # record, so a replay lands in the same index and meets its 409.
                index = index_for(record)
                doc = to_document(record, ingested)
                process(record.line, record.ts, now).apply(doc)
                docs.append(PendingDoc(index, bulk_lines(index, record, doc),
                                       tp.topic, tp.partition, msg.offset, value))
        self.metrics.consumed.inc(count)
        task = asyncio.create_task(self._write(docs, dead))
        self._units.append(_Unit(task, offsets))

    async def _write(self, docs: list[PendingDoc], dead: list[dict[str, object]]) -> None:
        requests = _split(docs, self.settings.bulk_max_bytes)
        results = await asyncio.gather(*(self.sink.write(r, self._keepalive) for r in requests))
        for rejected in results:
            dead.extend(self._dead_letter(r) for r in rejected)
        if dead:
            await self.dead_letters.send_all(dead)
            log.warning("records sent to the dead-letter topic",
                        extra={"count": len(dead), "topic": self.dead_letters.topic})

    async def _commit_done(self) -> None:
        """Commit the offsets of finished units, oldest first, stopping at the first unfinished
        one. A unit that failed (e.g. the dead-letter topic unreachable) stops the indexer:
        committing past it would lose its records."""
        offsets: dict[TopicPartition, int] = {}
        while self._units and self._units[0].task.done():
            unit = self._units.popleft()
            unit.task.result()  # re-raises a failure
            offsets.update(unit.offsets)
        if offsets and await self.source.commit(offsets):
            self.metrics.commits.inc()

    async def drain(self, timeout_s: float | None) -> None:
        """Wait for in-flight units (up to ``timeout_s``), then commit what finished."""
        pending = [u.task for u in self._units if not u.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        await self._commit_done()
        if self._units:
            log.warning("in-flight bulks did not finish during a rebalance; their offsets are "
                        "left uncommitted for the next owner", extra={"units": len(self._units)})

    def _dead_letter(self, rejected: Rejected) -> dict[str, object]:
        doc = rejected.doc
        self.metrics.dead_lettered.labels(f"http_{rejected.status}").inc()
        return dead_letter_entry(doc.value, doc.topic, doc.partition, doc.offset,
                                 rejected.reason, rejected.status, doc.index)

    async def _keepalive(self, delay_s: float) -> None:
        """Wait between bulk retries. Only sleeps: the main loop keeps polling Kafka, with
        partitions paused once ``bulk_concurrency`` units are in flight, so the group sees us
        alive while nothing more is buffered."""
        await asyncio.sleep(delay_s)

    async def _update_lag(self) -> None:
        consumer = self.source.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            with contextlib.suppress(Exception):
                position = await consumer.position(tp)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))


def _split(docs: list[PendingDoc], max_bytes: int) -> list[list[PendingDoc]]:
    out: list[list[PendingDoc]] = []
    current: list[PendingDoc] = []
    size = 0
    for doc in docs:
        if current and size + len(doc.lines) > max_bytes:
            out.append(current)
            current, size = [], 0
        current.append(doc)
        size += len(doc.lines)
    if current:
        out.append(current)
    return out

"""The indexer service: Kafka records in, OpenSearch documents out, offsets committed last.

Each poll becomes one *unit*: its records are decoded and shaped into one document per line (a
v2 record holds many lines), bulk-written (every item checked), what OpenSearch rejected for
good is sent to the dead-letter topic line by line and acknowledged there, and only then may
the unit's offsets be committed. Up to ``bulk_concurrency`` units are being written at once,
and one more is decoded and shaped ahead so that it goes out the moment a write finishes
(OpenSearch never waits for the indexer to build the next bulk); commits happen strictly in
poll order, so a committed offset always means "everything before it is in OpenSearch or in the
dead-letter topic". A crash before a commit re-delivers records; their deterministic ids make
the second write a harmless 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from indexer.metrics import IndexerMetrics
from indexer.sinks.opensearch import OpenSearchSink, Rejected
from indexer.sources.kafka import DeadLetterProducer, KafkaSource, dead_letter_entry
from indexer.stages import document, levels, limits, timestamps
from indexer.stages.document import DocumentBuilder, IndexNamer
from indexer.stages.process import Processor
from logferry.config import Config
from logferry.errors import WireFormatError
from logferry.lean_gc import lean_gc
from logferry.telemetry import TelemetryServer
from logferry.wire import LogRecord, decode_lines, encode

log = logging.getLogger("logferry.indexer")

# How long a rebalance waits for in-flight units of revoked partitions before giving them up
# (their offsets are then not committed; the new owner re-reads and re-writes idempotently).
_REVOKE_DRAIN_S = 20.0


@dataclass
class _Unit:
    task: asyncio.Task[None]
    offsets: dict[TopicPartition, int]


@dataclass(slots=True)
class _Docs:
    """The documents of one unit: ``lines[i]`` (action and source) is line ``i - starts[m]``
    of the Kafka record ``messages[m]`` (the last ``m`` with ``starts[m] <= i``), of the
    partition whose run in ``runs`` covers ``i``. Records that failed wire decoding have no
    documents and are not listed."""

    lines: list[bytes]
    messages: list[Any]  # aiokafka records: .offset and .value
    starts: list[int]  # position of each message's first document, ascending
    runs: list[tuple[int, TopicPartition]]  # (first position, partition), ascending

    def locate(self, position: int) -> tuple[int, int, TopicPartition]:
        """(message number, line index in that message, partition) of a document."""
        m = bisect_right(self.starts, position) - 1
        tp = next(tp for first, tp in reversed(self.runs) if first <= position)
        return m, position - self.starts[m], tp


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
        self.builder = DocumentBuilder(self.processor, self.index_for)
        self._units: deque[_Unit] = deque()
        # Lines per Kafka record, averaged over recent units: polls ask for as many records as
        # make about bulk_max_docs documents (1 for v1 records, hundreds for v2).
        self._per_record = 1.0
        # Units being written to OpenSearch at once; one more may wait here, built.
        self._slots = asyncio.Semaphore(self.settings.bulk_concurrency)
        self._ready = False
        self._telemetry: TelemetryServer | None = None

    def health(self) -> tuple[bool, str]:
        return (self._ready, "ok" if self._ready else "starting")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.sink.start()
            await self.sink.install_retention()
        except BaseException:
            # The Kafka clients were made with the indexer and never started: closed here, or
            # each reports itself at exit as an unclosed client, an error line that misleads.
            await self.dead_letters.stop()
            await self.source.stop()
            raise
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
                                                   "group": self.settings.group_id,
                                                   "c_levels": levels.COMPILED,
                                                   "c_document": document.COMPILED,
                                                   "c_limits": limits.COMPILED,
                                                   "c_timestamps": timestamps.COMPILED})
                with lean_gc():
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
            # bulk_concurrency units being written and one built ahead, waiting for a slot.
            full = len(self._units) > self.settings.bulk_concurrency
            assigned = consumer.assignment()
            # Back-pressure without leaving the group: keep polling, but with every partition
            # paused while the in-flight limit is reached (OpenSearch slow or down).
            if full:
                consumer.pause(*assigned)
            else:
                consumer.resume(*assigned)
            # A poll returns as soon as records are there; the timeout only matters when there
            # are none. With units in flight it is short, so that a finished unit is committed
            # within 100 ms rather than after a whole idle poll.
            batch = await consumer.getmany(timeout_ms=100 if self._units else timeout_ms,
                                           max_records=self._max_records())
            if full:
                for tp, messages in batch.items():  # fetched despite the pause: not ours yet
                    consumer.seek(tp, messages[0].offset)
            elif batch:
                self._start_unit(batch)
            await self._update_lag()

    def _max_records(self) -> int:
        return max(1, round(self.settings.bulk_max_docs / self._per_record))

    def _start_unit(self, batch: dict[TopicPartition, list[Any]]) -> None:
        now = datetime.now(UTC)
        self.builder.begin(now, now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        docs = _Docs([], [], [], [])
        dead: list[dict[str, object]] = []
        offsets: dict[TopicPartition, int] = {}
        # The estimate of lines per record is an average: a unit may go past bulk_max_docs,
        # but never past twice that (memory stays bounded however wrong the estimate, e.g.
        # when v2 records follow v1 ones). Records beyond are fetched again by the next poll;
        # cutting at bulk_max_docs itself would drop prefetched data on every other poll.
        cap = 2 * self.settings.bulk_max_docs
        taken = 0
        for tp, messages in batch.items():
            count = 0
            if len(docs.lines) < cap:
                docs.runs.append((len(docs.lines), tp))
                count = self._take(tp, messages, docs, dead, cap)
            if count < len(messages):
                self.source.consumer.seek(tp, messages[count].offset)
            if count:
                offsets[tp] = messages[count - 1].offset + 1
                taken += count
        # A record that is not a wire record counts as one line: its lines are unknown.
        consumed = len(docs.lines) + len(dead)
        self.metrics.consumed.inc(consumed)
        self._per_record = (self._per_record + consumed / max(1, taken)) / 2
        task = asyncio.create_task(self._write(docs, dead))
        self._units.append(_Unit(task, offsets))

    def _take(self, tp: TopicPartition, messages: list[Any], docs: _Docs,
              dead: list[dict[str, object]], cap: int) -> int:
        """Build the documents of ``messages`` into ``docs`` until it holds ``cap``; returns
        how many messages were taken (at least one)."""
        # The index follows the agent's timestamp, not the app's: it is fixed by the record, so
        # a replay lands in the same index and meets its 409.
        build = self.builder.build_lines
        lines, starts, taken = docs.lines, docs.starts, docs.messages
        count = 0
        for msg in messages:
            if count and len(lines) >= cap:
                break
            count += 1
            value: bytes = msg.value or b""
            try:
                built = build(value)
            except WireFormatError as exc:
                dead.append(dead_letter_entry(value, tp.topic, tp.partition, msg.offset,
                                              f"wire: {exc}", None, None))
                self.metrics.dead_lettered.labels("wire").inc()
                continue
            starts.append(len(lines))
            taken.append(msg)
            lines += built
        return count

    async def _write(self, docs: _Docs, dead: list[dict[str, object]]) -> None:
        chunks = _split(docs.lines, self.settings.bulk_max_bytes, self.settings.bulk_max_docs)
        async with self._slots:  # FIFO: units go out in poll order
            results = await asyncio.gather(*(
                self.sink.write(docs.lines[start:stop], self._keepalive)
                for start, stop in chunks))
        rejected = [(start + r.position, r) for (start, _), chunk in
                    zip(chunks, results, strict=True) for r in chunk]
        if rejected:
            dead.extend(self._dead_letters(docs, rejected))
        if dead:
            await self.dead_letters.send_all(dead)
            log.warning("lines sent to the dead-letter topic",
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

    def _dead_letters(self, docs: _Docs, rejected: list[tuple[int, Rejected]]
                      ) -> list[dict[str, object]]:
        """One entry per rejected document, whose ``record`` is its line alone as a v1 record:
        a replay then re-sends just that line, not the other lines of its Kafka record."""
        decoded: dict[int, list[LogRecord]] = {}  # message number -> its lines, decoded once
        out: list[dict[str, object]] = []
        for position, r in rejected:
            m, index, tp = docs.locate(position)
            msg = docs.messages[m]
            lines = decoded.get(m)
            if lines is None:
                lines = decoded[m] = decode_lines(msg.value or b"")
            record = lines[index]
            self.metrics.dead_lettered.labels(f"http_{r.status}").inc()
            out.append(dead_letter_entry(encode(record), tp.topic, tp.partition, msg.offset,
                                         r.reason, r.status, self.index_for(record),
                                         line_index=index))
        return out

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


def _split(lines: list[bytes], max_bytes: int, max_docs: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``lines`` for bulk requests of at most ``max_docs``
    documents and ``max_bytes`` (or one document, if it alone is larger)."""
    if len(lines) <= max_docs and sum(map(len, lines)) <= max_bytes:  # the usual unit
        return [(0, len(lines))] if lines else []
    out: list[tuple[int, int]] = []
    start = size = 0
    for i, line in enumerate(lines):
        if i > start and (size + len(line) > max_bytes or i - start >= max_docs):
            out.append((start, i))
            start, size = i, 0
        size += len(line)
    out.append((start, len(lines)))
    return out

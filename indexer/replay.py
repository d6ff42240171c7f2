"""``logferry dlq replay``: send dead-lettered records back to their source topic.

Run it after fixing the cause (a mapping, a template). It reads the dead-letter topic in its
own consumer group up to the end offsets seen at start, re-produces each original record with
its file id as key, waits for Kafka's acknowledgement and only then commits. A line rejected by
OpenSearch was dead-lettered alone, as a v1 record, so only that line goes back, not the rest
of the Kafka record it came in. Records that were dead-lettered because they are not valid
wire records are counted and skipped: re-sending them cannot succeed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from logferry.config import Config
from logferry.errors import KafkaUnavailableError, WireFormatError
from logferry.kafka import client_kwargs
from logferry.wire import decode_lines

log = logging.getLogger("logferry.indexer.replay")


@dataclass
class ReplayResult:
    replayed: int = 0
    skipped_invalid: int = 0


async def replay_dead_letters(config: Config, limit: int | None = None,
                              dry_run: bool = False) -> ReplayResult:
    settings = config.indexer
    topic = settings.dead_letter_topic
    kwargs = client_kwargs(config.kafka)
    consumer = AIOKafkaConsumer(topic, **kwargs, group_id=f"{settings.group_id}-dlq-replay",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=True,
                                max_request_size=16 * 1024 * 1024)
    try:
        await asyncio.wait_for(consumer.start(), config.kafka.request_timeout_s)
        await asyncio.wait_for(producer.start(), config.kafka.request_timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        await producer.stop()
        raise KafkaUnavailableError(
            f"cannot reach Kafka at {','.join(config.kafka.brokers)}: {exc}") from exc
    result = ReplayResult()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return result
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining and (limit is None or result.replayed < limit):
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if not remaining:
                break
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            futures: list[asyncio.Future[object]] = []
            sent = 0
            offsets: dict[TopicPartition, int] = {}
            for tp, messages in batch.items():
                for msg in messages:
                    if msg.offset >= ends[tp] or (
                            limit is not None and result.replayed + sent >= limit):
                        break
                    offsets[tp] = msg.offset + 1
                    target, value, key = _original(msg.value)
                    if value is None:
                        result.skipped_invalid += 1
                        continue
                    sent += 1
                    if not dry_run:
                        futures.append(await producer.send(target or config.kafka.topic,
                                                           value, key=key))
            await asyncio.gather(*futures)
            result.replayed += sent
            if offsets and not dry_run:
                await consumer.commit(offsets)
    finally:
        await producer.stop()
        await consumer.stop()
    return result


def _original(raw: bytes) -> tuple[str | None, bytes | None, bytes | None]:
    """(source topic, original record, key) of a dead-letter entry; record None if unusable."""
    try:
        entry = orjson.loads(raw)
        if "record" in entry:
            value: bytes = entry["record"].encode()
        else:
            value = base64.b64decode(entry["record_b64"])
        # Any valid record is taken, v1 or v2: an indexer older than v2 dead-lettered v2
        # records whole as unsupported, and this one reads them now.
        fid = decode_lines(value)[0].fid
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, WireFormatError):
        return None, None, None
    source = entry.get("source") or {}
    topic = source.get("topic") if isinstance(source, dict) else None
    return (topic if isinstance(topic, str) else None), value, fid.encode()

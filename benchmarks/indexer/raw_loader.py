"""The raw bulk loader: what the OpenSearch node can take at all (the ceiling).

Run by the indexer benchmark as its own process::

    python -m benchmarks.indexer.raw_loader --brokers B --topic T --url U --prefix P \
        --records N --result FILE

It reads every record of the topic and pre-builds NDJSON ``_bulk`` bodies of 5000 ``create``
actions, one per line of each wire record (deterministic ids, a minimal document) *before* its
clock starts; then it only POSTs
them, over 2 concurrent connections, and checks that no response says ``errors: true``. The
result file holds the POST phase's wall time and CPU time.

With ``--docs logferry`` the bodies hold the documents the logferry indexer writes (built with
its own ``DocumentBuilder``, default processing) instead of the minimal ones: the node's
ceiling for logferry's documents, which cost OpenSearch more to index (parsed fields in a
``flat_object``, level, ingest time, origin).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks._harness import CpuMeter
from logferry.wire import decode_lines, origin_id

DOCS_PER_BODY = 5000
CONNECTIONS = 2


async def read_topic(brokers: str, topic: str) -> list[bytes]:
    """Every record value of ``topic`` up to its end offsets at start."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.unsubscribe()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        values: list[bytes] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20000)
            for msgs in batch.values():
                values.extend(m.value for m in msgs)
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end[tp] for tp in tps):
                break
        return values
    finally:
        await consumer.stop()


def build_logferry_bodies(values: list[bytes], prefix: str) -> list[bytes]:
    """The logferry indexer's own bulk lines for ``values``, in bodies of DOCS_PER_BODY."""
    from datetime import UTC, datetime

    from indexer.stages.document import DocumentBuilder, IndexNamer
    from indexer.stages.process import Processor
    from logferry.config._processing import ProcessingSettings

    builder = DocumentBuilder(Processor(ProcessingSettings()),
                              IndexNamer("{prefix}-{date}", prefix))
    now = datetime.now(UTC)
    builder.begin(now, now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    lines = [line for value in values for line in builder.build_lines(value)]
    return [b"".join(lines[i:i + DOCS_PER_BODY]) for i in range(0, len(lines), DOCS_PER_BODY)]


def build_bodies(values: list[bytes], prefix: str) -> list[bytes]:
    """Minimal documents for every line of ``values``, in bodies of DOCS_PER_BODY."""
    bodies: list[bytes] = []
    lines: list[bytes] = []
    for rec in (line for raw in values for line in decode_lines(raw)):
        ts = rec.ts
        index = f"{prefix}-{ts[0:4]}.{ts[5:7]}.{ts[8:10]}"
        lines.append(orjson.dumps({"create": {"_index": index,
                                              "_id": origin_id(rec.fid, rec.off)}}))
        lines.append(orjson.dumps({"@timestamp": ts, "message": rec.line,
                                   "host": {"name": rec.host},
                                   "log": {"file": {"path": rec.path},
                                           "offset": rec.off}}))
        if len(lines) == 2 * DOCS_PER_BODY:
            bodies.append(b"\n".join(lines) + b"\n")
            lines = []
    if lines:
        bodies.append(b"\n".join(lines) + b"\n")
    return bodies


async def post_all(url: str, bodies: list[bytes]) -> tuple[int, int, list[str]]:
    """POST every body; returns (documents created, items failed, first failure reasons)."""
    todo = iter(bodies)
    created = 0
    failed = 0
    reasons: list[str] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal created, failed
        for body in todo:  # a shared iterator: each body is taken by exactly one worker
            async with session.post(f"{url}/_bulk", data=body,
                                    headers={"Content-Type": "application/x-ndjson"}) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"raw loader: HTTP {resp.status}: {payload[:300]!r}")
            result: dict[str, Any] = orjson.loads(payload)
            if not result.get("errors"):
                created += len(result["items"])
                continue
            for item in result["items"]:
                status = item["create"]["status"]
                if status == 201:
                    created += 1
                else:
                    failed += 1
                    if len(reasons) < 3:
                        reasons.append(f"{status}: {item['create'].get('error')}")

    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))
    return created, failed, reasons


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.indexer.raw_loader")
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--records", type=int, required=True,
                        help="log lines (documents) the topic holds")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--docs", choices=("minimal", "logferry"), default="minimal",
                        help="minimal documents, or the ones the logferry indexer writes")
    parser.add_argument("--service-pids", default="",
                        help="name=pid,... of Kafka/OpenSearch, to count their CPU while POSTing")
    args = parser.parse_args()
    pids = {name: int(pid) for name, _, pid in
            (item.partition("=") for item in args.service_pids.split(",") if item)}

    t0 = time.monotonic()
    values = asyncio.run(read_topic(args.brokers, args.topic))
    t_read = time.monotonic()
    build = build_logferry_bodies if args.docs == "logferry" else build_bodies
    bodies = build(values, args.prefix)
    del values
    # Two NDJSON lines per document (orjson escapes newlines in strings).
    docs = sum(body.count(b"\n") for body in bodies) // 2
    if docs != args.records:
        raise RuntimeError(f"raw loader: read {docs} lines, expected {args.records}")
    t_built = time.monotonic()

    meter = CpuMeter(pids)
    cpu0 = _cpu_s()
    start = time.monotonic()
    created, failed, reasons = asyncio.run(post_all(args.url.rstrip("/"), bodies))
    post_s = time.monotonic() - start
    cpu_post = _cpu_s() - cpu0
    cpu = meter.stop(0.0)  # this process is the meter's "harness" here

    args.result.write_bytes(orjson.dumps({
        "docs": created, "failed": failed, "failures": reasons, "bodies": len(bodies),
        "body_mib": sum(len(b) for b in bodies) / 2**20, "post_s": post_s,
        "cpu_post_s": cpu_post, "read_s": t_read - t0, "build_s": t_built - t_read,
        "cpu": cpu,
    }))


if __name__ == "__main__":
    main()

"""A Kafka -> OpenSearch consumer "written the usual way": the peer the indexer is compared to.

Run by the indexer benchmark as its own process::

    python -m benchmarks.indexer.naive_consumer --brokers B --topic T --group G --url U \
        --prefix P --records N

aiokafka consumer in a group, ``json.loads`` per Kafka record, a loop over the record's lines
(a wire v2 record holds many; v1, one) building a document dict per line, opensearch-py's
synchronous client and ``helpers.streaming_bulk`` with ``chunk_size=500`` and otherwise default
settings, offsets committed after each poll of a few records (about three chunks). It writes
``create`` actions with the same deterministic ids and the same document fields as logferry: a
line that is a JSON object is parsed the usual way (``json.loads``; ``time``, ``level`` and
``msg`` become ``@timestamp``, ``log.level`` and ``message``, the other keys go under
``attributes``), so OpenSearch does about the same work for both. It does not look for levels
in plain text (logferry does), nor does it normalize timestamps or levels. It exits once N
documents are indexed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from opensearchpy import OpenSearch, helpers

CHUNK = 500
# Records per poll: a v2 record holds a few hundred lines, so 4 make about three full chunks
# (with v1, one line per record, this was 500 records for one chunk).
POLL_RECORDS = 4


def doc_id(fid: str, off: int) -> str:
    digest = hashlib.blake2b(f"{fid}@{off}".encode(), digest_size=15).digest()
    return base64.urlsafe_b64encode(digest).decode()


def lines(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The lines of a wire record as v1-style dicts: v2 holds its lines as columns."""
    if record["v"] == 1:
        yield record
        return
    ts = record["ts"]
    for i, line in enumerate(record["line"]):
        yield {"ts": ts if isinstance(ts, str) else ts[i], "host": record["host"],
               "kind": record["kind"], "path": record["path"], "fid": record["fid"],
               "off": record["off"][i], "line": line}


def document(rec: dict[str, Any], ingested: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": rec["ts"],
        "message": rec["line"],
        "host": {"name": rec["host"]},
        "log": {"file": {"path": rec["path"]}, "offset": rec["off"]},
        "logferry": {"fid": rec["fid"], "kind": rec["kind"]},
        "event": {"ingested": ingested},
    }
    if rec["line"].startswith("{"):
        try:
            fields = json.loads(rec["line"])
        except ValueError:
            return doc
        if isinstance(fields, dict):
            if "time" in fields:
                doc["@timestamp"] = fields.pop("time")
            if "level" in fields:
                doc["log"]["level"] = fields.pop("level")
            if "msg" in fields:
                doc["message"] = fields.pop("msg")
            if fields:
                doc["attributes"] = fields
    return doc


def actions(records: list[dict[str, Any]], prefix: str) -> Iterator[dict[str, Any]]:
    ingested = datetime.now(UTC).isoformat()
    for rec in (line for record in records for line in lines(record)):
        ts = rec["ts"]
        yield {
            "_op_type": "create",
            "_index": f"{prefix}-{ts[0:4]}.{ts[5:7]}.{ts[8:10]}",
            "_id": doc_id(rec["fid"], rec["off"]),
            "_source": document(rec, ingested),
        }


class _Ready(ConsumerRebalanceListener):  # type: ignore[misc]
    """Prints when the group gave this consumer its partitions: the benchmark times the
    consumers from there, as it times the raw loader from its first POST."""

    def __init__(self) -> None:
        self.printed = False

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned and not self.printed:
            self.printed = True
            print(json.dumps({"assigned_at": time.time()}), flush=True)


async def run(args: argparse.Namespace) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=args.brokers,
                                group_id=args.group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    consumer.subscribe([args.topic], listener=_Ready())
    client = OpenSearch(hosts=[args.url])
    await consumer.start()
    indexed = 0
    try:
        while indexed < args.records:
            batch = await consumer.getmany(timeout_ms=1000, max_records=POLL_RECORDS)
            records = [json.loads(m.value) for msgs in batch.values() for m in msgs]
            if not records:
                continue
            for ok, _item in helpers.streaming_bulk(client, actions(records, args.prefix),
                                                    chunk_size=CHUNK):
                indexed += ok
            await consumer.commit()
    finally:
        await consumer.stop()
        client.close()
    return indexed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.indexer.naive_consumer")
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--records", type=int, required=True,
                        help="log lines (documents) to index before exiting")
    args = parser.parse_args()
    indexed = asyncio.run(run(args))
    print(f"indexed {indexed}", flush=True)


if __name__ == "__main__":
    main()

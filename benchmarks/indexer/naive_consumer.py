"""A Kafka -> OpenSearch consumer "written the usual way": the peer the indexer is compared to.

Run by the indexer benchmark as its own process::

    python -m benchmarks.indexer.naive_consumer --brokers B --topic T --group G --url U \
        --prefix P --records N

aiokafka consumer in a group, ``json.loads`` per record, a document dict per record,
opensearch-py's synchronous client and ``helpers.streaming_bulk`` with ``chunk_size=500`` and
otherwise default settings, offsets committed after each chunk. It writes ``create`` actions
with the same deterministic ids and the same document fields as logferry, so OpenSearch does
the same work for both; it exits once N documents are indexed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from opensearchpy import OpenSearch, helpers

CHUNK = 500


def doc_id(fid: str, off: int) -> str:
    digest = hashlib.blake2b(f"{fid}@{off}".encode(), digest_size=15).digest()
    return base64.urlsafe_b64encode(digest).decode()


def actions(records: list[dict[str, Any]], prefix: str) -> Iterator[dict[str, Any]]:
    ingested = datetime.now(UTC).isoformat()
    for rec in records:
        ts = rec["ts"]
        yield {
            "_op_type": "create",
            "_index": f"{prefix}-{ts[0:4]}.{ts[5:7]}.{ts[8:10]}",
            "_id": doc_id(rec["fid"], rec["off"]),
            "_source": {
                "@timestamp": ts,
                "message": rec["line"],
                "host": {"name": rec["host"]},
                "log": {"file": {"path": rec["path"]}, "offset": rec["off"]},
                "logferry": {"fid": rec["fid"], "kind": rec["kind"]},
                "event": {"ingested": ingested},
            },
        }


async def run(args: argparse.Namespace) -> int:
    consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.brokers,
                                group_id=args.group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    client = OpenSearch(hosts=[args.url])
    await consumer.start()
    indexed = 0
    try:
        while indexed < args.records:
            batch = await consumer.getmany(timeout_ms=1000, max_records=CHUNK)
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
    parser.add_argument("--records", type=int, required=True)
    args = parser.parse_args()
    indexed = asyncio.run(run(args))
    print(f"indexed {indexed}", flush=True)


if __name__ == "__main__":
    main()

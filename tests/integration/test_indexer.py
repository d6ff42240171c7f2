"""Indexer guarantees on real Kafka + OpenSearch: exactly once in the index across replays,
crashes, outages and a group member's death; rejected documents dead-lettered with reasons."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opensearchpy import OpenSearch

from logferry.devstack import DevStack
from logferry.wire import LogRecord, batch_head, decode_lines, encode, encode_batch
from tests.integration.conftest import (
    ROOT,
    all_docs,
    count_docs,
    read_topic,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

N = 50_000


def _records(n: int, tag: str) -> list[bytes]:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    out = []
    for i in range(n):
        fid = f"fe:{i % 7}:{tag}"
        out.append(encode(LogRecord(ts=ts, host="node-a", kind="file",
                                    path=f"/var/log/app{i % 7}.log", fid=fid, off=i * 100,
                                    line=f"record {i} {'p' * (i % 120)}")))
    return out


def produce(brokers: str, topic: str, values: list[bytes], partitions: int = 3) -> None:
    async def _go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
        except Exception as exc:  # noqa: BLE001 - topic may exist already (second call)
            assert "TopicAlreadyExists" in type(exc).__name__, exc
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=brokers, acks="all", linger_ms=20,
                                    max_batch_size=512 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(topic, v, key=str(i % 64).encode())
                       for i, v in enumerate(values)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(_go())


def _config(tmp_path: Path, brokers: str, opensearch_url: str, names: dict[str, str],
            **indexer: Any) -> Path:
    return write_config(tmp_path / f"indexer-{names['group']}.json", {
        "kafka": {"brokers": [brokers], "topic": names["topic"]},
        "opensearch": {"urls": [opensearch_url], "index_prefix": names["prefix"]},
        "indexer": {"group_id": names["group"], "dead_letter_topic": names["dlq"],
                    "flush_interval_s": 0.2, **indexer},
    })


def _assert_exactly(os_client: OpenSearch, prefix: str, n: int) -> None:
    docs = all_docs(os_client, prefix)
    assert len(docs) == n
    origins = {(d["logferry"]["fid"], d["log"]["offset"]) for d in docs}
    assert len(origins) == n


def test_replay_twice_gives_exactly_n_documents(tmp_path: Path, brokers: str,
                                                opensearch_url: str, os_client: OpenSearch,
                                                names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    produce(brokers, names["topic"], _records(N, names["topic"]))
    first = run_service("indexer", "run", "--config",
                        str(_config(tmp_path, brokers, opensearch_url, names)), name="idx")
    wait_for(lambda: count_docs(os_client, names["prefix"]) >= N, 180, f"{N} documents")
    assert first.stop() == 0, first.log()
    # A new group re-reads the whole topic: every write is a 409, nothing is added.
    replay = dict(names, group=names["group"] + "-replay")
    second = run_service("indexer", "run", "--config",
                         str(_config(tmp_path, brokers, opensearch_url, replay)), name="idx")
    second.wait_started()
    wait_for(lambda: '"msg":"indexer started"' in second.log(), 30, "replay start")
    time.sleep(1)
    # Same records produced again too (an agent re-sending after a crash).
    produce(brokers, names["topic"], _records(N, names["topic"]))
    wait_for(lambda: _lag_zero(brokers, replay["group"], names["topic"]), 240,
             "the replay group to catch up")
    assert second.stop() == 0, second.log()
    _assert_exactly(os_client, names["prefix"], N)


def _lag_zero(brokers: str, group: str, topic: str) -> bool:
    async def _check() -> bool:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
        # Subscribing (no group) makes the client fetch the topic's metadata.
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers)
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            ends = await consumer.end_offsets(tps)
            return bool(tps) and all(
                tp in committed and committed[tp].offset == ends[tp] for tp in tps)
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(_check())


def test_kill_9_mid_batch_then_restart(tmp_path: Path, brokers: str, opensearch_url: str,
                                       os_client: OpenSearch, names: dict[str, str],
                                       run_service) -> None:  # type: ignore[no-untyped-def]
    produce(brokers, names["topic"], _records(N, names["topic"]))
    config = _config(tmp_path, brokers, opensearch_url, names, bulk_max_docs=2000)
    rng = random.Random(11)
    for _ in range(3):
        idx = run_service("indexer", "run", "--config", str(config), name="idx").wait_started()
        target = count_docs(os_client, names["prefix"]) + rng.randint(3000, 9000)
        wait_for(lambda t=target: count_docs(os_client, names["prefix"]) >= min(t, N), 120,
                 "progress before the kill")
        idx.kill9()
    # Started before the lag check: the killed ones may have committed everything already,
    # and a SIGTERM before the signal handlers are in place is no graceful stop to test.
    idx = run_service("indexer", "run", "--config", str(config), name="idx").wait_started()
    wait_for(lambda: _lag_zero(brokers, names["group"], names["topic"]), 240, "catch-up")
    assert idx.stop() == 0, idx.log()
    _assert_exactly(os_client, names["prefix"], N)


def test_mapping_conflict_goes_to_dead_letter_and_offset_is_committed(
        tmp_path: Path, brokers: str, opensearch_url: str, os_client: OpenSearch,
        names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    values = _records(100, names["topic"])
    day = orjson.loads(values[0])["ts"][:10].replace("-", ".")
    # A real mapping conflict: the day's index maps `message` as a number, so every
    # non-numeric message is rejected with a 400 mapper_parsing_exception.
    os_client.indices.create(index=f"{names['prefix']}-{day}", body={
        "mappings": {"properties": {"message": {"type": "long"}}}})
    numeric = encode(LogRecord(ts=orjson.loads(values[0])["ts"], host="h", kind="file",
                               path="/n", fid="num:1", off=0, line="12345"))
    produce(brokers, names["topic"], [*values, numeric, b"not a wire record"])
    idx = run_service("indexer", "run", "--config",
                      str(_config(tmp_path, brokers, opensearch_url, names)), name="idx")
    dead = read_topic(brokers, names["dlq"], 101, timeout_s=120)
    assert len(dead) == 101
    reasons = [d["reason"] for d in dead]
    assert sum("mapper_parsing_exception" in r for r in reasons) == 100
    assert sum(r.startswith("wire:") for r in reasons) == 1
    first = next(d for d in dead if d["status"] == 400)
    assert first["index"] == f"{names['prefix']}-{day}"
    # The original record travels with the reason, so it can be replayed once fixed.
    assert orjson.loads(first["record"])["fid"].endswith(names["topic"])
    assert first["source"]["topic"] == names["topic"]
    wait_for(lambda: _lag_zero(brokers, names["group"], names["topic"]), 60, "commit")
    assert count_docs(os_client, names["prefix"]) == 1
    # Fix the cause (drop the bad index; the template maps message as text), then replay.
    os_client.indices.delete(index=f"{names['prefix']}-{day}")
    config = _config(tmp_path, brokers, opensearch_url, names)
    out = subprocess.run([sys.executable, "-m", "logferry.cli", "dlq", "replay", "--config",
                          str(config)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "replayed 100 records; skipped 1" in out.stdout
    wait_for(lambda: count_docs(os_client, names["prefix"]) == 100, 60, "replayed documents")
    assert idx.stop() == 0, idx.log()


def _batches(count: int, lines_each: int, tag: str, ts: str) -> list[bytes]:
    """``count`` v2 records of ``lines_each`` consecutive lines each, from 7 container files,
    with per-line streams and a flagged first line, as the agent writes them."""
    out = []
    for r in range(count):
        f = r % 7
        head = batch_head("node-b", "container", f"/var/log/pods/shop_app-{f}/app/0.log",
                          f"v2:{f}:{tag}", {"namespace": "shop", "pod": f"app-{f}"})
        first = (r // 7) * lines_each
        offs = [(first + i) * 100 for i in range(lines_each)]
        streams: list[str | None] = [("stdout", "stderr")[i % 2] for i in range(lines_each)]
        out.append(encode_batch(head, ts, offs, [f"v2 record {r} line {i}" for i in offs],
                                streams, [(0, ["split"])]))
    return out


def test_v2_records_a_rejected_line_is_dead_lettered_and_replayed_alone(
        tmp_path: Path, brokers: str, opensearch_url: str, os_client: OpenSearch,
        names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    before = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    batches = _batches(40, 250, names["topic"], ts)
    # One line of a record dates from two days ago, and that day's index maps `message` as a
    # number: only that line is rejected, not the other lines of its record.
    bad_day = before[:10].replace("-", ".")
    os_client.indices.create(index=f"{names['prefix']}-{bad_day}", body={
        "mappings": {"properties": {"message": {"type": "long"}}}})
    mixed = encode_batch(batch_head("node-b", "file", "/var/log/mixed.log",
                                    f"mixed:{names['topic']}"),
                         [ts, before, ts], [0, 10, 30], ["12", "not a number", "34"])
    singles = _records(5, names["topic"])  # v1 records in the same topic are still read
    values = [*batches, mixed, *singles]
    total = 40 * 250 + 3 + 5
    produce(brokers, names["topic"], values)
    config = _config(tmp_path, brokers, opensearch_url, names, bulk_max_docs=2000)
    idx = run_service("indexer", "run", "--config", str(config), name="idx")
    dead = read_topic(brokers, names["dlq"], 1, timeout_s=120)
    assert len(dead) == 1
    entry = dead[0]
    assert entry["status"] == 400 and "mapper_parsing_exception" in entry["reason"]
    assert entry["index"] == f"{names['prefix']}-{bad_day}"
    assert entry["source"]["topic"] == names["topic"]
    assert entry["source"]["line_index"] == 1
    # The record is that line alone, as a v1 record.
    assert orjson.loads(entry["record"]) == decode_lines(mixed)[1].to_dict()
    wait_for(lambda: _lag_zero(brokers, names["group"], names["topic"]), 120, "commit")
    assert count_docs(os_client, names["prefix"]) == total - 1
    doc = next(d for d in all_docs(os_client, names["prefix"])
               if d["message"] == "v2 record 8 line 25000")
    assert doc["log"] == {"file": {"path": "/var/log/pods/shop_app-1/app/0.log"},
                          "offset": 25000, "stream": "stdout"}
    assert doc["logferry"] == {"fid": f"v2:1:{names['topic']}", "kind": "container",
                               "flags": ["split"]}
    assert doc["kubernetes"] == {"namespace": "shop", "pod": {"name": "app-1"}}
    # Fix the cause, then replay: just the rejected line goes back, and is indexed.
    os_client.indices.delete(index=f"{names['prefix']}-{bad_day}")
    out = subprocess.run([sys.executable, "-m", "logferry.cli", "dlq", "replay", "--config",
                          str(config)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "replayed 1 records; skipped 0" in out.stdout
    wait_for(lambda: count_docs(os_client, names["prefix"]) == total, 60, "the replayed line")
    # The same records produced again (an agent re-sending after a crash): nothing is added.
    produce(brokers, names["topic"], values)
    wait_for(lambda: _lag_zero(brokers, names["group"], names["topic"]), 120, "catch-up")
    assert idx.stop() == 0, idx.log()
    _assert_exactly(os_client, names["prefix"], total)
    assert len(read_topic(brokers, names["dlq"], 1)) == 1


def test_opensearch_down_30s_during_ingest(tmp_path: Path, brokers: str, opensearch_url: str,
                                           os_client: OpenSearch, stack: DevStack,
                                           names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    produce(brokers, names["topic"], _records(N // 2, names["topic"]))
    idx = run_service("indexer", "run", "--config",
                      str(_config(tmp_path, brokers, opensearch_url, names)), name="idx")
    wait_for(lambda: count_docs(os_client, names["prefix"]) > 2000, 120, "ingest under way")
    stack.kill("opensearch")
    produce(brokers, names["topic"], _records(N, names["topic"])[N // 2:])
    time.sleep(30)
    assert idx.proc is not None and idx.proc.poll() is None, "indexer must ride out the outage"
    stack.start("opensearch")
    wait_for(lambda: _lag_zero(brokers, names["group"], names["topic"]), 300, "catch-up")
    assert idx.stop() == 0, idx.log()
    _assert_exactly(os_client, names["prefix"], N)
    assert "bulk request failed; retrying" in idx.log()


def test_two_indexers_one_killed(tmp_path: Path, brokers: str, opensearch_url: str,
                                 os_client: OpenSearch, names: dict[str, str],
                                 run_service) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, brokers, opensearch_url, names, bulk_max_docs=1000)
    a = run_service("indexer", "run", "--config", str(config), name="a").wait_started()
    b = run_service("indexer", "run", "--config", str(config), name="b").wait_started()
    produce(brokers, names["topic"], _records(N, names["topic"]), partitions=4)
    wait_for(lambda: count_docs(os_client, names["prefix"]) > 10_000, 120, "ingest under way")
    a.kill9()
    wait_for(lambda: _lag_zero(brokers, names["group"], names["topic"]), 300,
             "the survivor to take over and catch up")
    assert b.stop() == 0, b.log()
    _assert_exactly(os_client, names["prefix"], N)

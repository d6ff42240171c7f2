"""Integration fixtures: the real Kafka + OpenSearch dev stack, started once per session
through the same code as `logferry dev up`, on ports that do not collide with a demo stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError
from opensearchpy.helpers import scan

from logferry.devstack import DevStack
from logferry.wire import decode_lines

ROOT = Path(__file__).resolve().parents[2]
KAFKA_PORT = int(os.environ.get("LOGFERRY_TEST_KAFKA_PORT", "19092"))
OPENSEARCH_PORT = int(os.environ.get("LOGFERRY_TEST_OPENSEARCH_PORT", "19200"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    state = Path(os.environ.get("LOGFERRY_TEST_STACK_DIR")
                 or tmp_path_factory.mktemp("devstack"))
    dev = DevStack(state, kafka_port=KAFKA_PORT, opensearch_port=OPENSEARCH_PORT)
    already_running = all(s.ready for s in dev.status())
    dev.up(echo=False)
    yield dev
    if not already_running:
        dev.down()


@pytest.fixture
def brokers(stack: DevStack) -> str:
    return stack.kafka.address


@pytest.fixture
def opensearch_url(stack: DevStack) -> str:
    return stack.opensearch.address


@pytest.fixture
def os_client(opensearch_url: str) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url], timeout=30)
    yield client
    client.close()


@pytest.fixture
def names() -> dict[str, str]:
    """A topic, group and index prefix unique to one test, so tests never see each other."""
    tag = uuid.uuid4().hex[:10]
    return {"topic": f"t-{tag}", "group": f"g-{tag}", "prefix": f"lf-{tag}",
            "dlq": f"dlq-{tag}"}


class Service:
    """A logferry process (agent or indexer) run through the real CLI."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logferry.cli", *self.args], stdout=log,
            stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def stop(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout_s: float = 60.0) -> Service:
        """Until the service logged that it runs (its signal handlers are installed then)."""
        wait_for(lambda: '" started"' in self.log() or ' started",' in self.log(), timeout_s,
                 f"{self.args[0]} to start; log:\n{self.log()}", interval_s=0.1)
        return self


@pytest.fixture
def run_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def _run(*args: str, name: str = "svc") -> Service:
        svc = Service(list(args), tmp_path / f"{name}-{len(started)}.log").start()
        started.append(svc)
        return svc

    yield _run
    for svc in started:
        svc.stop()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
             interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def count_docs(client: OpenSearch, prefix: str) -> int:
    params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
    deadline = time.monotonic() + 60
    while True:
        try:
            client.indices.refresh(index=f"{prefix}-*", params=params)
            return int(client.count(index=f"{prefix}-*", params=params)["count"])
        except TransportError as exc:
            # 503 "all shards failed": an index the indexer has just created whose primary
            # is not started yet (slow after the fault suite restarted the node). Not an
            # answer: ask again.
            if exc.status_code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def all_docs(client: OpenSearch, prefix: str) -> list[dict[str, Any]]:
    client.indices.refresh(index=f"{prefix}-*")
    return [hit["_source"] for hit in scan(client, index=f"{prefix}-*",
                                           query={"query": {"match_all": {}}}, size=2000)]


def read_topic(brokers: str, topic: str, min_records: int, timeout_s: float = 60.0,
               idle_s: float = 3.0) -> list[dict[str, Any]]:
    """Every record value in ``topic`` (all partitions, from the start), decoded as JSON,
    a wire record (v1 or v2) as one v1-style dict per line (:func:`topic_values`).

    Returns once at least ``min_records`` (lines, for wire records) were read and nothing new
    came for ``idle_s``.
    """
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def _read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = None
            deadline = time.monotonic() + timeout_s
            while not parts:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    await consumer._client.force_metadata_update()
                    await asyncio.sleep(0.2)
                    if time.monotonic() > deadline:
                        raise AssertionError(f"topic {topic} never appeared")
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: list[dict[str, Any]] = []
            last_new = time.monotonic()
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=10000)
                for msgs in batch.values():
                    for m in msgs:
                        out.extend(topic_values(m.value))
                now = time.monotonic()
                if batch:
                    last_new = now
                if len(out) >= min_records and now - last_new >= idle_s:
                    return out
                if now > deadline:
                    raise AssertionError(
                        f"only {len(out)} of {min_records} lines in {topic} after "
                        f"{timeout_s:.0f}s")
        finally:
            await consumer.stop()

    return asyncio.run(_read())


def topic_values(raw: bytes) -> list[dict[str, Any]]:
    """One Kafka record value as JSON: a wire record (it has ``v``) as one v1-style dict per
    line, whatever its version, so that tests count and compare lines; anything else (a
    dead-letter entry) as it is. A wire record that does not decode fails the test."""
    obj = orjson.loads(raw)
    if isinstance(obj, dict) and "v" in obj:
        return [record.to_dict() for record in decode_lines(raw)]
    return [obj]


def line_offsets(data: bytes) -> dict[int, str]:
    """Byte offset of each complete line in ``data`` -> its text."""
    out: dict[int, str] = {}
    off = 0
    for raw in data.split(b"\n")[:-1]:
        out[off] = raw.decode("utf-8", errors="replace")
        off += len(raw) + 1
    return out


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault scenarios' table, when any ran (tests/integration/test_faults.py)."""
    from tests.faults.harness import RESULTS, format_table

    if RESULTS:
        terminalreporter.write_sep("=", "fault scenarios")
        terminalreporter.write_line(format_table(RESULTS))

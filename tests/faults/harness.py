"""Runs one fault scenario against the real Kafka + OpenSearch and accounts for every line.

A scenario gets a :class:`Run`: the fleet of files, the generator, the agent and indexer
processes (real ``logferry`` CLI processes) and the dev stack. While the generator writes, the
scenario injects its faults; afterwards the harness makes sure both services run, waits until
every written line is accounted for (or ``catch_up_timeout_s`` passes) and checks:

- **indexed**: distinct tokens found in OpenSearch (``message`` or ``event.original``);
- **duplicates**: documents beyond the first carrying the same token;
- **dead-lettered**: tokens found in the dead-letter topic (with the reason OpenSearch gave);
- **missing**: written, neither indexed nor dead-lettered.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError
from opensearchpy.helpers import scan

from logferry.devstack import DevStack
from tests.faults.generator import Fleet, Generator

ROOT = Path(__file__).resolve().parents[2]
_TOKEN = re.compile(r"#(\d+)#")


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    written: int = 0
    indexed: int = 0
    duplicates: int = 0
    missing: int = 0
    dead_lettered: int = 0
    catch_up_s: float | None = None
    expected_dead: int = 0
    note: str = ""
    error: str = ""
    missing_sample: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.error and self.duplicates == 0 and self.missing == 0
                and self.dead_lettered == self.expected_dead and self.catch_up_s is not None)


# Rows of the scenarios run in this process, for the table pytest prints at the end.
RESULTS: list[Row] = []


class Proc:
    """A logferry service run through the real CLI, its output appended to one log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "logferry.cli", *self.args],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.starts += 1
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_started(self, timeout_s: float = 60.0) -> None:
        """Until the service logged that it runs (its signal handlers are installed then)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log()
            if text.count(' started"') >= self.starts:
                return
            if not self.running:
                raise RuntimeError(f"{self.args[0]} exited during start:\n{text[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.args[0]} did not start in {timeout_s:.0f}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Run:
    """Everything one scenario works with."""

    name: str
    work: Path
    stack: DevStack
    fleet: Fleet
    gen: Generator
    agent: Proc
    indexer: Proc
    topic: str
    dlq: str
    prefix: str
    agent_config: Path
    indexer_config: Path
    expected_dead: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    # What a scenario saw go wrong besides lines (e.g. a bound exceeded): fails the row.
    failures: list[str] = field(default_factory=list)

    def restart_agent(self) -> None:
        self.agent.start()

    def restart_indexer(self) -> None:
        self.indexer.start()


@dataclass
class Scenario:
    name: str
    inject: Callable[[Run], None]
    total: int
    rate_per_s: float
    pods: int = 3
    plain: int = 2
    docker: int = 1
    agent: dict[str, Any] = field(default_factory=dict)
    indexer: dict[str, Any] = field(default_factory=dict)
    catch_up_timeout_s: float = 240.0
    # Run before the services start / after they stopped (e.g. mount a tiny state dir).
    prepare: Callable[[Run], None] | None = None
    cleanup: Callable[[Run], None] | None = None


def run_scenario(scenario: Scenario, stack: DevStack, base: Path) -> Row:
    tag = uuid.uuid4().hex[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", scenario.name.lower()).strip("-")
    work = base / f"{slug}-{tag}"
    work.mkdir(parents=True)
    fleet = Fleet.create(work / "logs", scenario.pods, scenario.plain, scenario.docker)
    names = {"topic": f"faults-{tag}", "dlq": f"faults-dlq-{tag}", "prefix": f"faults-{tag}"}
    agent_config = _write(work / "agent.json", {
        "kafka": {"brokers": [stack.kafka.address], "topic": names["topic"]},
        "agent": _merge({
            "include": [str(fleet.plain_dir / "*.log")], "state_dir": str(work / "state"),
            "scan_interval_s": 0.5, "checkpoint_interval_s": 0.5, "rotate_wait_s": 2.0,
            "metrics_port": free_port(), "multiline": {"mode": "indent"},
            "containers": {"enabled": True, "root": str(fleet.pods_root),
                           "multiline": {"mode": "indent"}},
        }, scenario.agent),
    })
    indexer_config = _write(work / "indexer.json", {
        "kafka": {"brokers": [stack.kafka.address], "topic": names["topic"]},
        "opensearch": {"urls": [stack.opensearch.address], "index_prefix": names["prefix"]},
        "indexer": _merge({
            "group_id": f"faults-{tag}", "dead_letter_topic": names["dlq"],
            "flush_interval_s": 0.5, "metrics_port": free_port(),
            "processing": {"keep_original": True},
        }, scenario.indexer),
    })
    run = Run(scenario.name, work, stack, fleet,
              Generator(fleet, scenario.total, scenario.rate_per_s, seed=len(scenario.name)),
              Proc(["agent", "run", "--config", str(agent_config)], work / "agent.log"),
              Proc(["indexer", "run", "--config", str(indexer_config)], work / "indexer.log"),
              names["topic"], names["dlq"], names["prefix"], agent_config, indexer_config)
    row = Row(scenario.name)
    try:
        # Created up front, as an operator would: the indexer is assigned its partitions at
        # once instead of at its next metadata refresh.
        create_topic(stack.kafka.address, names["topic"], partitions=3)
        if scenario.prepare is not None:
            scenario.prepare(run)
        run.indexer.start().wait_started()
        run.agent.start().wait_started()
        run.gen.start()
        scenario.inject(run)
        run.gen.join()
        for svc in (run.agent, run.indexer):
            if not svc.running:
                svc.start().wait_started()
        written_at = time.monotonic()
        row.written = fleet.total_written()
        row.expected_dead = len(run.expected_dead)
        _settle(run, row, written_at, scenario.catch_up_timeout_s)
        for svc in (run.agent, run.indexer):
            code = svc.stop()
            if code != 0:
                row.error = f"{svc.args[0]} exited {code} on SIGTERM"
    except Exception as exc:  # noqa: BLE001 - the table reports it; the next scenario runs
        row.error = f"{type(exc).__name__}: {exc}"
        (work / "harness-error.txt").write_text(traceback.format_exc())
    finally:
        run.gen.stop.set()
        run.agent.stop()
        run.indexer.stop()
        if scenario.cleanup is not None:
            scenario.cleanup(run)
        _ensure_stack(stack)
    row.note = "; ".join(run.notes)
    if run.failures and not row.error:
        row.error = "; ".join(run.failures)
    return row


def _settle(run: Run, row: Row, written_at: float, timeout_s: float) -> None:
    expected = {seq for f in run.fleet.files for seq in f.written}
    client = OpenSearch(hosts=[run.stack.opensearch.address], timeout=60)
    try:
        deadline = written_at + timeout_s
        while True:
            found, dead = _account(run, client)
            if expected <= set(found) | dead:
                row.catch_up_s = time.monotonic() - written_at
                # A duplicate could still land after the last line did: look once more.
                time.sleep(3.0)
                found, dead = _account(run, client)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(3.0)
    finally:
        client.close()
    row.indexed = len(expected & set(found))
    row.duplicates = sum(n - 1 for n in found.values() if n > 1)
    row.dead_lettered = len(dead & expected)
    missing = sorted(expected - set(found) - dead)
    row.missing = len(missing)
    where = {seq: f.path.name for f in run.fleet.files for seq in f.written}
    row.missing_sample = [f"{seq}@{where[seq]}" for seq in missing[:10]]
    unexpected_dead = dead - run.expected_dead
    if unexpected_dead:
        row.error = f"{len(unexpected_dead)} lines dead-lettered unexpectedly"


def _account(run: Run, client: OpenSearch) -> tuple[Counter[int], set[int]]:
    # A node that was just restarted answers 503 until its shards are started: ask again.
    for _ in range(120):
        try:
            return _account_once(run, client)
        except (TransportError, OSConnectionError):
            time.sleep(0.5)
    return _account_once(run, client)


def _account_once(run: Run, client: OpenSearch) -> tuple[Counter[int], set[int]]:
    found: Counter[int] = Counter()
    client.indices.refresh(index=f"{run.prefix}-*", params={"ignore_unavailable": "true",
                                                            "allow_no_indices": "true"})
    hits = scan(client, index=f"{run.prefix}-*", size=5000,
                query={"query": {"match_all": {}},
                       "_source": ["message", "event.original"]},
                params={"ignore_unavailable": "true", "allow_no_indices": "true"})
    for hit in hits:
        src = hit.get("_source", {})
        text = src.get("event", {}).get("original") or src.get("message") or ""
        match = _TOKEN.search(str(text))
        if match:
            found[int(match.group(1))] += 1
    # An entry's record is one rejected line; only a record that failed wire decoding goes
    # whole, with every line of it.
    dead = {int(m.group(1)) for rec in read_all(run.stack.kafka.address, run.dlq)
            for m in _TOKEN.finditer(str(rec.get("record", "")))}
    return found, dead


def create_topic(brokers: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def _create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(_create())


def read_all(brokers: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` up to its current end, decoded as JSON (none if no topic).
    Read for the dead-letter topic, whose entries are not wire records: taken as they are."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def _read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                return []
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[dict[str, Any]] = []
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for msgs in batch.values():
                    out.extend(orjson.loads(m.value) for m in msgs)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(_read())


def _ensure_stack(stack: DevStack) -> None:
    """A scenario that stopped a service and failed midway must not break the next one."""
    for status in stack.status():
        if not status.ready:
            stack.start(status.name)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


def format_table(rows: list[Row]) -> str:
    head = ("scenario", "written", "indexed", "dup", "missing", "dead-lettered",
            "catch-up s", "result")
    body = [(r.scenario, f"{r.written:,}", f"{r.indexed:,}", str(r.duplicates),
             str(r.missing), f"{r.dead_lettered}/{r.expected_dead}",
             "-" if r.catch_up_s is None else f"{r.catch_up_s:.1f}",
             "ok" if r.ok else "FAIL") for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
             for cells in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        extra = [x for x in (r.note, r.error and f"error: {r.error}",
                             r.missing_sample and f"missing e.g. {', '.join(r.missing_sample)}")
                 if x]
        if extra:
            lines.append(f"  {r.scenario}: " + " | ".join(extra))
    return "\n".join(lines)


def pid_fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))

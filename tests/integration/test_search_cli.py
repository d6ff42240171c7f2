"""`logferry search` on a real OpenSearch: every filter, JSON output, the no-index message and
--follow. Documents are indexed directly in the layout the indexer writes (its own
``to_document`` and index template), under a prefix unique to the test."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearchpy import OpenSearch

from indexer.sinks.template import index_template
from indexer.stages.document import IndexNamer, to_document
from logferry.config import OpenSearchSettings
from logferry.devstack import DevStack
from logferry.wire import LogRecord, origin_id
from tests.integration.conftest import ROOT, write_config

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_doc(n: int, message: str, *, minutes_ago: float = 1.0, level: str | None = None,
             k8s: tuple[str, str, str] | None = None, host: str = "node-a",
             path: str | None = None, ingested: datetime | None = None) -> tuple[str, str,
                                                                                  dict[str, Any]]:
    """(index suffix, _id, document) for one line, shaped by the indexer's own code with its
    default index name; the suffix follows the prefix."""
    ts = _iso(NOW - timedelta(minutes=minutes_ago))
    if k8s:
        ns, pod, container = k8s
        path = path or f"/var/log/pods/{ns}_{pod}_uid-{n}/{container}/0.log"
        k8s_fields: dict[str, Any] | None = {"namespace": ns, "pod": pod, "pod_uid": f"uid-{n}",
                                             "container": container, "restart": 0}
    else:
        k8s_fields = None
    record = LogRecord(ts=ts, host=host, kind="container" if k8s else "file",
                       path=path or "/var/log/app.log", fid=f"fid-{n % 4}", off=n * 100,
                       line=message, k8s=k8s_fields)
    doc = to_document(record, _iso(ingested or datetime.now(UTC)))
    if level:
        doc["log"]["level"] = level
    index = IndexNamer(OpenSearchSettings().index_name, "PREFIX")(record)
    return index.removeprefix("PREFIX"), origin_id(record.fid, record.off), doc


def index_docs(client: OpenSearch, prefix: str,
               docs: list[tuple[str, str, dict[str, Any]]]) -> None:
    body: list[dict[str, Any]] = []
    for suffix, doc_id, doc in docs:
        body.append({"create": {"_index": prefix + suffix, "_id": doc_id}})
        body.append(doc)
    resp = client.bulk(body=body, params={"refresh": "true"})
    assert not resp["errors"], resp


def install_template(client: OpenSearch, prefix: str) -> None:
    client.indices.put_index_template(
        name=prefix, body=index_template(OpenSearchSettings(index_prefix=prefix)))


def drop(client: OpenSearch, prefix: str) -> None:
    client.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true",
                                                       "allow_no_indices": "true"})
    client.indices.delete_index_template(name=prefix, params={"ignore": "404"})


DATASET = [
    make_doc(1, "payment failed id=1", level="error", k8s=("shop", "checkout-1", "app")),
    make_doc(2, "payment ok id=2", level="info", k8s=("shop", "checkout-1", "app"),
             minutes_ago=2),
    make_doc(3, "slow upstream", level="warn", k8s=("shop", "web-2", "nginx"), minutes_ago=3),
    make_doc(4, "ledger error", level="error", k8s=("pay", "ledger-0", "app"), minutes_ago=4),
    make_doc(5, "disk almost full", host="node-a", path="/var/log/syslog", minutes_ago=5),
    make_doc(6, "out of memory", level="fatal", host="node-b", path="/var/log/app.log",
             minutes_ago=6),
    make_doc(7, "old news", level="info", k8s=("shop", "web-2", "nginx"), minutes_ago=180),
]


@pytest.fixture(scope="module")
def dataset(stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config file whose index prefix holds DATASET."""
    prefix = f"lf-{uuid.uuid4().hex[:10]}"
    client = OpenSearch(hosts=[stack.opensearch.address], timeout=30)
    install_template(client, prefix)
    index_docs(client, prefix, DATASET)
    config = write_config(tmp_path_factory.mktemp("search") / "config.json", {
        "opensearch": {"urls": [stack.opensearch.address], "index_prefix": prefix}})
    yield config
    drop(client, prefix)
    client.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logferry.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)


def messages(config: Path, *args: str) -> list[str]:
    proc = cli("search", "--config", str(config), "--output", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return [orjson.loads(line)["message"] for line in proc.stdout.splitlines()]


@pytest.mark.parametrize(("args", "expected"), [
    ((), ["payment failed id=1", "payment ok id=2", "slow upstream", "ledger error",
          "disk almost full", "out of memory", "old news"]),
    (("--namespace", "shop"), ["payment failed id=1", "payment ok id=2", "slow upstream",
                               "old news"]),
    (("--namespace", "shop", "--namespace", "pay"),
     ["payment failed id=1", "payment ok id=2", "slow upstream", "ledger error", "old news"]),
    (("--namespace", "sho"), []),  # exact, not a prefix
    (("--pod", "checkout-1"), ["payment failed id=1", "payment ok id=2"]),
    (("--container", "nginx"), ["slow upstream", "old news"]),
    (("--container", "app", "--namespace", "pay"), ["ledger error"]),
    (("--level", "error"), ["payment failed id=1", "ledger error"]),
    (("--level", "ERROR", "--level", "fatal"), ["payment failed id=1", "ledger error",
                                                "out of memory"]),
    (("--namespace", "shop", "--level", "error"), ["payment failed id=1"]),
    (("--host", "node-b"), ["out of memory"]),
    (("--path", "/var/log/syslog"), ["disk almost full"]),
    (("payment", "--level", "info"), ["payment ok id=2"]),
    (("--since", "1h", "--namespace", "shop"), ["payment failed id=1", "payment ok id=2",
                                                "slow upstream"]),
    (("--until", "1h"), ["old news"]),
    (("--limit", "2"), ["payment failed id=1", "payment ok id=2"]),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_filters(dataset: Path, args: tuple[str, ...], expected: list[str]) -> None:
    assert messages(dataset, *args) == expected  # newest first


def test_json_output_is_the_indexed_document(dataset: Path) -> None:
    proc = cli("search", "--config", str(dataset), "--output", "json", "--pod", "ledger-0")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert orjson.loads(line) == DATASET[3][2]
    alias = cli("search", "--config", str(dataset), "--json", "--pod", "ledger-0")
    assert alias.stdout == proc.stdout


def test_text_output(dataset: Path) -> None:
    proc = cli("search", "--config", str(dataset), "--since", "1h")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "\x1b[" not in proc.stdout  # not a terminal: no colour
    assert lines[0].endswith(" ERROR shop/checkout-1/app payment failed id=1")
    assert lines[4].endswith(" -     node-a /var/log/syslog disk almost full")
    assert lines[5].endswith(" FATAL node-b /var/log/app.log out of memory")
    none = cli("search", "--config", str(dataset), "no-such-word")
    assert none.returncode == 0 and none.stdout == "" and "no matching lines" in none.stderr


def test_no_index_yet(tmp_path: Path, opensearch_url: str, names: dict[str, str]) -> None:
    config = write_config(tmp_path / "config.json", {
        "opensearch": {"urls": [opensearch_url], "index_prefix": names["prefix"]}})
    for extra in ((), ("--follow",)):
        proc = cli("search", "--config", str(config), *extra)
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert proc.stderr.splitlines() == [
            f"logferry: error: no index matches {names['prefix']}-* at {opensearch_url}: "
            f"nothing was indexed yet (or opensearch.index_prefix {names['prefix']!r} is not "
            f"the one the indexer writes)"]


class Follower:
    """`logferry search --follow` as a subprocess, its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logferry.cli", "search", "--follow", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def take(self, count: int, timeout_s: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        out: list[str] = []
        while len(out) < count:
            try:
                out.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"got {out} of {count} lines in {timeout_s:.0f}s; "
                                     f"stderr: {self.stderr_now()}") from None
        self.seen.extend(out)
        return out

    def quiet_for(self, seconds: float) -> list[str]:
        time.sleep(seconds)
        out: list[str] = []
        while not self.lines.empty():
            out.append(self.lines.get())
        self.seen.extend(out)
        return out

    def stderr_now(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def test_follow_prints_new_matches_once(tmp_path: Path, opensearch_url: str,
                                        os_client: OpenSearch, names: dict[str, str]) -> None:
    prefix = names["prefix"]
    install_template(os_client, prefix)
    try:
        index_docs(os_client, prefix, [
            make_doc(1, "before 1", k8s=("shop", "a", "app"), minutes_ago=3),
            make_doc(2, "before 2", k8s=("shop", "a", "app"), minutes_ago=2),
            make_doc(3, "before 3", k8s=("shop", "a", "app"), minutes_ago=1),
            make_doc(4, "other namespace", k8s=("pay", "b", "app"), minutes_ago=1),
        ])
        config = write_config(tmp_path / "config.json", {
            "opensearch": {"urls": [opensearch_url], "index_prefix": prefix}})
        follower = Follower("--config", str(config), "--namespace", "shop", "--limit", "2",
                            "-o", "json")
        try:
            def msgs(lines: list[str]) -> list[str]:
                return [orjson.loads(line)["message"] for line in lines]

            # The backlog: the newest 2 matches, oldest first, as tail -f does.
            assert msgs(follower.take(2)) == ["before 2", "before 3"]
            assert follower.quiet_for(2.5) == []

            # Indexed after the start: a new line; a line written 2 h ago and only indexed
            # now (an agent catching up); one in another namespace.
            ingested = datetime.now(UTC)
            index_docs(os_client, prefix, [
                make_doc(10, "new line", k8s=("shop", "a", "app"), minutes_ago=0,
                         ingested=ingested),
                make_doc(11, "caught up", k8s=("shop", "c", "app"), minutes_ago=120,
                         ingested=ingested),
                make_doc(12, "not shop", k8s=("pay", "b", "app"), minutes_ago=0,
                         ingested=ingested),
            ])
            assert sorted(msgs(follower.take(2))) == ["caught up", "new line"]
            # A document whose bulk request took seconds: ingested (event.ingested) before
            # what was already printed, searchable only now. Within the overlap: printed.
            late_ingested = ingested - timedelta(seconds=3)
            index_docs(os_client, prefix, [
                make_doc(13, "slow bulk", k8s=("shop", "a", "app"), minutes_ago=0.5,
                         ingested=late_ingested)])
            assert msgs(follower.take(1)) == ["slow bulk"]
            # Polls go on over the same window: nothing is printed twice.
            assert follower.quiet_for(3.5) == []
        finally:
            code, stderr = follower.stop(signal.SIGTERM)
        assert code == 0, stderr
        assert "Traceback" not in stderr and stderr == "", stderr
        printed = msgs(follower.seen)
        assert len(printed) == len(set(printed)) == 5
        assert "not shop" not in printed and "other namespace" not in printed

        # Ctrl-C stops it the same way, with exit status 0.
        text = Follower("--config", str(config), "--pod", "a")
        try:
            backlog = text.take(5)
        finally:
            code, stderr = text.stop(signal.SIGINT)
        assert code == 0 and "Traceback" not in stderr, stderr
        assert backlog[0].endswith(" -     shop/a/app before 1"), backlog
        assert backlog[3].endswith(" slow bulk") and backlog[4].endswith(" new line"), backlog
    finally:
        drop(os_client, prefix)

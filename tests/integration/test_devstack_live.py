"""The dev stack itself, and one-line errors that need one real service up."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from logferry.devstack import DevStack
from tests.integration.conftest import ROOT, write_config

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_status_reports_ready(stack: DevStack) -> None:
    before = {s.name: s.pid for s in stack.status()}
    after = {s.name: s.pid for s in stack.up(echo=False)}
    assert before == after
    assert all(pid is not None for pid in after.values())
    proc = subprocess.run(
        [sys.executable, "-m", "logferry.cli", "dev", "status", "--state-dir",
         str(stack.state_dir), "--kafka-port", str(stack.kafka.port), "--opensearch-port",
         str(stack.opensearch.port)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(" ready ") == 2


def test_indexer_with_unreachable_broker_is_one_line(tmp_path: Path,
                                                     opensearch_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(tmp_path / "c.json", {
        "kafka": {"brokers": [f"127.0.0.1:{port}"], "request_timeout_s": 3},
        "opensearch": {"urls": [opensearch_url], "index_prefix": "lf-unreachable"},
    })
    proc = subprocess.run([sys.executable, "-m", "logferry.cli", "indexer", "run", "--config",
                           str(config)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("logferry: error:")
            ] == [next(line for line in proc.stderr.splitlines() if "cannot reach Kafka" in line)]

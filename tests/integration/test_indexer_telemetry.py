"""The indexer's /metrics and /health on real Kafka + OpenSearch: what an operator watches."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from tests.integration.conftest import count_docs, wait_for
from tests.integration.test_indexer import _config, _records, produce

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if it is absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == want:
            return float(match.group(2))
    return None


def test_metrics_count_every_record_and_lag_drains_to_zero(
        tmp_path: Path, brokers: str, opensearch_url: str, os_client: OpenSearch,
        names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    n = 3_000
    values = _records(n, names["topic"])
    # Written before the indexer starts, so that it starts behind: the lag must show, then go.
    produce(brokers, names["topic"], [*values, b"not a wire record"], partitions=3)
    port = _free_port()
    config = _config(tmp_path, brokers, opensearch_url, names, metrics_port=port,
                     bulk_max_docs=500)
    idx = run_service("indexer", "run", "--config", str(config), name="idx").wait_started()
    status, body = _get(port, "/health")
    assert status == 200, body

    def metrics() -> str:
        return _get(port, "/metrics")[1]

    wait_for(lambda: _sample(metrics(), "logferry_indexer_docs_indexed_total") == n, 120,
             f"{n} indexed in /metrics")
    wait_for(lambda: all(_sample(metrics(), "logferry_indexer_consumer_lag",
                                 topic=names["topic"], partition=str(p)) == 0
                         for p in range(3)), 60, "lag 0 on every partition")
    text = metrics()
    assert _sample(text, "logferry_indexer_records_consumed_total") == n + 1
    # The one record that is not a wire record is dead-lettered, and counted as such.
    assert sum(float(v) for v in re.findall(
        r"^logferry_indexer_dead_lettered_total(?:\{[^}]*\})? (\S+)$", text, re.M)) == 1
    assert (_sample(text, "logferry_indexer_commits_total") or 0) >= 1
    assert (_sample(text, "logferry_indexer_bulk_seconds_count") or 0) >= n / 500
    assert count_docs(os_client, names["prefix"]) == n
    assert idx.stop() == 0, idx.log()
    # Stopped: nothing answers any more (the health check of a dead pod must fail).
    assert _get(port, "/health")[0] == 0

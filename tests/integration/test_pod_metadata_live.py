"""Pod metadata on the real broker: labels reach the records and the exclude annotation keeps
a pod's logs out, with the API server played by a local HTTP server (no cluster here)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import read_topic, write_config
from tests.unit.agent.test_pod_metadata import FakeApiServer, pod

pytestmark = pytest.mark.integration

NODE = "node-a"
UID_WEB = "11111111-2222-3333-4444-555555555555"
UID_SECRET = "66666666-7777-8888-9999-000000000000"


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = FakeApiServer()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_labels_and_exclude_annotation(tmp_path: Path, brokers: str, names: dict[str, str],
                                       api_server: FakeApiServer, run_service) -> None:  # type: ignore[no-untyped-def]
    api_server.add(pod(UID_WEB, namespace="shop", name="web-1", node=NODE,
                       labels={"app.kubernetes.io/name": "web", "tier": "front"}),
                   notify=False)
    api_server.add(pod(UID_SECRET, namespace="shop", name="vault-0", node=NODE,
                       annotations={"logferry.io/exclude": "true"}), notify=False)
    root = tmp_path / "pods"
    for uid, name in ((UID_WEB, "web-1"), (UID_SECRET, "vault-0")):
        d = root / f"shop_{name}_{uid}" / "main"
        d.mkdir(parents=True)
        (d / "0.log").write_text("".join(
            f"2026-11-25T10:15:00.{n:09d}Z stdout F {name} line {n}\n" for n in range(50)))
    token = tmp_path / "token"
    token.write_text("t0ken")
    config = write_config(tmp_path / "agent.json", {
        "kafka": {"brokers": [brokers], "topic": names["topic"]},
        "agent": {"state_dir": str(tmp_path / "state"), "scan_interval_s": 0.2,
                  "containers": {"enabled": True, "root": str(root), "metadata": {
                      "enabled": True, "api_url": api_server.url, "token_file": str(token),
                      "ca_file": str(token), "node_name": NODE}}},
    })
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    records = read_topic(brokers, names["topic"], 50, timeout_s=60)
    assert agent.stop() == 0, agent.log()
    assert len(records) == 50
    assert all(r["line"].startswith("web-1 line") for r in records)
    assert records[0]["k8s"]["labels"] == {"app_kubernetes_io/name": "web", "tier": "front"}
    assert "pod excluded by annotation or labels" in agent.log()

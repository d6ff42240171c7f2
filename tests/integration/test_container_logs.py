"""Kubernetes container logs end to end: kubelet layout, CRI and docker json-file, partial
lines joined, stack traces joined, malformed lines kept, namespaces filtered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from tests.integration.conftest import all_docs, count_docs, wait_for, write_config

pytestmark = pytest.mark.integration

TS = "2026-11-25T10:15:00.{:09d}Z"


def cri(n: int, stream: str, tag: str, msg: str) -> str:
    return f"{TS.format(n)} {stream} {tag} {msg}\n"


def test_container_logs_are_parsed_joined_and_enriched(
        tmp_path: Path, brokers: str, opensearch_url: str, os_client: OpenSearch,
        names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "pods"
    web = root / "shop_web-7d9f-x2_11111111-2222-3333-4444-555555555555" / "nginx"
    api = root / "shop_api-5c_66666666-7777-8888-9999-000000000000" / "app"
    sys_ = root / "kube-system_coredns-1_aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" / "coredns"
    for d in (web, api, sys_):
        d.mkdir(parents=True)
    long_piece = "L" * 16384
    (web / "0.log").write_text(
        cri(1, "stdout", "F", "plain line one")
        + cri(2, "stdout", "P", long_piece)
        + cri(3, "stderr", "F", "an error between the pieces")
        + cri(4, "stdout", "P", long_piece)
        + cri(5, "stdout", "F", "END")
        + "this line is not CRI at all\n"
        + cri(6, "stdout", "F", "Exception in thread main java.lang.IllegalStateException: x")
        + cri(7, "stdout", "F", "\tat com.shop.Cart.add(Cart.java:42)")
        + cri(8, "stdout", "F", "\tat com.shop.Api.post(Api.java:7)")
        + cri(9, "stdout", "F", "next event")
        + cri(10, "stdout", "P", "dangling piece, the container died"))
    (api / "2.log").write_text(
        json.dumps({"log": "docker line one\n", "stream": "stdout",
                    "time": "2026-11-25T10:16:00.000000001Z"}) + "\n"
        + json.dumps({"log": "docker split ", "stream": "stderr",
                      "time": "2026-11-25T10:16:00.000000002Z"}) + "\n"
        + json.dumps({"log": "piece\n", "stream": "stderr",
                      "time": "2026-11-25T10:16:00.000000003Z"}) + "\n")
    (sys_ / "0.log").write_text(cri(1, "stdout", "F", "excluded namespace"))
    config = write_config(tmp_path / "config.json", {
        "kafka": {"brokers": [brokers], "topic": names["topic"]},
        "opensearch": {"urls": [opensearch_url], "index_prefix": names["prefix"],
                       "index_name": "{prefix}-{namespace}-{date}", "retention_days": 7},
        "agent": {"state_dir": str(tmp_path / "state"), "scan_interval_s": 0.2,
                  "containers": {"enabled": True, "root": str(root),
                                 "exclude_namespaces": ["kube-*"], "partial_timeout_s": 1.0,
                                 "multiline": {"mode": "indent", "timeout_s": 1.0}}},
        "indexer": {"group_id": names["group"], "flush_interval_s": 0.2},
    })
    run_service("agent", "run", "--config", str(config), name="agent")
    run_service("indexer", "run", "--config", str(config), name="indexer")
    wait_for(lambda: count_docs(os_client, names["prefix"]) >= 9, 90, "9 documents")
    docs = all_docs(os_client, names["prefix"])
    by_msg: dict[str, dict[str, Any]] = {d["message"][:40]: d for d in docs}
    assert len(docs) == 9, sorted(by_msg)
    one = by_msg["plain line one"]
    assert one["kubernetes"] == {
        "namespace": "shop",
        "pod": {"name": "web-7d9f-x2", "uid": "11111111-2222-3333-4444-555555555555"},
        "container": {"name": "nginx", "restart_count": 0}}
    assert one["log"]["stream"] == "stdout"
    assert one["@timestamp"].startswith("2026-11-25T10:15:00.000000001")
    joined = next(d for d in docs if d["message"].startswith("L"))
    assert joined["message"] == long_piece * 2 + "END"
    assert by_msg["an error between the pieces"]["log"]["stream"] == "stderr"
    assert "parse_error" in by_msg["this line is not CRI at all"]["logferry"]["flags"]
    trace = by_msg["Exception in thread main java.lang.Illeg"]
    assert trace["message"].count("\n") == 2 and trace["message"].endswith("Api.java:7)")
    assert by_msg["next event"]["message"] == "next event"
    assert "unterminated" in by_msg["dangling piece, the container died"]["logferry"]["flags"]
    assert by_msg["docker line one"]["kubernetes"]["container"]["restart_count"] == 2
    assert by_msg["docker split piece"]["log"]["stream"] == "stderr"
    assert not any("excluded namespace" in d["message"] for d in docs)
    # CRI lines go to the day of their own timestamp; the unparseable line carries the time
    # it was read, so its day is today's (which is not always the 25th).
    indices = set(os_client.indices.get(index=f"{names['prefix']}-*"))
    assert f"{names['prefix']}-shop-2026.11.25" in indices
    assert all(i.startswith(f"{names['prefix']}-shop-") for i in indices)
    assert len(indices) <= 2

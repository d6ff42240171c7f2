"""The walking skeleton on real services: files -> agent -> Kafka -> indexer -> OpenSearch."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from opensearchpy import OpenSearch

from tests.integration.conftest import (
    ROOT,
    all_docs,
    count_docs,
    read_topic,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

TOTAL = 10_000


def _line(file_no: int, n: int) -> str:
    # Distinct, mixed lengths, some non-ASCII so both framing paths run.
    pad = "x" * ((n * 37) % 300)
    accent = "é" if n % 50 == 0 else ""
    return f"file{file_no} line {n:05d} {accent}payload {pad}"


def _offsets(path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    off = 0
    for raw in path.read_bytes().split(b"\n")[:-1]:
        out[off] = raw.decode()
        off += len(raw) + 1
    return out


def test_ten_thousand_lines_indexed_exactly_once(tmp_path: Path, brokers: str,
                                                 opensearch_url: str, os_client: OpenSearch,
                                                 names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    files = [logs / f"app{i}.log" for i in range(3)]
    per_file = [3400, 3300, 3300]
    assert sum(per_file) == TOTAL
    # Half of each file exists before the agent starts; the rest is appended while it runs.
    for i, path in enumerate(files):
        with path.open("w") as fh:
            for n in range(per_file[i] // 2):
                fh.write(_line(i, n) + "\n")
    config = write_config(tmp_path / "config.json", {
        "kafka": {"brokers": [brokers], "topic": names["topic"]},
        "opensearch": {"urls": [opensearch_url], "index_prefix": names["prefix"]},
        "agent": {"include": [str(logs / "*.log")], "state_dir": str(tmp_path / "state"),
                  "scan_interval_s": 0.2},
        "indexer": {"group_id": names["group"], "dead_letter_topic": names["dlq"],
                    "flush_interval_s": 0.2},
    })
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    indexer = run_service("indexer", "run", "--config", str(config), name="indexer")
    wait_for(lambda: count_docs(os_client, names["prefix"]) > 0, 60, "first documents")
    for i, path in enumerate(files):
        with path.open("a") as fh:
            for n in range(per_file[i] // 2, per_file[i]):
                fh.write(_line(i, n) + "\n")
                if n % 500 == 0:
                    fh.flush()
    wait_for(lambda: count_docs(os_client, names["prefix"]) >= TOTAL, 120,
             f"{TOTAL} documents")
    assert agent.stop() == 0, agent.log()
    assert indexer.stop() == 0, indexer.log()

    docs = all_docs(os_client, names["prefix"])
    assert len(docs) == TOTAL
    seen = Counter((d["log"]["file"]["path"], d["log"]["offset"]) for d in docs)
    assert max(seen.values()) == 1
    by_origin = {(d["log"]["file"]["path"], d["log"]["offset"]): d["message"] for d in docs}
    expected = {(str(p), off): line for p in files for off, line in _offsets(p).items()}
    assert by_origin == expected


def _one_file_config(tmp_path: Path, path: Path, brokers: str, opensearch_url: str,
                     names: dict[str, str], opensearch: dict[str, object] | None = None,
                     indexer: dict[str, object] | None = None) -> Path:
    """Agent tailing ``path`` and indexer (flushing every 0.2 s) on this test's topic, index
    prefix and group; ``opensearch`` and ``indexer`` add to their sections."""
    return write_config(tmp_path / "config.json", {
        "kafka": {"brokers": [brokers], "topic": names["topic"]},
        "opensearch": {"urls": [opensearch_url], "index_prefix": names["prefix"],
                       **(opensearch or {})},
        "agent": {"include": [str(path)], "state_dir": str(tmp_path / "state")},
        "indexer": {"group_id": names["group"], "flush_interval_s": 0.2, **(indexer or {})},
    })


def test_restart_continues_from_checkpoint(tmp_path: Path, brokers: str, opensearch_url: str,
                                           os_client: OpenSearch, names: dict[str, str],
                                           run_service) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "a.log"
    path.write_text("".join(f"before {n}\n" for n in range(500)))
    config = _one_file_config(tmp_path, path, brokers, opensearch_url, names)
    indexer = run_service("indexer", "run", "--config", str(config), name="indexer")
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    wait_for(lambda: count_docs(os_client, names["prefix"]) == 500, 60, "500 documents")
    assert agent.stop() == 0, agent.log()
    with path.open("a") as fh:
        fh.write("".join(f"while stopped {n}\n" for n in range(300)))
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    wait_for(lambda: count_docs(os_client, names["prefix"]) >= 800, 60, "800 documents")
    assert agent.stop() == 0, agent.log()
    assert indexer.stop() == 0, indexer.log()
    docs = all_docs(os_client, names["prefix"])
    assert sorted(d["message"] for d in docs) == sorted(
        [f"before {n}" for n in range(500)] + [f"while stopped {n}" for n in range(300)])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logferry.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)


def test_search_cli_prints_newest_first(tmp_path: Path, brokers: str, opensearch_url: str,
                                        os_client: OpenSearch, names: dict[str, str],
                                        run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.log"
    path.write_text("".join(f"needle {n} haystack\n" for n in range(20)) + "other line\n")
    config = _one_file_config(tmp_path, path, brokers, opensearch_url, names)
    run_service("agent", "run", "--config", str(config), name="agent")
    run_service("indexer", "run", "--config", str(config), name="indexer")
    wait_for(lambda: count_docs(os_client, names["prefix"]) == 21, 60, "21 documents")
    out = _cli("search", "needle", "--config", str(config), "--limit", "5", "--since", "1h")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 5
    assert [line.split("needle ")[1].split()[0] for line in lines] == ["19", "18", "17", "16",
                                                                       "15"]
    out = _cli("search", "needle AND 3", "--config", str(config), "--json")
    assert out.returncode == 0, out.stderr
    assert '"message":"needle 3 haystack"' in out.stdout


def test_lines_are_parsed_and_normalized(tmp_path: Path, brokers: str, opensearch_url: str,
                                         os_client: OpenSearch, names: dict[str, str],
                                         run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    path.write_text(
        '{"time":"2026-11-25T09:00:00.5+01:00","level":"WARNING","msg":"disk almost full",'
        '"user":"ada","free_pct":3}\n'
        'ts=2026-11-25T08:01:02Z level=E msg="payment failed" order=42\n'
        '10.0.0.1 - - [25/Nov/2026:08:02:03 +0000] "GET /cart HTTP/1.1" 500 12 "-" "curl/8"\n'
        "plain text ERROR something broke\n"
        '{"broken json\n')
    config = _one_file_config(tmp_path, path, brokers, opensearch_url, names,
                              indexer={"processing": {"presets": ["nginx_access"]}})
    run_service("agent", "run", "--config", str(config), name="agent")
    run_service("indexer", "run", "--config", str(config), name="indexer")
    wait_for(lambda: count_docs(os_client, names["prefix"]) == 5, 60, "5 documents")
    docs = sorted(all_docs(os_client, names["prefix"]), key=lambda d: d["log"]["offset"])
    as_json, logfmt, access, plain, broken = docs
    assert as_json["message"] == "disk almost full"
    assert as_json["@timestamp"].startswith("2026-11-25T08:00:00.5")
    assert as_json["log"]["level"] == "warn"
    assert as_json["attributes"]["user"] == "ada"
    assert logfmt["message"] == "payment failed" and logfmt["log"]["level"] == "error"
    assert logfmt["attributes"]["order"] == "42"
    assert logfmt["@timestamp"].startswith("2026-11-25T08:01:02")
    assert access["@timestamp"].startswith("2026-11-25T08:02:03")
    assert str(access["attributes"]["status"]) == "500"
    assert plain["log"]["level"] == "error" and plain["message"].startswith("plain text")
    assert "parse_error" in broken["logferry"]["flags"]
    # flat_object attributes are searchable by dotted path.
    hits = os_client.search(index=f"{names['prefix']}-*",
                            body={"query": {"term": {"attributes.user": "ada"}}})
    assert hits["hits"]["total"]["value"] == 1


def test_typed_attribute_fields_query_as_numbers_and_dead_letter_a_shape_conflict(
        tmp_path: Path, brokers: str, opensearch_url: str, os_client: OpenSearch,
        names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    path.write_text(
        '{"msg":"slow","latency_ms":1500,"user":"ada","ok":true}\n'
        '{"msg":"fast","latency_ms":20,"user":"bob","ok":false}\n'
        '{"msg":"odd","latency_ms":"n/a","user":"cy","ok":"maybe"}\n'
        '{"msg":"nested","user":{"name":"dee"}}\n')
    config = _one_file_config(tmp_path, path, brokers, opensearch_url, names,
                              opensearch={"attributes_mapping": "fields"},
                              indexer={"dead_letter_topic": names["dlq"]})
    run_service("agent", "run", "--config", str(config), name="agent")
    run_service("indexer", "run", "--config", str(config), name="indexer")
    dead = read_topic(brokers, names["dlq"], 1, timeout_s=90)
    wait_for(lambda: count_docs(os_client, names["prefix"]) == 3, 60, "3 documents")
    # A number is a number: a range query finds the slow line only. "n/a" did not reject its
    # line: the value is kept in _source, only not indexed as a number.
    hits = os_client.search(index=f"{names['prefix']}-*", body={
        "query": {"range": {"attributes.latency_ms": {"gte": 1000}}}})["hits"]["hits"]
    assert [h["_source"]["message"] for h in hits] == ["slow"]
    odd = os_client.search(index=f"{names['prefix']}-*", body={
        "query": {"term": {"attributes.user": "cy"}}})["hits"]["hits"]
    assert [h["_source"]["attributes"]["latency_ms"] for h in odd] == ["n/a"]
    # "user" as an object after it was a keyword: that line, and only it, is dead-lettered.
    assert len(dead) == 1 and dead[0]["status"] == 400
    assert orjson.loads(dead[0]["record"])["line"] == '{"msg":"nested","user":{"name":"dee"}}'

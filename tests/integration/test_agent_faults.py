"""Agent correctness on the real broker: crashes, rotation, truncation, inode reuse.

Each test compares what Kafka holds, keyed by origin (file id, offset), with what was written:
every line must be there; a repeat is allowed only as the same origin (which the indexer drops).
"""

from __future__ import annotations

import gzip
import random
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import line_offsets, read_topic, wait_for, write_config

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, brokers: str, topic: str, include: list[str],
            **agent: Any) -> Path:
    return write_config(tmp_path / "agent.json", {
        "kafka": {"brokers": [brokers], "topic": topic},
        "agent": {"include": include, "state_dir": str(tmp_path / "state"),
                  "scan_interval_s": 0.2, "checkpoint_interval_s": 0.2,
                  "rotate_wait_s": 1.0, **agent},
    })


def _checkpoint_offsets(tmp_path: Path) -> dict[str, int]:
    path = tmp_path / "state" / "checkpoints.json"
    if not path.exists():
        return {}
    return {e["path"]: e["offset"] for e in orjson.loads(path.read_bytes())["files"]}


def _by_origin(records: list[dict[str, Any]]) -> tuple[dict[tuple[str, int], str], Counter[Any]]:
    origins: dict[tuple[str, int], str] = {}
    repeats: Counter[Any] = Counter()
    for rec in records:
        key = (rec["fid"], rec["off"])
        if key in origins:
            repeats[key] += 1
            assert origins[key] == rec["line"], "same origin must always carry the same line"
        origins[key] = rec["line"]
    return origins, repeats


def test_kill_9_loses_nothing(tmp_path: Path, brokers: str, names: dict[str, str],
                              run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    path.write_text("start\n")
    config = _config(tmp_path, brokers, names["topic"], [str(path)])
    total = 30_000
    stop_writing = threading.Event()

    def writer() -> None:
        with path.open("a") as fh:
            for n in range(total):
                fh.write(f"line {n:06d} {'z' * (n % 200)}\n")
                if n % 200 == 0:
                    fh.flush()
                    time.sleep(0.005)
                if stop_writing.is_set():
                    break

    thread = threading.Thread(target=writer)
    thread.start()
    rng = random.Random(4)
    try:
        for _ in range(5):
            agent = run_service("agent", "run", "--config", str(config), name="agent")
            time.sleep(rng.uniform(0.8, 2.5))
            agent.kill9()
    finally:
        thread.join()
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    size = path.stat().st_size
    wait_for(lambda: _checkpoint_offsets(tmp_path).get(str(path)) == size, 90,
             "the checkpoint to reach the end of the file")
    assert agent.stop() == 0, agent.log()
    records = read_topic(brokers, names["topic"], total + 1)
    origins, repeats = _by_origin(records)
    expected = line_offsets(path.read_bytes())
    assert len(expected) == total + 1
    assert {off: line for (_, off), line in origins.items()} == expected
    # Repeats are the unacknowledged window re-sent after each crash, nothing more.
    assert sum(repeats.values()) < total


def test_kubelet_rename_rotation_reads_old_file_to_its_end(
        tmp_path: Path, brokers: str, names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "pod" / "app"
    logs.mkdir(parents=True)
    live = logs / "0.log"
    # Like Vector's kubernetes_logs: rotated names stay matched until kubelet gzips them, so
    # a file rotated before a scan saw it under its live name is still found.
    config = _config(tmp_path, brokers, names["topic"], [str(logs / "*.log*")],
                     exclude=["*.gz"])
    # Started before any writing: a generation rotated and gzipped before the agent ran at
    # all cannot be read by anyone (that made this test flaky on a loaded machine).
    run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    written: list[str] = []
    fh = live.open("a")
    rotated: list[Path] = []
    for gen in range(4):
        for n in range(2000):
            line = f"gen {gen} line {n}"
            fh.write(line + "\n")
            written.append(line)
        fh.flush()
        rotated_path = logs / f"0.log.20261125-10150{gen}"
        live.rename(rotated_path)
        rotated.append(rotated_path)
        # The writer has not reopened yet: these land in the renamed file.
        for n in range(100):
            line = f"gen {gen} late {n}"
            fh.write(line + "\n")
            written.append(line)
        fh.close()
        fh = live.open("a")
        # kubelet compresses all but the newest rotated file
        if len(rotated) > 1:
            old = rotated[-2]
            time.sleep(1.5)
            with old.open("rb") as src, gzip.open(f"{old}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            old.unlink()
    for n in range(500):
        line = f"final line {n}"
        fh.write(line + "\n")
        written.append(line)
    fh.close()
    records = read_topic(brokers, names["topic"], len(written), timeout_s=90)
    origins, _ = _by_origin(records)
    assert Counter(origins.values()) == Counter(written)


def test_copytruncate_is_detected_and_reread(tmp_path: Path, brokers: str,
                                             names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    config = _config(tmp_path, brokers, names["topic"], [str(path)])
    path.write_text("".join(f"before {n}\n" for n in range(1000)))
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    size = path.stat().st_size
    wait_for(lambda: _checkpoint_offsets(tmp_path).get(str(path)) == size, 60, "first ack")
    shutil.copy(path, tmp_path / "app.log.1")
    with path.open("r+") as fh:
        fh.truncate(0)
    with path.open("a") as fh:
        fh.write("".join(f"after {n}\n" for n in range(500)))
    records = read_topic(brokers, names["topic"], 1500)
    origins, _ = _by_origin(records)
    assert sorted(origins.values()) == sorted(
        [f"before {n}" for n in range(1000)] + [f"after {n}" for n in range(500)])
    assert agent.stop() == 0, agent.log()
    assert "file truncated" in agent.log()


def test_delete_and_recreate_is_a_new_file(tmp_path: Path, brokers: str,
                                           names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    config = _config(tmp_path, brokers, names["topic"], [str(path)])
    path.write_text("".join(f"first life {n}\n" for n in range(300)))
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    size = path.stat().st_size
    wait_for(lambda: _checkpoint_offsets(tmp_path).get(str(path)) == size, 60, "first ack")
    assert agent.stop() == 0, agent.log()
    ino = path.stat().st_ino
    path.unlink()
    # Recreate with content of the same length: only identity, not size, can tell.
    path.write_text("".join(f"other life {n}\n" for n in range(300)))
    reused = path.stat().st_ino == ino
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    records = read_topic(brokers, names["topic"], 600)
    origins, _ = _by_origin(records)
    assert sorted(origins.values()) == sorted(
        [f"first life {n}" for n in range(300)] + [f"other life {n}" for n in range(300)]
    ), f"inode reused: {reused}"
    assert agent.stop() == 0, agent.log()


def test_agent_serves_metrics_and_health(tmp_path: Path, brokers: str, names: dict[str, str],
                                         run_service) -> None:  # type: ignore[no-untyped-def]
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "m.log"
    path.write_text("".join(f"m {n}\n" for n in range(100)))
    config = _config(tmp_path, brokers, names["topic"], [str(path)], metrics_port=port)
    run_service("agent", "run", "--config", str(config), name="agent")

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    wait_for(lambda: 'logferry_agent_lines_acked_total{kind="file"} 100.0' in metrics(), 60,
             "100 acked lines in /metrics")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
        assert resp.status == 200
    text = metrics()
    assert "logferry_agent_files_watched 1.0" in text
    assert "logferry_agent_paused 0.0" in text


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_kafka_down_pauses_reading_with_bounded_memory_and_loses_nothing(
        tmp_path: Path, brokers: str, stack: Any, names: dict[str, str],
        run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    path.write_text("".join(f"warmup {n}\n" for n in range(1000)))
    config = write_config(tmp_path / "agent.json", {
        "kafka": {"brokers": [brokers], "topic": names["topic"], "request_timeout_s": 5},
        "agent": {"include": [str(path)], "state_dir": str(tmp_path / "state"),
                  "scan_interval_s": 0.2, "checkpoint_interval_s": 0.2,
                  "max_inflight_bytes": 4 * 1024 * 1024},
    })
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    assert agent.proc is not None
    wait_for(lambda: _checkpoint_offsets(tmp_path).get(str(path)) == path.stat().st_size, 60,
             "warm-up acknowledged")
    baseline = _rss_kib(agent.proc.pid)
    stack.kill("kafka")
    try:
        payload = "y" * 180
        with path.open("a") as fh:  # ~60 MB while Kafka is down
            for n in range(300_000):
                fh.write(f"outage {n:06d} {payload}\n")
        peak = baseline
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            peak = max(peak, _rss_kib(agent.proc.pid))
            time.sleep(0.25)
        assert agent.proc.poll() is None, agent.log()
    finally:
        stack.start("kafka")
    # Held back, not buffered: growth stays far below the 60 MB written during the outage.
    assert peak - baseline < 40 * 1024, (baseline, peak)
    assert "reading paused" in agent.log() or "not accepting records" in agent.log()
    wait_for(lambda: _checkpoint_offsets(tmp_path).get(str(path)) == path.stat().st_size, 180,
             "everything acknowledged after Kafka is back")
    assert agent.stop() == 0, agent.log()
    records = read_topic(brokers, names["topic"], 301_000, timeout_s=120)
    origins, _ = _by_origin(records)
    assert {off: line for (_, off), line in origins.items()} == line_offsets(path.read_bytes())


def test_file_deleted_while_being_read_is_finished_then_released(
        tmp_path: Path, brokers: str, names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    path.write_text("".join(f"doomed {n:06d} {'d' * 150}\n" for n in range(100_000)))
    expected = line_offsets(path.read_bytes())
    # Small chunks and a small per-file budget: the agent is still reading when we delete.
    config = _config(tmp_path, brokers, names["topic"], [str(path)], read_chunk_bytes=65536,
                     max_inflight_bytes_per_file=65536, max_line_bytes=65536)
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    wait_for(lambda: 0 < _checkpoint_offsets(tmp_path).get(str(path), 0) < len(expected) * 150,
             60, "reading under way", interval_s=0.05)
    path.unlink()
    records = read_topic(brokers, names["topic"], len(expected), timeout_s=120)
    origins, _ = _by_origin(records)
    assert {off: line for (_, off), line in origins.items()} == expected
    wait_for(lambda: "released file" in agent.log(), 30, "the handle to be released")
    assert agent.stop() == 0, agent.log()


def test_truncated_and_rewritten_past_the_read_position(
        tmp_path: Path, brokers: str, names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.log"
    config = _config(tmp_path, brokers, names["topic"], [str(path)])
    path.write_text("".join(f"old {n}\n" for n in range(200)))
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    size = path.stat().st_size
    wait_for(lambda: _checkpoint_offsets(tmp_path).get(str(path)) == size, 60, "first ack")
    # Truncate and at once write more than was there: only the first line shows the change.
    with path.open("r+") as fh:
        fh.truncate(0)
        fh.write("".join(f"brand new content line {n}\n" for n in range(1000)))
    records = read_topic(brokers, names["topic"], 1200)
    origins, _ = _by_origin(records)
    assert sorted(origins.values()) == sorted(
        [f"old {n}" for n in range(200)] + [f"brand new content line {n}" for n in range(1000)])
    assert agent.stop() == 0, agent.log()

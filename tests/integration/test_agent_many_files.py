"""10 000 files at once with a bounded number of open handles (agent.max_open_files).

Every line must be in Kafka exactly once (unique file id + offset, and as many records as lines),
while the agent process never holds more than ``max_open_files`` descriptors of log files,
sampled from /proc/<pid>/fd for the whole run. Then files that were closed get new lines, some
renamed within the globs and some out of them (logrotate style), and those lines too must
arrive exactly once.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import read_topic, wait_for, write_config

pytestmark = pytest.mark.integration

FILES = 10_000
LINES = 3
MAX_OPEN = 256
# Descriptors that are not log files: stdio, epoll and its self-pipe, Kafka connections,
# watchdog's inotify, transient directory listings of the scan, and the like.
OTHER_FDS = 40


class FdSampler(threading.Thread):
    """Counts the agent's open descriptors, in total and of files below ``logs``."""

    def __init__(self, pid: int, logs: Path) -> None:
        super().__init__(daemon=True)
        self.fd_dir = f"/proc/{pid}/fd"
        self.prefix = str(logs) + os.sep  # a file below it, not the directory itself
        self.max_total = 0
        self.max_logs = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            try:
                fds = os.listdir(self.fd_dir)
            except OSError:
                return  # the agent exited
            logs = 0
            for fd in fds:
                try:
                    if os.readlink(f"{self.fd_dir}/{fd}").startswith(self.prefix):
                        logs += 1
                except OSError:
                    continue  # closed meanwhile
            self.max_total = max(self.max_total, len(fds))
            self.max_logs = max(self.max_logs, logs)
            self.samples += 1


def _checkpoint(tmp_path: Path) -> dict[str, int]:
    try:
        doc = orjson.loads((tmp_path / "state" / "checkpoints.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {e["path"]: e["offset"] for e in doc["files"]}


def test_ten_thousand_files_with_256_handles_every_line_once(
        tmp_path: Path, brokers: str, names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    expected: Counter[str] = Counter()
    sizes: dict[str, int] = {}
    for n in range(FILES):
        body = "".join(f"{n:05d} line {i}\n" for i in range(LINES))
        path = logs / f"app-{n:05d}.log"
        path.write_text(body)
        sizes[str(path)] = len(body)
        expected.update(body.splitlines())
    config = write_config(tmp_path / "agent.json", {
        "kafka": {"brokers": [brokers], "topic": names["topic"]},
        "agent": {"include": [str(logs / "*.log")], "state_dir": str(tmp_path / "state"),
                  "scan_interval_s": 1.0, "checkpoint_interval_s": 1.0, "rotate_wait_s": 1.0,
                  "max_open_files": MAX_OPEN, "close_idle_s": 0.2},
    })
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    assert agent.proc is not None
    sampler = FdSampler(agent.proc.pid, logs)
    sampler.start()
    try:
        wait_for(lambda: _checkpoint(tmp_path) == sizes, 180,
                 f"all {FILES} files acknowledged to their end", interval_s=1.0)
        # Closed files get more lines; some are renamed first (within the globs, and out of
        # them as logrotate does), which must not lose or repeat a line either.
        for n in range(0, FILES, 10):
            path = logs / f"app-{n:05d}.log"
            line = f"{n:05d} later"
            with path.open("a") as fh:
                fh.write(line + "\n")
            expected[line] += 1
            if n % 100 == 0:
                path.rename(logs / f"app-{n:05d}.log.1")
            elif n % 100 == 50:
                path.rename(logs / f"rotated-{n:05d}.log")
        total = sum(expected.values())
        records = read_topic(brokers, names["topic"], total, timeout_s=180)
    finally:
        sampler.done.set()
        sampler.join()
    assert agent.stop() == 0, agent.log()[-5000:]
    origins = [(r["fid"], r["off"]) for r in records]
    assert len(set(origins)) == len(origins), "a line was sent twice"
    assert len(records) == total
    assert Counter(r["line"] for r in records) == expected
    print(f"fd samples: {sampler.samples}, most log files open: {sampler.max_logs}, "
          f"most descriptors: {sampler.max_total}")
    assert sampler.samples > 0
    assert 0 < sampler.max_logs <= MAX_OPEN, sampler.max_logs
    assert sampler.max_total <= MAX_OPEN + OTHER_FDS, sampler.max_total
    log = agent.log()
    assert "max_open_files reached" in log
    assert "unread lines are lost" not in log

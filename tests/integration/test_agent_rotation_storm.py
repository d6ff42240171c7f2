"""Rotation storms on the real broker, through the real agent CLI: kubelet-style rename +
gzip several times a second, logrotate copytruncate under a writer, and a file name that is
not valid UTF-8.

Each test compares what Kafka holds, keyed by origin (file id, offset), with what was written:
every line must be there, and a repeat is allowed only as the same origin (the indexer drops
it). Writers and rotations share a lock, so nothing is lost on disk.
"""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import read_topic, wait_for, write_config

pytestmark = pytest.mark.integration

UID = "5d7c8e2a-9f1b-4c3d-8e7f-0a1b2c3d4e5f"


def _config(tmp_path: Path, brokers: str, topic: str, **agent: Any) -> Path:
    (tmp_path / "plain").mkdir(exist_ok=True)
    (tmp_path / "pods").mkdir(exist_ok=True)
    return write_config(tmp_path / "agent.json", {
        "kafka": {"brokers": [brokers], "topic": topic},
        "agent": {"include": [str(tmp_path / "plain" / "*.log")],
                  "state_dir": str(tmp_path / "state"), "scan_interval_s": 0.5,
                  "checkpoint_interval_s": 0.5, "rotate_wait_s": 1.0,
                  "containers": {"enabled": True, "root": str(tmp_path / "pods")}, **agent},
    })


def _origins(records: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    origins: dict[tuple[str, int], str] = {}
    for rec in records:
        key = (rec["fid"], rec["off"])
        assert origins.setdefault(key, rec["line"]) == rec["line"], "one origin, two lines"
    return origins


class Writers:
    """Appends numbered lines round robin to ``files`` until stopped."""

    def __init__(self, files: list[Path], frame: bytes, burst: int) -> None:
        self.files = files
        self.frame = frame
        self.burst = burst
        self.lock = threading.Lock()
        self.written: list[str] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join()

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for path in self.files:
                lines = [f"{path.parent.name} line {n + i:06d}" for i in range(self.burst)]
                n += self.burst
                with self.lock, path.open("ab") as fh:
                    fh.write(b"".join(self.frame % line.encode() for line in lines))
                    self.written.extend(lines)
            time.sleep(0.02)


def test_kubelet_rename_and_gzip_storm(tmp_path: Path, brokers: str, names: dict[str, str],
                                       run_service) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, brokers, names["topic"])
    lives = []
    for n in range(3):
        directory = tmp_path / "pods" / f"storm_pod-{n}_{UID}" / f"c{n}"
        directory.mkdir(parents=True)
        (directory / "0.log").touch()
        lives.append(directory / "0.log")
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    frame = b"2026-11-26T00:00:00.000000001Z stdout F %s\n"
    rotations = 0
    with Writers(lives, frame, burst=20) as writers:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.25)
            rotations += 1
            for live in lives:
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S.%f")
                with writers.lock:
                    live.rename(live.with_name(f"0.log.{stamp}"))
                    live.touch()
                rotated = sorted(p for p in live.parent.glob("0.log.*") if p.suffix != ".gz")
                # Compressed a second after its rotation: a file gzipped before any reader
                # opened it is lost on disk, which a loaded machine would make this test about.
                for old in rotated[:-4]:
                    with old.open("rb") as src, gzip.open(f"{old}.gz", "wb", 1) as dst:
                        shutil.copyfileobj(src, dst)
                    old.unlink()
                for gone in sorted(live.parent.glob("0.log.*.gz"))[:-3]:
                    gone.unlink()
    written = writers.written
    records = read_topic(brokers, names["topic"], len(written), timeout_s=120)
    origins = _origins(records)
    lost = Counter(written) - Counter(origins.values())
    assert not lost, f"{sum(lost.values())} of {len(written)} lines lost after {rotations} " \
                     f"rotations, e.g. {sorted(lost)[:5]}"
    assert Counter(origins.values()) == Counter(written)
    assert agent.stop() == 0, agent.log()
    log = agent.log()
    assert "Traceback" not in log
    # Every rotated file still on disk is known with its final offset; none is open.
    state = orjson.loads((tmp_path / "state" / "checkpoints.json").read_bytes())["files"]
    for entry in state:
        if ".log." in entry["path"]:
            assert entry["finish"] and entry["offset"] == os.stat(entry["path"]).st_size


def test_copytruncate_storm(tmp_path: Path, brokers: str, names: dict[str, str],
                            run_service) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, brokers, names["topic"])
    lives = [tmp_path / "plain" / f"app{n}.log" for n in range(2)]
    for live in lives:
        live.touch()
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    truncations = 0
    with Writers(lives, b"%s\n", burst=30) as writers:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.3)
            for live in lives:
                with writers.lock:
                    shutil.copyfile(live, live.with_name(live.name + ".1"))
                    with live.open("r+b") as fh:
                        fh.truncate(0)
                truncations += 1
    written = writers.written
    records = read_topic(brokers, names["topic"], len(written), timeout_s=120)
    origins = _origins(records)
    lost = Counter(written) - Counter(origins.values())
    assert not lost, f"{sum(lost.values())} of {len(written)} lines lost after " \
                     f"{truncations} copytruncates, e.g. {sorted(lost)[:5]}"
    assert Counter(origins.values()) == Counter(written)
    assert agent.stop() == 0, agent.log()
    assert "Traceback" not in agent.log()


def test_a_file_name_that_is_not_utf8(tmp_path: Path, brokers: str, names: dict[str, str],
                                      run_service) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, brokers, names["topic"])
    raw = os.fsencode(tmp_path / "plain") + b"/caf\xe9.log"
    with open(raw, "wb") as fh:
        fh.write(b"".join(b"line %d\n" % n for n in range(100)))
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    records = read_topic(brokers, names["topic"], 100)
    assert sorted(r["line"] for r in records) == sorted(f"line {n}" for n in range(100))
    shown = f"{tmp_path / 'plain'}/caf\ufffd.log"
    assert {r["path"] for r in records} == {shown}
    checkpoint = tmp_path / "state" / "checkpoints.json"
    wait_for(lambda: checkpoint.exists() and [e["path"] for e in orjson.loads(
        checkpoint.read_bytes())["files"]] == [shown], 30, "the checkpoint")
    assert agent.stop() == 0, agent.log()
    log = agent.log()
    assert "Traceback" not in log and "caf\ufffd.log" in log


def test_copytruncate_while_the_agent_is_down_after_kill_9(
        tmp_path: Path, brokers: str, names: dict[str, str], run_service) -> None:  # type: ignore[no-untyped-def]
    """The crash window: killed before it read (or checkpointed) the file's last lines, the
    agent finds the file rewritten at its restart and reads the rest from the copy, under the
    file's id and offsets (what it had sent already repeats under the same origins)."""
    config = _config(tmp_path, brokers, names["topic"])
    live = tmp_path / "plain" / "app.log"
    first = [f"first {n}" for n in range(2000)]
    live.write_text("".join(f"{line}\n" for line in first))
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    checkpoint = tmp_path / "state" / "checkpoints.json"
    wait_for(lambda: checkpoint.exists() and orjson.loads(checkpoint.read_bytes())["files"],
             60, "a first checkpoint")
    agent.kill9()
    late = [f"late {n}" for n in range(500)]
    with live.open("a") as fh:
        fh.write("".join(f"{line}\n" for line in late))
    shutil.copyfile(live, live.with_name("app.log-20261126"))
    with live.open("r+b") as fh:
        fh.truncate(0)
    after = [f"after {n}" for n in range(300)]
    with live.open("a") as fh:
        fh.write("".join(f"{line}\n" for line in after))
    agent = run_service("agent", "run", "--config", str(config), name="agent").wait_started()
    written = first + late + after
    records = read_topic(brokers, names["topic"], len(written), timeout_s=120)
    origins = _origins(records)
    assert Counter(origins.values()) == Counter(written)
    fids = {line: fid for (fid, _), line in origins.items()}
    assert fids["late 499"] == fids["first 0"] != fids["after 0"]
    assert agent.stop() == 0, agent.log()
    assert "read from its copy" in agent.log()

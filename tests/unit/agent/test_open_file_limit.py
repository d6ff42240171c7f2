"""The agent under ``max_open_files``, in process, with real files and a fake Kafka sink.

The sink acknowledges every batch at once and keeps the records, so the tests check what would
be in Kafka: every line exactly once (unique file id + offset), at most ``max_open_files`` log
files open at any moment (counted at every ``os.open``/``os.close`` of a file under the test's
directory), and closed files continued where they were, also after a rename.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.app import Agent
from logferry.config import Config
from logferry.wire import decode_lines


class _Batch(list[tuple[bytes, int]]):
    def size(self) -> int:
        return sum(len(value) for value, _ in self)


class FakeSink:
    topic = "fake"

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def flush(self) -> None:
        pass

    def partition_for(self, key: bytes) -> int:
        return 0

    def new_batch(self) -> _Batch:
        return _Batch()

    @staticmethod
    def fill(batch: _Batch, key: bytes, records: list[tuple[bytes, int]], start: int
             ) -> tuple[int, int, int]:
        batch.extend(records[start:])
        lines = sum(len(decode_lines(value)) for value, _ in records[start:])
        return len(records) - start, records[-1][1], lines

    async def send(self, batch: _Batch, partition: int) -> asyncio.Future[Any]:
        # One dict per line, as in a v1 record, whatever the records hold.
        self.records.extend(r.to_dict() for value, _ in batch for r in decode_lines(value))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def origins(self) -> list[tuple[str, int]]:
        return [(r["fid"], r["off"]) for r in self.records]

    def lines(self) -> list[str]:
        return [r["line"] for r in self.records]


class FdCounter:
    """Open descriptors of files below ``root``, and the most there ever were."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.fds: set[int] = set()
        self.peak = 0


@pytest.fixture
def fd_counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FdCounter]:
    counter = FdCounter(tmp_path / "logs")
    real_open, real_close = os.open, os.close

    def _open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if str(path).startswith(counter.root):
            counter.fds.add(fd)
            counter.peak = max(counter.peak, len(counter.fds))
        return fd

    def _close(fd: int) -> None:
        counter.fds.discard(fd)
        real_close(fd)

    monkeypatch.setattr(os, "open", _open)
    monkeypatch.setattr(os, "close", _close)
    yield counter


@asynccontextmanager
async def running(tmp_path: Path, **agent: Any) -> AsyncIterator[tuple[Agent, FakeSink]]:
    sink = FakeSink()
    config = Config.model_validate({"agent": {
        "include": [str(tmp_path / "logs" / "*.log")], "state_dir": str(tmp_path / "state"),
        "scan_interval_s": 0.05, "checkpoint_interval_s": 0.1, "rotate_wait_s": 0.2,
        **agent}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("agent.app.KafkaSink", lambda kafka, settings: sink)
        app = Agent(config)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        yield app, sink
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(predicate: Callable[[], bool], what: str) -> None:
    # A guard against hanging, not a performance bound.
    for _ in range(1200):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(app: Agent, name: str) -> float:
    return app.metrics.registry.get_sample_value(name) or 0.0


def _write(path: Path, lines: list[str]) -> None:
    with path.open("a") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


async def test_many_files_few_handles_every_line_once(tmp_path: Path,
                                                      fd_counter: FdCounter) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    expected: list[str] = []
    for n in range(300):
        lines = [f"file {n} line {i}" for i in range(3)]
        _write(logs / f"f{n:03d}.log", lines)
        expected += lines
    async with running(tmp_path, max_open_files=8, close_idle_s=0) as (app, sink):
        await until(lambda: len(sink.records) >= len(expected), "every line")
        await until(lambda: app.files.handles.waiting == 0, "the queue to drain")
        # Closed files continue where they were: new lines, some renamed meanwhile, one
        # renamed out of the globs (read to its end like a rotated file).
        more: list[str] = []
        for n in range(0, 300, 10):
            line = f"file {n} later"
            _write(logs / f"f{n:03d}.log", [line])
            more.append(line)
        (logs / "f010.log").rename(logs / "f010-rotated.log")
        (logs / "f020.log").rename(logs / "f020.log.1")
        await until(lambda: len(sink.records) >= len(expected) + len(more), "the new lines")
        await asyncio.sleep(0.5)  # a few more scans: nothing may be read twice
        assert _metric(app, "logferry_agent_files_closed_idle_total") > 0
    assert sorted(sink.lines()) == sorted(expected + more)
    assert len(set(sink.origins())) == len(sink.origins())
    assert fd_counter.peak <= 8
    assert not fd_counter.fds, "every handle is closed at shutdown"
    # All positions are in the checkpoint, open or not: a restart reads nothing again.
    async with running(tmp_path, max_open_files=8, close_idle_s=0) as (app, again):
        handles = app.files.handles
        # Restored positions are opened once each (to check the fingerprint); the last few
        # stay open, since nothing waits for their handles.
        await until(lambda: len(handles.closed) + len(app.tailers) == 299 and not handles.waiting
                    and all(e.sig is not None for e in handles.closed.values()),
                    "the restart to look at every file")
    assert again.records == []


async def test_waiting_file_deleted_is_counted_as_lost(tmp_path: Path,
                                                       fd_counter: FdCounter) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "a.log", ["a 1"])
    _write(logs / "b.log", ["b 1"])
    # close_idle_s is huge and nothing yields: b.log waits for as long as the test wants.
    async with running(tmp_path, max_open_files=1, close_idle_s=1000,
                       yield_after_s=1000) as (app, sink):
        await until(lambda: sink.lines() == ["a 1"] and app.files.handles.waiting == 1,
                    "a.log read, b.log waiting")
        (logs / "b.log").unlink()
        await until(lambda: app.files.handles.waiting == 0, "the scan to notice")
        assert _metric(app, "logferry_agent_files_vanished_unread_total") == 1
        assert fd_counter.peak == 1


async def test_busy_files_take_turns(tmp_path: Path, fd_counter: FdCounter) -> None:
    """With every handle held by a file that never goes idle, waiting files still get read."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in range(4):
        _write(logs / f"{n}.log", [f"{n} first"])
    written = [f"{n} first" for n in range(4)]
    stop_writing = asyncio.Event()

    async def keep_writing() -> None:
        i = 0
        while not stop_writing.is_set():
            for n in range(4):
                line = f"{n} more {i}"
                _write(logs / f"{n}.log", [line])
                written.append(line)
            i += 1
            await asyncio.sleep(0.01)

    async with running(tmp_path, max_open_files=2, close_idle_s=1000,
                       yield_after_s=0.2) as (_, sink):
        writer = asyncio.create_task(keep_writing())
        await until(lambda: {line.split()[0] for line in sink.lines()} == {"0", "1", "2", "3"},
                    "a line of every file")
        stop_writing.set()
        await writer
        await until(lambda: len(sink.records) >= len(written), "every line")
    assert sorted(sink.lines()) == sorted(written)
    assert len(set(sink.origins())) == len(sink.origins())
    assert fd_counter.peak <= 2


async def test_start_at_end_is_where_the_file_ended_when_found(tmp_path: Path,
                                                               fd_counter: FdCounter) -> None:
    """A file waiting for a handle on a first start with start_at = "end" starts where it
    ended when found, not where it ends when it finally gets a handle."""
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "a.log", ["a old"])
    _write(logs / "b.log", ["b old"])
    async with running(tmp_path, max_open_files=1, close_idle_s=1000, yield_after_s=1000,
                       start_at="end") as (app, sink):
        await until(lambda: app.files.handles.waiting == 1, "b.log to wait")
        _write(logs / "a.log", ["a new"])
        _write(logs / "b.log", ["b new"])
        await until(lambda: sink.lines() == ["a new"], "a.log's new line")
        app.files.handles.close_idle_s = 0  # now a.log may hand its handle to b.log
        await until(lambda: len(sink.records) >= 2, "b.log's new line")
        await asyncio.sleep(0.3)
        # Created after the first scan: read from its beginning.
        _write(logs / "c.log", ["c first"])
        await until(lambda: len(sink.records) >= 3, "c.log")
    assert sink.lines() == ["a new", "b new", "c first"]
    assert fd_counter.peak == 1


async def test_checkpoint_drops_files_that_are_gone(tmp_path: Path,
                                                    fd_counter: FdCounter) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("kept", "deleted", "rotated"):
        _write(logs / f"{name}.log", [f"{name} 1"])
    async with running(tmp_path) as (_, sink):
        await until(lambda: len(sink.records) == 3, "three lines")
    store = tmp_path / "state" / "checkpoints.json"
    assert len(orjson.loads(store.read_bytes())["files"]) == 3
    (logs / "deleted.log").unlink()
    # Renamed out of the globs while no agent ran, with one more line: found next to its old
    # name, read to its end from its checkpoint, then let go.
    _write(logs / "rotated.log", ["rotated 2"])
    (logs / "rotated.log").rename(logs / "rotated.log.1")
    async with running(tmp_path) as (app, again):
        await until(lambda: again.lines() == ["rotated 2"] and len(app.tailers) == 1,
                    "the rotated file read and released")
    paths = [e["path"] for e in orjson.loads(store.read_bytes())["files"]]
    assert paths == [str(logs / "kept.log")]

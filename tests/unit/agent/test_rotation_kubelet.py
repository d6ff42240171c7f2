"""Kubelet rename rotation (``0.log`` -> ``0.log.<stamp>``, older ones gzipped), in process with
real files and a fake Kafka sink.

What is checked is what Kafka would hold: every line exactly once (one origin per line, file id
+ offset), rotated files found even when they were created and rotated away between two scans,
read to their end and released, and never read a second time, by a later scan or a restart.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.app import Agent
from agent.checkpoint import CheckpointStore, FileCheckpoint
from agent.sources.kubernetes import PodLogRef, parse_pod_log_path
from logferry.config import Config
from tests.unit.agent.test_open_file_limit import FakeSink, until

UID = "5d7c8e2a-9f1b-4c3d-8e7f-0a1b2c3d4e5f"


class HoldingSink(FakeSink):
    """Acknowledges at once, or, while ``hold`` is set, only when :meth:`ack` is called."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.pending: list[asyncio.Future[Any]] = []

    async def send(self, batch: Any, partition: int) -> asyncio.Future[Any]:
        fut = await super().send(batch, partition)
        if not self.hold:
            return fut
        held: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append(held)
        return held

    def ack(self) -> None:
        self.hold = False
        for fut in self.pending:
            fut.set_result(None)
        self.pending.clear()


@asynccontextmanager
async def agent_running(tmp_path: Path, unchecked: dict[str, Any] | None = None,
                        **agent: Any) -> AsyncIterator[tuple[Agent, HoldingSink]]:
    """The agent with a :class:`HoldingSink`; ``unchecked``: settings past their validation
    bounds (a tiny in-flight budget that lets a test stop reading with one held batch)."""
    sink = HoldingSink()
    # Watched directories exist: a missing one is watched through its parent, the state dir
    # included, and every checkpoint write would then trigger a scan.
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "pods").mkdir(exist_ok=True)
    settings: dict[str, Any] = {
        "include": [str(tmp_path / "logs" / "*.log")], "state_dir": str(tmp_path / "state"),
        "scan_interval_s": 0.05, "checkpoint_interval_s": 0.1, "rotate_wait_s": 0.2,
        "containers": {"enabled": True, "root": str(tmp_path / "pods")}}
    settings.update(agent)
    config = Config.model_validate({"agent": settings})
    if unchecked:
        config = config.model_copy(update={"agent": config.agent.model_copy(update=unchecked)})
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


def container_dir(tmp_path: Path, pod: str = "web-0") -> Path:
    directory = tmp_path / "pods" / f"default_{pod}_{UID}" / "app"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def cri(lines: list[str]) -> bytes:
    return b"".join(b"2026-11-26T00:00:00.000000001Z stdout F %s\n" % line.encode()
                    for line in lines)


def append(path: Path, lines: list[str]) -> None:
    with path.open("ab") as fh:
        fh.write(cri(lines))


def checkpoint(tmp_path: Path) -> list[dict[str, Any]]:
    """The checkpoint file's entries ([] before its first write)."""
    path = tmp_path / "state" / "checkpoints.json"
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = orjson.loads(path.read_bytes())["files"]
    return entries


def once_each(sink: FakeSink) -> None:
    origins = sink.origins()
    assert len(set(origins)) == len(origins), "a line read twice"


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["20261126-101500", "20261126-101500.123456",
                                   "20261126-101500.5", "20261126-101500.123456789"])
def test_rotated_names_with_and_without_fractions(stamp: str) -> None:
    ref = parse_pod_log_path(f"/var/log/pods/default_web-0_{UID}/app/0.log.{stamp}")
    assert ref == PodLogRef("default", "web-0", UID, "app", 0, stamp)


@pytest.mark.parametrize("name", ["0.log.20261126-101500.123456.gz",
                                  "0.log.20261126-101500.123456.tmp",
                                  "0.log.20261126-101500.", "0.log.20261126-101500.1234567890",
                                  "0.log.20261126-101500.12ab"])
def test_compressed_and_odd_rotated_names_are_not_read(name: str) -> None:
    assert parse_pod_log_path(f"/var/log/pods/default_web-0_{UID}/app/{name}") is None


# -- rotated files ----------------------------------------------------------------------------


async def test_a_file_rotated_before_the_agent_opened_it_is_read_from_its_start(
        tmp_path: Path) -> None:
    logs = container_dir(tmp_path)
    async with agent_running(tmp_path) as (app, sink):
        # Created and rotated between two scans: only its rotated name is ever seen.
        rotated = logs / "0.log.20261126-101500.250000"
        rotated.write_bytes(cri(["r1", "r2"]))
        await until(lambda: sorted(sink.lines()) == ["r1", "r2"], "the rotated file")
        key = (rotated.stat().st_dev, rotated.stat().st_ino)
        await until(lambda: key not in app.tailers, "the rotated file released")
        entry = app.files.handles.closed[key]
        assert entry.finish and entry.sig is not None and entry.checkpoint is not None
        assert entry.checkpoint.offset == rotated.stat().st_size
        await asyncio.sleep(0.3)  # more scans find it again: nothing is read twice
        assert sorted(sink.lines()) == ["r1", "r2"]
        assert key not in app.tailers
        # A late write after all (the runtime had not reopened yet): read from where it was.
        append(rotated, ["r3"])
        await until(lambda: len(sink.records) == 3, "the late line")
        assert sink.lines()[-1] == "r3"
        await until(lambda: key not in app.tailers, "released again")
        on_disk = [e for e in checkpoint(tmp_path) if e["ino"] == key[1]]
        assert on_disk and on_disk[0]["finish"] and on_disk[0]["offset"] == rotated.stat().st_size
        # kubelet compresses it: the entry goes with the file.
        with rotated.open("rb") as src, gzip.open(f"{rotated}.gz", "wb") as dst:
            dst.write(src.read())
        rotated.unlink()
        await until(lambda: key not in app.files.handles.closed, "the entry pruned")
        await until(lambda: all(e["ino"] != key[1] for e in checkpoint(tmp_path)),
                    "the checkpoint entry pruned")
    once_each(sink)


async def test_the_live_file_rotated_is_finished_under_its_own_id(tmp_path: Path) -> None:
    logs = container_dir(tmp_path)
    live = logs / "0.log"
    live.write_bytes(cri(["a1"]))
    async with agent_running(tmp_path) as (app, sink):
        await until(lambda: sink.lines() == ["a1"], "the live file")
        rotated = logs / "0.log.20261126-101500"
        live.rename(rotated)
        append(rotated, ["a2"])  # written before the runtime reopened
        live.write_bytes(cri(["b1"]))
        await until(lambda: sorted(sink.lines()) == ["a1", "a2", "b1"], "all three lines")
        key = (rotated.stat().st_dev, rotated.stat().st_ino)
        await until(lambda: key not in app.tailers, "the rotated file released")
        assert app.files.handles.closed[key].finish
    by_line = {r["line"]: r for r in sink.records}
    assert by_line["a1"]["fid"] == by_line["a2"]["fid"] != by_line["b1"]["fid"]
    assert by_line["a2"]["path"] == str(rotated)
    once_each(sink)


async def test_a_restart_does_not_read_released_rotated_files_again(tmp_path: Path) -> None:
    logs = container_dir(tmp_path)
    rotated = logs / "0.log.20261126-101500"
    async with agent_running(tmp_path) as (app, sink):
        rotated.write_bytes(cri(["old 1", "old 2"]))
        key = (rotated.stat().st_dev, rotated.stat().st_ino)
        await until(lambda: len(sink.records) == 2 and key not in app.tailers,
                    "read and released")
    assert [e["finish"] for e in checkpoint(tmp_path) if e["ino"] == key[1]] == [True]
    async with agent_running(tmp_path) as (app, again):
        # Opened once to check it is the same file, resumed at its end, released again.
        await until(lambda: key in app.files.handles.closed
                    and app.files.handles.closed[key].sig is not None, "looked at")
        (logs / "0.log").write_bytes(cri(["new"]))
        await until(lambda: again.lines() == ["new"], "the new live file")
    assert again.lines() == ["new"]


async def test_rotated_files_there_at_a_first_start_at_end_are_not_read(tmp_path: Path) -> None:
    logs = container_dir(tmp_path)
    (logs / "0.log.20261126-101500").write_bytes(cri(["before"]))
    async with agent_running(tmp_path, start_at="end") as (_, sink):
        await asyncio.sleep(0.2)
        rotated = logs / "0.log.20261126-101501"
        rotated.write_bytes(cri(["after"]))  # appeared after the first scan
        await until(lambda: sink.lines() == ["after"], "the new rotated file")
        await asyncio.sleep(0.2)
    assert sink.lines() == ["after"]


async def test_rename_storm_every_line_once(tmp_path: Path) -> None:
    """Rotation as fast as the test can go, with files created and rotated between scans,
    the previous rotated file gzipped and old ones deleted: every line exactly once."""
    pods = [container_dir(tmp_path, f"web-{n}") for n in range(3)]
    written: list[str] = []
    async with agent_running(tmp_path, scan_interval_s=0.2) as (app, sink):
        for rotation in range(40):
            for n, logs in enumerate(pods):
                live = logs / "0.log"
                lines = [f"pod {n} rotation {rotation} line {i}" for i in range(5)]
                append(live, lines)
                written += lines
                live.rename(logs / f"0.log.20261126-101500.{rotation:06d}")
                live.touch()
                rotated = sorted(p for p in logs.glob("0.log.*") if p.suffix != ".gz")
                for old in rotated[:-1]:
                    # Gzipped before anything opened it, a file is lost on disk for any
                    # reader: not what this test is about.
                    await until(lambda old=old: _held(app, old), "the agent to open it")
                    with old.open("rb") as src, gzip.open(f"{old}.gz", "wb") as dst:
                        dst.write(src.read())
                    old.unlink()
                for gone in sorted(logs.glob("0.log.*.gz"))[:-3]:
                    gone.unlink()
            await asyncio.sleep(0.01 if rotation % 3 else 0.06)
        for n, logs in enumerate(pods):
            lines = [f"pod {n} last {i}" for i in range(3)]
            append(logs / "0.log", lines)
            written += lines
        await until(lambda: len(sink.records) >= len(written), "every line")
        await asyncio.sleep(0.3)
    lost = Counter(written) - Counter(sink.lines())
    assert not lost, f"{sum(lost.values())} lines lost, e.g. {sorted(lost)[:5]}"
    once_each(sink)
    assert sorted(sink.lines()) == sorted(written)


def _held(app: Agent, path: Path) -> bool:
    """Whether the agent has ``path`` open, or read it to its end already."""
    st = path.stat()
    key = (st.st_dev, st.st_ino)
    entry = app.files.handles.closed.get(key)
    return key in app.tailers or (entry is not None and entry.finish and entry.sig is not None)


def test_a_checkpoint_from_an_older_agent_loads(tmp_path: Path) -> None:
    """Checkpoints written before ``finish`` existed still load."""
    store = CheckpointStore(tmp_path / "state")
    store.save([FileCheckpoint("1:2:ab", 1, 2, "ab", 5, "/var/log/a.log", 10)])
    doc = orjson.loads(store.path.read_bytes())
    files = [{k: v for k, v in e.items() if k != "finish"} for e in doc["files"]]
    doc["files"] = files
    doc["crc32"] = zlib.crc32(orjson.dumps(files))
    store.path.write_bytes(orjson.dumps(doc))
    assert store.load() == [FileCheckpoint("1:2:ab", 1, 2, "ab", 5, "/var/log/a.log", 10)]


async def test_a_file_found_empty_is_opened_on_its_first_write(tmp_path: Path) -> None:
    """Found before its first line was complete, a file is opened when it is written to,
    not at the next scan (which, under a fast rotation, finds it renamed already)."""
    logs = container_dir(tmp_path)
    live = logs / "0.log"
    async with agent_running(tmp_path, scan_interval_s=3600) as (app, sink):
        await asyncio.sleep(0.2)  # the first scan is done: from now on, only events
        live.touch()  # created: a scan finds it empty
        await until(lambda: app.files.wants(str(live)), "the empty file seen")
        append(live, ["first"])
        await until(lambda: sink.lines() == ["first"], "the first line")
        assert not app.files.wants(str(live))


def test_watch_roots_inside_others_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "pods").mkdir()
    (tmp_path / "plain").mkdir()
    config = Config.model_validate({"agent": {
        "include": [str(tmp_path / "*.log"), str(tmp_path / "plain" / "*.log"), "/*.log"],
        "containers": {"enabled": True, "root": str(tmp_path / "pods")}}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("agent.app.KafkaSink", lambda kafka, settings: HoldingSink())
        app = Agent(config)
    assert app.files.watch_roots() == ["/"]
    config = Config.model_validate({"agent": {
        "include": [str(tmp_path / "plain" / "*.log")],
        "containers": {"enabled": True, "root": str(tmp_path / "pods")}}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("agent.app.KafkaSink", lambda kafka, settings: HoldingSink())
        app = Agent(config)
    assert app.files.watch_roots() == [str(tmp_path / "plain"), str(tmp_path / "pods")]

"""logrotate's copytruncate, in process with real files and a fake Kafka sink whose
acknowledgements the test holds back: while a file has unacknowledged batches up to its
in-flight budget the agent reads no further, so the test decides which lines are still unread
when the file is copied and truncated.

Those lines exist only in the copy. They must be read from it under the file's id and offsets
(the same origins as if the file had never been truncated), also when the agent was stopped in
between, and the copy is released afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson

from agent.sources.copies import find_copy
from agent.sources.identity import identify
from tests.unit.agent.test_open_file_limit import until
from tests.unit.agent.test_rotation_kubelet import HoldingSink, agent_running, checkpoint


def _write(path: Path, lines: list[str]) -> None:
    with path.open("a") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


def _copytruncate(path: Path, copy: Path) -> None:
    shutil.copyfile(path, copy)
    with path.open("r+b") as fh:
        fh.truncate(0)


def _offsets(data: bytes) -> dict[int, str]:
    out, off = {}, 0
    for raw in data.split(b"\n")[:-1]:
        out[off] = raw.decode()
        off += len(raw) + 1
    return out


def _by_fid(sink: HoldingSink) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for rec in sink.records:
        lines = out.setdefault(rec["fid"], {})
        assert rec["off"] not in lines, "a line read twice"
        lines[rec["off"]] = rec["line"]
    return out


def _config(tmp_path: Path) -> dict[str, Any]:
    # One small batch fills the file's in-flight budget: holding acks stops reading.
    return {"include": [str(tmp_path / "logs" / "*.log")], "containers": {"enabled": False},
            "unchecked": {"max_inflight_bytes_per_file": 1}}


# -- finding the copy -------------------------------------------------------------------------


def _fp(path: Path) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        ident = identify(fd)
    finally:
        os.close(fd)
    assert ident is not None
    return ident.fp, ident.fp_len


def test_find_copy_by_name_fingerprint_and_size(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    live.write_text("first\nsecond\nthird\n")
    fp, fp_len = _fp(live)
    (tmp_path / "app.log.2").write_text("older first\n" + "x\n" * 50)  # other first line
    (tmp_path / "app.log.1.gz").write_text("first\nsecond\nthird\n")  # compressed
    (tmp_path / "other.log.1").write_text("first\nsecond\nthird\n")  # another file's name
    (tmp_path / "app.log.short").write_text("first\n")  # shorter than what was read
    assert find_copy(str(live), fp, fp_len, 13) is None
    shutil.copyfile(live, tmp_path / "app.log-20261126")
    copy = find_copy(str(live), fp, fp_len, 13)
    assert copy is not None and copy.path == str(tmp_path / "app.log-20261126")
    os.close(copy.fd)
    # With two candidates (a first line that never changes), the newest is the copy.
    shutil.copyfile(live, tmp_path / "app.log.0")
    os.utime(tmp_path / "app.log-20261126", ns=(1, 1))
    copy = find_copy(str(live), fp, fp_len, 13)
    assert copy is not None and copy.path == str(tmp_path / "app.log.0")
    os.close(copy.fd)
    live_st = live.stat()
    assert find_copy(str(live), fp, fp_len, 13, (live_st.st_dev, live_st.st_ino)) is not None
    # A file the agent reads in its own right is no copy, whatever its first line.
    known = {(tmp_path / "app.log.0").stat().st_ino}
    copy = find_copy(str(live), fp, fp_len, 13, skip=lambda key: key[1] in known)
    assert copy is not None and copy.path == str(tmp_path / "app.log-20261126")
    os.close(copy.fd)


def test_find_copy_in_a_missing_directory(tmp_path: Path) -> None:
    assert find_copy(str(tmp_path / "gone" / "app.log"), "fp", 3, 0) is None


# -- while running ----------------------------------------------------------------------------


async def test_lines_unread_at_the_truncation_are_read_from_the_copy(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    _write(live, ["g1 line 0", "g1 line 1"])
    async with agent_running(tmp_path, **_config(tmp_path)) as (app, sink):
        await until(lambda: len(sink.records) == 2, "the first lines")
        fid = sink.records[0]["fid"]
        sink.hold = True
        _write(live, ["g1 line 2"])
        await until(lambda: len(sink.pending) == 1, "a batch held")
        # Not read: the batch before is not acknowledged and the budget is one byte.
        _write(live, [f"g1 late {i}" for i in range(5)])
        await asyncio.sleep(0.2)
        first_generation = live.read_bytes()
        _copytruncate(live, logs / "app.log.1")
        _write(live, ["g2 line 0"])
        await until(lambda: app.metrics.registry.get_sample_value(
            "logferry_agent_truncations_total") == 1, "the truncation noticed")
        sink.ack()
        await until(lambda: len(sink.records) == 9, "every line")
        copy_st = (logs / "app.log.1").stat()
        copy_key = (copy_st.st_dev, copy_st.st_ino)
        await until(lambda: copy_key not in app.tailers, "the copy released")
        await asyncio.sleep(0.2)
    by_fid = _by_fid(sink)
    # The whole first generation under its own id and offsets, as if never truncated.
    assert by_fid[fid] == _offsets(first_generation)
    (new_fid,) = set(by_fid) - {fid}
    assert by_fid[new_fid] == {0: "g2 line 0"}
    late = [r for r in sink.records if r["line"].startswith("g1 late")]
    assert {r["path"] for r in late} == {str(logs / "app.log.1")}
    # The copy is not a file of the globs: let go of, and not kept in the checkpoint.
    assert {e["path"] for e in checkpoint(tmp_path)} == {str(live)}


async def test_no_copy_behaves_as_before(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    _write(live, ["g1 line 0"])
    async with agent_running(tmp_path, **_config(tmp_path)) as (app, sink):
        await until(lambda: len(sink.records) == 1, "the first line")
        sink.hold = True
        _write(live, ["g1 line 1"])
        await until(lambda: len(sink.pending) == 1, "a batch held")
        _write(live, ["g1 lost"])
        await asyncio.sleep(0.2)
        with live.open("r+b") as fh:
            fh.truncate(0)  # no copy: plain truncation
        _write(live, ["g2 line 0"])
        await until(lambda: app.metrics.registry.get_sample_value(
            "logferry_agent_truncations_total") == 1, "the truncation noticed")
        sink.ack()
        await until(lambda: "g2 line 0" in sink.lines(), "the new generation")
        await asyncio.sleep(0.2)
    assert sorted(sink.lines()) == ["g1 line 0", "g1 line 1", "g2 line 0"]


async def test_repeated_copytruncate_onto_the_same_copy(tmp_path: Path) -> None:
    """logrotate overwrites app.log.1 in place (same inode) at every rotation."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    written: list[str] = []
    async with agent_running(tmp_path, **_config(tmp_path)) as (app, sink):
        for gen in range(6):
            lines = [f"gen {gen} line {i}" for i in range(4)]
            written += lines
            total = len(written)
            _write(live, lines[:1])
            await until(lambda n=total - 3: len(sink.records) == n, "what came before")
            sink.hold = True
            _write(live, lines[1:2])
            await until(lambda: len(sink.pending) == 1, "a batch held")
            _write(live, lines[2:])  # not read before the truncation
            await asyncio.sleep(0.05)
            _copytruncate(live, logs / "app.log.1")
            await until(lambda gen=gen: app.metrics.registry.get_sample_value(
                "logferry_agent_truncations_total") == gen + 1, "the truncation noticed")
            sink.ack()
            await until(lambda n=total: len(sink.records) == n, "every line so far")
    assert sorted(sink.lines()) == sorted(written)
    by_fid = _by_fid(sink)
    assert len(by_fid) == 6  # one id per generation, its copy's lines included


# -- across a restart -------------------------------------------------------------------------


async def test_truncated_while_stopped_the_copy_holds_the_rest(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    _write(live, ["g1 line 0", "g1 line 1"])
    async with agent_running(tmp_path, **_config(tmp_path)) as (_, sink):
        await until(lambda: len(sink.records) == 2, "the first lines")
        await until(lambda: [e["offset"] for e in checkpoint(tmp_path)]
                    == [live.stat().st_size], "the checkpoint")
    fid = sink.records[0]["fid"]
    _write(live, ["g1 line 2", "g1 line 3"])
    first_generation = live.read_bytes()
    _copytruncate(live, logs / "app.log-20261126")
    _write(live, ["g2 line 0"])
    async with agent_running(tmp_path, **_config(tmp_path)) as (app, again):
        await until(lambda: len(again.records) == 3, "the rest and the new line")
        await until(lambda: len(app.tailers) == 1, "the copy released")
        await asyncio.sleep(0.2)
    by_fid = _by_fid(again)
    assert by_fid[fid] == {off: line for off, line in _offsets(first_generation).items()
                           if line in ("g1 line 2", "g1 line 3")}
    assert sorted(again.lines()) == ["g1 line 2", "g1 line 3", "g2 line 0"]


async def test_stopped_while_reading_the_copy(tmp_path: Path) -> None:
    """The copy is in the checkpoint (under the file's id) while it is read: stopped before
    its lines were acknowledged, the next start reads them from it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    _write(live, ["g1 line 0"])
    copy = logs / "app.log.1"
    async with agent_running(tmp_path, **_config(tmp_path)) as (app, sink):
        await until(lambda: len(sink.records) == 1, "the first line")
        fid = sink.records[0]["fid"]
        sink.hold = True
        _write(live, ["g1 line 1"])
        await until(lambda: len(sink.pending) == 1, "a batch held")
        _write(live, ["g1 line 2"])
        await asyncio.sleep(0.2)
        _copytruncate(live, copy)
        _write(live, ["g2 line 0"])
        await until(lambda: any(e["path"] == str(copy) for e in checkpoint(tmp_path)),
                    "the copy in the checkpoint")
        # Stopped with nothing acknowledged since: the held batch is never acknowledged.
    entry = next(e for e in checkpoint(tmp_path) if e["path"] == str(copy))
    assert (entry["fid"], entry["offset"], entry["finish"]) == (fid, len("g1 line 0\n"), True)
    assert (entry["dev"], entry["ino"]) == (copy.stat().st_dev, copy.stat().st_ino)
    async with agent_running(tmp_path, **_config(tmp_path)) as (app, again):
        await until(lambda: {"g1 line 1", "g1 line 2"} <= set(again.lines()), "the copy's rest")
        await until(lambda: "g2 line 0" in again.lines(), "the new generation")
        await until(lambda: len(app.tailers) == 1, "the copy released")
    recs = {r["line"]: r for r in again.records}
    assert recs["g1 line 1"]["fid"] == recs["g1 line 2"]["fid"] == fid
    assert (recs["g1 line 1"]["off"], recs["g1 line 2"]["off"]) == (10, 20)
    assert orjson.dumps(sorted(again.lines()))  # every line once in this run
    _by_fid(again)


async def test_globs_that_match_the_copy_too(tmp_path: Path) -> None:
    """With ``*.log*`` the copy is a file of the globs: it is read once, as the copy (from
    where the file was), and then known at its end, not read again from 0 as a new file."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    written = ["g1 line 0"]
    _write(live, written)
    config = {**_config(tmp_path), "include": [str(logs / "*.log*")]}
    async with agent_running(tmp_path, **config) as (_, sink):
        await until(lambda: len(sink.records) == 1, "the first line")
        for gen in range(1, 4):
            sink.hold = True
            lines = [f"g{gen} line {i}" for i in range(1, 4)]
            _write(live, lines[:1])
            await until(lambda: len(sink.pending) == 1, "a batch held")
            _write(live, lines[1:])
            await asyncio.sleep(0.1)
            _copytruncate(live, logs / "app.log.1")
            nxt = f"g{gen + 1} line 0"
            _write(live, [nxt])
            written += [*lines, nxt]
            total = len(written)
            sink.ack()
            await until(lambda n=total: len(sink.records) >= n, "every line so far")
        await asyncio.sleep(0.3)  # more scans: the copy is not read again
    assert sorted(sink.lines()) == sorted(written)
    _by_fid(sink)

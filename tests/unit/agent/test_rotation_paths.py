"""File names that are not valid UTF-8.

``glob`` returns ``b"caf\\xe9.log"`` as ``"caf\\udce9.log"`` (surrogate escape): right for
opening the file, but orjson refuses it, so a record or a checkpoint holding it would raise and
stop the agent. Records, checkpoint and logs get U+FFFD in place of the bad bytes; the file is
still opened, followed and resumed by its raw name.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agent.checkpoint import CheckpointStore, FileCheckpoint
from agent.paths import display_path
from logferry.wire import batch_head, decode, encode_batch
from tests.unit.agent.test_open_file_limit import until
from tests.unit.agent.test_rotation_kubelet import agent_running, checkpoint

RAW = "/var/log/caf\udce9.log"  # what glob returns for b"/var/log/caf\xe9.log"


@pytest.mark.parametrize(("path", "shown"), [
    ("/var/log/app.log", "/var/log/app.log"),
    ("/var/log/café.log", "/var/log/café.log"),
    (RAW, "/var/log/caf\ufffd.log"),
    ("/a/\udcff\udcfe", "/a/\ufffd\ufffd"),
    ("/a/\ud800.log", "/a/?.log"),  # a surrogate no file name's bytes could give
])
def test_display_path(path: str, shown: str) -> None:
    assert display_path(path) == shown
    assert display_path(path).encode()


def test_a_display_path_can_be_put_on_the_wire() -> None:
    head = batch_head("h", "file", display_path(RAW), "f")
    assert decode(encode_batch(head, "t", [0], ["x"])).path == "/var/log/caf\ufffd.log"


def test_checkpoint_with_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    good = FileCheckpoint("1:2:ab", 1, 2, "ab", 5, "/var/log/a.log", 10)
    store.save([good, FileCheckpoint("1:3:cd", 1, 3, "cd", 5, RAW, 20, True)])
    assert store.load() == [good, FileCheckpoint("1:3:cd", 1, 3, "cd", 5,
                                                 "/var/log/caf\ufffd.log", 20, True)]


def _append(name: bytes, data: bytes) -> None:
    with open(name, "ab") as fh:
        fh.write(data)


async def test_tailing_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    raw_name = os.fsencode(logs) + b"/caf\xe9.log"
    _append(raw_name, b"one\ntwo\n")
    shown = f"{logs}/caf\ufffd.log"
    async with agent_running(tmp_path) as (_, sink):
        await until(lambda: sink.lines() == ["one", "two"], "both lines")
        await until(lambda: [e["offset"] for e in checkpoint(tmp_path)] == [8],
                    "the checkpoint written")
    assert {r["path"] for r in sink.records} == {shown}
    assert [e["path"] for e in checkpoint(tmp_path)] == [shown]
    _append(raw_name, b"three\n")
    # Restarted: the checkpoint's name is the display one, the file is the same (device and
    # inode): continued, not read again, and not taken for a rename.
    async with agent_running(tmp_path) as (app, again):
        await until(lambda: again.lines() == ["three"], "the new line")
        await asyncio.sleep(0.2)
        (tailer,) = app.tailers.values()
        assert tailer.path == os.fsdecode(raw_name)
    assert again.lines() == ["three"]

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agent.sources.identity import identify
from agent.sources.tailer import FileTailer


def _tailer(path: Path) -> FileTailer:
    fd = os.open(path, os.O_RDONLY)
    ident = identify(fd)
    assert ident is not None
    return FileTailer(str(path), fd, ident, 0)


def test_reads_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\nthr")
    tailer = _tailer(path)
    chunk = tailer.read_chunk(1 << 20, 1 << 20)
    assert chunk is not None and chunk.body == b"one\ntwo" and chunk.end == 8
    assert tailer.read_chunk(1 << 20, 1 << 20) is None
    with path.open("ab") as fh:
        fh.write(b"ee\n")
    chunk = tailer.read_chunk(1 << 20, 1 << 20)
    assert chunk is not None and chunk.body == b"three" and chunk.start == 8
    tailer.close()


def test_over_long_line_without_newline_is_forced_out(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"x\n" + b"y" * 5000)
    tailer = _tailer(path)
    assert tailer.read_chunk(4096, 4096) is not None  # "x"
    chunk = tailer.read_chunk(4096, 4096)
    assert chunk is not None and chunk.forced and len(chunk.body) == 4096
    tailer.close()


async def test_checkpoint_advances_only_through_acked_prefix(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"l\n")
    tailer = _tailer(path)
    loop = asyncio.get_running_loop()
    f1, f2, f3 = loop.create_future(), loop.create_future(), loop.create_future()
    tailer.read_offset = 300
    tailer.track(100, 10, f1)
    tailer.track(200, 10, f2)
    tailer.track(300, 10, f3)
    f2.set_result(None)
    await asyncio.sleep(0)
    assert tailer.acked_offset == 0  # batch 1 not acked yet: nothing moves
    assert tailer.inflight_bytes == 30
    f1.set_result(None)
    await asyncio.sleep(0)
    assert tailer.acked_offset == 200
    assert tailer.inflight_bytes == 10  # batches 1 and 2 acknowledged
    f3.set_exception(RuntimeError("broker gone"))
    await asyncio.sleep(0)
    assert tailer.acked_offset == 200
    assert tailer.read_offset == 200  # rewound: re-read what was not acknowledged
    assert not tailer.inflight and tailer.inflight_bytes == 0
    tailer.close()


async def test_late_ack_after_rewind_does_not_move_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"l\n")
    tailer = _tailer(path)
    loop = asyncio.get_running_loop()
    f1, f2 = loop.create_future(), loop.create_future()
    tailer.track(100, 10, f1)
    tailer.track(200, 10, f2)
    f1.set_exception(RuntimeError("timeout"))
    await asyncio.sleep(0)
    f2.set_result(None)  # the later batch landed, but the earlier one did not
    await asyncio.sleep(0)
    assert tailer.acked_offset == 0
    tailer.close()

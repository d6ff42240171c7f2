"""The open-file limit (agent/handles.py): which files wait, which close, which reopen.

The limiter does no I/O, so these tests drive it with keys, stat signatures and fake views of
open files; :class:`Locator` and the pruning of the checkpoint use real files.
"""

from __future__ import annotations

import os
import random
import resource
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.checkpoint import CheckpointStore, FileCheckpoint
from agent.checkpointer import Checkpointer
from agent.handles import (
    OTHER_FDS,
    ClosedFile,
    HandleLimiter,
    Key,
    Locator,
    OpenView,
    locate_all,
    raise_fd_limit,
)
from agent.metrics import AgentMetrics
from logferry.config import AgentSettings


def _key(n: int) -> Key:
    return (1, n)


def _cp(n: int, offset: int, path: str | None = None) -> FileCheckpoint:
    return FileCheckpoint(f"1:{n:x}:fp", 1, n, "fp", 4, path or f"/logs/{n}.log", offset)


def _idle(last_growth: float = 0.0) -> OpenView:
    return OpenView(last_growth, settled=True, caught_up=True, orphaned=False)


def _busy(settled: bool = False) -> OpenView:
    return OpenView(1e9, settled=settled, caught_up=False, orphaned=False)


def _open_all(lim: HandleLimiter, now: float = 0.0) -> list[Key]:
    """Open every file the limiter hands out, as the agent would."""
    out = []
    while (picked := lim.next_to_open()) is not None:
        key, entry = picked
        lim.opened(key, now, entry.ref, None)
        out.append(key)
    return out


def test_files_beyond_the_limit_wait_in_order() -> None:
    lim = HandleLimiter(max_open=3, close_idle_s=5, yield_after_s=60)
    for n in range(5):
        lim.found(_key(n), f"/logs/{n}.log", None, (10, 1))
    assert lim.waiting == 5
    assert _open_all(lim) == [_key(0), _key(1), _key(2)]
    assert (lim.free, lim.waiting) == (0, 2)
    # Found again by the next scan: still waiting once, not twice.
    for n in range(3, 5):
        lim.found(_key(n), f"/logs/{n}.log", None, (10, 1))
    assert lim.waiting == 2
    lim.released(_key(1))
    assert _open_all(lim) == [_key(3)]


def test_a_renamed_waiting_file_goes_first() -> None:
    lim = HandleLimiter(max_open=1, close_idle_s=5, yield_after_s=60)
    lim.found(_key(0), "/logs/a.log", None, (10, 1))
    lim.found(_key(1), "/logs/b.log", None, (10, 1))
    lim.found(_key(2), "/logs/c.log", None, (10, 1))
    # c.log was rotated (kubelet: 0.log -> 0.log.<timestamp>): it is about to be compressed.
    lim.found(_key(2), "/logs/c.log.20261125-101500", None, (12, 2))
    picked = lim.next_to_open()
    assert picked is not None
    assert picked[0] == _key(2) and picked[1].path == "/logs/c.log.20261125-101500"


def test_only_idle_settled_files_close_and_only_as_many_as_wait() -> None:
    lim = HandleLimiter(max_open=4, close_idle_s=5, yield_after_s=60)
    for n in range(6):
        lim.found(_key(n), f"/logs/{n}.log", None, (10, 1))
    _open_all(lim, now=0.0)
    views = {
        _key(0): _idle(last_growth=3.0),      # idle 7 s
        _key(1): _idle(last_growth=1.0),      # idle 9 s: first to go
        _key(2): _idle(last_growth=8.0),      # idle only 2 s
        _key(3): OpenView(0.0, settled=True, caught_up=False, orphaned=False),  # lines held
    }
    assert lim.to_close(10.0, views) == [_key(1), _key(0)]
    # A rotated or deleted file keeps its handle whatever: nothing else can read it.
    views[_key(1)] = OpenView(1.0, settled=True, caught_up=True, orphaned=True)
    assert lim.to_close(10.0, views) == [_key(0)]


def test_nothing_closes_while_nobody_waits() -> None:
    lim = HandleLimiter(max_open=2, close_idle_s=0, yield_after_s=1)
    for n in range(2):
        lim.found(_key(n), f"/logs/{n}.log", None, (10, 1))
    _open_all(lim)
    assert lim.to_close(100.0, {_key(0): _idle(), _key(1): _idle()}) == []
    assert not lim.yielding


def test_a_closed_file_reopens_only_when_it_changes() -> None:
    lim = HandleLimiter(max_open=1, close_idle_s=5, yield_after_s=60)
    lim.found(_key(0), "/logs/0.log", None, (10, 1))
    lim.found(_key(1), "/logs/1.log", None, (10, 1))
    _open_all(lim)
    lim.closed_file(_key(0), "/logs/0.log", _cp(0, 10), (10, 1), caught_up=True)
    assert _open_all(lim) == [_key(1)]
    lim.found(_key(0), "/logs/0.log", None, (10, 1))
    assert lim.waiting == 0, "unchanged: no handle needed"
    lim.found(_key(0), "/logs/0.log", None, (25, 2))
    assert lim.waiting == 1
    lim.closed_file(_key(1), "/logs/1.log", _cp(1, 10), (10, 1), caught_up=True)
    picked = lim.next_to_open()
    assert picked is not None and picked[1].checkpoint == _cp(0, 10)


def test_closed_with_lines_left_queues_again_at_once() -> None:
    lim = HandleLimiter(max_open=1, close_idle_s=5, yield_after_s=60)
    lim.found(_key(0), "/logs/0.log", None, (100, 1))
    _open_all(lim)
    lim.closed_file(_key(0), "/logs/0.log", _cp(0, 40), (100, 1), caught_up=False)
    assert lim.waiting == 1


def test_busy_files_yield_after_their_turn_so_nobody_waits_forever() -> None:
    lim = HandleLimiter(max_open=2, close_idle_s=5, yield_after_s=30)
    for n in range(3):
        lim.found(_key(n), f"/logs/{n}.log", None, (10, 1))
    _open_all(lim, now=0.0)  # 0 and 1 open, 2 waits
    views = {_key(0): _busy(), _key(1): _busy()}
    assert lim.to_close(10.0, views) == []
    assert not lim.yielding, "not open long enough"
    assert lim.to_close(31.0, views) == []
    assert lim.yielding == {_key(0)}, "one file waits: one yields, the longest open"
    # Acks still in flight: it stays open, reading nothing, until they are in.
    views[_key(0)] = _busy(settled=True)
    assert lim.to_close(31.5, views) == [_key(0)]
    lim.closed_file(_key(0), "/logs/0.log", _cp(0, 4), (10, 1), caught_up=False)
    assert not lim.yielding
    assert _open_all(lim, now=32.0) == [_key(2)]
    assert lim.waiting == 1, "the yielded file queues again behind the others"


def test_yielding_stops_when_the_queue_empties() -> None:
    lim = HandleLimiter(max_open=1, close_idle_s=5, yield_after_s=1)
    lim.found(_key(0), "/logs/0.log", None, (10, 1))
    lim.found(_key(1), "/logs/1.log", None, (10, 1))
    _open_all(lim)
    lim.to_close(5.0, {_key(0): _busy()})
    assert lim.yielding == {_key(0)}
    # The waiting file vanished: nothing to yield for any more.
    assert lim.relocate({_key(1): None})
    assert lim.to_close(6.0, {_key(0): _busy()}) == []
    assert not lim.yielding


def test_first_line_incomplete_is_retried_only_after_a_change() -> None:
    lim = HandleLimiter(max_open=4, close_idle_s=5, yield_after_s=60)
    lim.found(_key(0), "/logs/0.log", None, (0, 1))
    picked = lim.next_to_open()
    assert picked is not None
    lim.not_opened(_key(0), (0, 1))  # empty: identify() had no first line
    lim.found(_key(0), "/logs/0.log", None, (0, 1))
    assert lim.waiting == 0
    lim.found(_key(0), "/logs/0.log", None, (7, 2))
    assert lim.waiting == 1


def test_relocate_keeps_present_follows_renamed_forgets_vanished() -> None:
    lim = HandleLimiter(max_open=1, close_idle_s=5, yield_after_s=60)
    lim.restore([_cp(0, 10), _cp(1, 10), _cp(2, 10)])
    lim.found(_key(3), "/logs/3.log", None, (10, 1))
    _open_all(lim)
    lim.found(_key(4), "/logs/4.log", None, (50, 1))  # waits: the only handle is taken
    unseen = lim.unseen({_key(3), _key(4)})
    assert sorted(unseen) == [(_key(n), f"/logs/{n}.log") for n in range(3)]
    gone = lim.relocate({_key(0): "/logs/0.log",         # there, only not matched
                         _key(1): "/logs/1.log.1",       # renamed out of the globs
                         _key(2): None})                 # deleted
    assert [e.checkpoint for e in gone] == [_cp(2, 10)]
    assert set(lim.closed) == {_key(0), _key(1), _key(4)}
    entry = lim.closed[_key(1)]
    assert entry.rotated_out and entry.checkpoint == _cp(1, 10, "/logs/1.log.1")
    lim.released(_key(3))
    picked = lim.next_to_open()
    assert picked is not None and picked[0] == _key(1), "a rotated file goes first"
    # Until it is open, its position stays in the checkpoint; the deleted file's is gone.
    assert {c.ino for c in lim.checkpoints()} == {0, 1}


def test_unread_bytes_of_a_vanished_file() -> None:
    waiting_new = ClosedFile("/a", seen=(300, 1))
    assert waiting_new.unread_bytes() == 300
    grown = ClosedFile("/b", checkpoint=_cp(1, 100), sig=(100, 1), seen=(160, 2))
    assert grown.unread_bytes() == 60
    unchanged = ClosedFile("/c", checkpoint=_cp(2, 100), sig=(100, 1), seen=(100, 1))
    assert unchanged.unread_bytes() == 0
    never_seen = ClosedFile("/d", checkpoint=_cp(3, 100))
    assert never_seen.unread_bytes() == 0


def test_simulated_node_never_exceeds_the_limit_and_reads_everything() -> None:
    """Many files growing at random, a few handles: every byte is read, once."""
    rng = random.Random(7)
    limit, files = 5, 40
    lim = HandleLimiter(max_open=limit, close_idle_s=2, yield_after_s=20)
    size = dict.fromkeys(range(files), 0)
    mtime = dict.fromkeys(range(files), 0)
    read = dict.fromkeys(range(files), 0)
    last_growth: dict[int, float] = {}
    now = 0.0
    for step in range(3000):
        now += 0.1
        if step < 2000:
            for n in rng.sample(range(files), 3):
                size[n] += rng.randint(1, 50)
                mtime[n] = step
        for n in range(files):  # a scan
            if _key(n) not in lim.open:
                lim.found(_key(n), f"/logs/{n}.log", None, (size[n], mtime[n]))
        views = {}
        for key in lim.open:
            n = key[1]
            if read[n] < size[n] and key not in lim.yielding:
                read[n] = size[n]  # read and acked at once
                last_growth[n] = now
            views[key] = OpenView(last_growth[n], True, read[n] == size[n], False)
        for key in lim.to_close(now, views) if lim.free <= 0 else []:
            n = key[1]
            lim.closed_file(key, f"/logs/{n}.log", _cp(n, read[n]), (size[n], mtime[n]),
                            caught_up=read[n] == size[n])
        while (picked := lim.next_to_open()) is not None:
            key, entry = picked
            n = key[1]
            start = entry.checkpoint.offset if entry.checkpoint else 0
            assert start == read[n], "continued exactly where it was left"
            lim.opened(key, now, None, None)
            last_growth[n] = now
        assert len(lim.open) + len(lim.reserved) <= limit
    assert read == size


def test_locator_finds_a_file_at_its_path_or_renamed_in_its_directory(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_text("x\n")
    b = tmp_path / "b.log"
    b.write_text("y\n")
    key_a = (a.stat().st_dev, a.stat().st_ino)
    key_b = (b.stat().st_dev, b.stat().st_ino)
    b.rename(tmp_path / "b.log.1")
    (tmp_path / "b.log").write_text("new file, new inode\n")
    gone = tmp_path / "gone.log"
    gone.write_text("z\n")
    key_gone = (gone.stat().st_dev, gone.stat().st_ino)
    gone.unlink()
    found = locate_all([(key_a, str(a)), (key_b, str(b)), (key_gone, str(gone)),
                        (key_gone, str(tmp_path / "no-such-dir" / "x.log"))], Locator())
    assert found == {key_a: str(a), key_b: str(tmp_path / "b.log.1"), key_gone: None}


def test_checkpoint_forgets_files_that_vanished(tmp_path: Path) -> None:
    """Entries of files gone from everywhere leave the checkpoint file, so it stays small."""
    logs = tmp_path / "logs"
    logs.mkdir()
    kept, rotated, deleted = logs / "kept.log", logs / "rot.log", logs / "deleted.log"
    entries = []
    for path in (kept, rotated, deleted):
        path.write_text("line\n")
        st = path.stat()
        entries.append(FileCheckpoint(f"{st.st_dev:x}:{st.st_ino:x}:fp", st.st_dev, st.st_ino,
                                      "fp", 5, str(path), 5))
    store = CheckpointStore(tmp_path / "state")
    store.save([*entries, _cp(999_999_999, 7, str(tmp_path / "elsewhere" / "old.log"))])
    lim = HandleLimiter(max_open=8, close_idle_s=5, yield_after_s=60)
    lim.restore(store.load())
    rotated.rename(logs / "rot.log.1")
    deleted.unlink()
    checkpointer = Checkpointer(store, AgentMetrics(), 1.0, {}, lim)
    # A scan matched nothing (say the globs are *.log and kept.log was renamed back later):
    lim.relocate(locate_all(lim.unseen(set())))
    checkpointer.save_now()
    paths = sorted(os.path.basename(c.path) for c in store.load())
    assert paths == ["kept.log", "rot.log.1"]


def test_settings_are_validated() -> None:
    assert AgentSettings().max_open_files == 1024
    for bad in ({"max_open_files": 0}, {"close_idle_s": -1}, {"yield_after_s": 0}):
        with pytest.raises(ValidationError):
            AgentSettings.model_validate(bad)
    assert AgentSettings.model_validate({"max_open_files": 1, "close_idle_s": 0}).close_idle_s == 0


def test_soft_fd_limit_is_raised_to_fit_max_open_files(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {"now": (1024, 524288)}
    monkeypatch.setattr(resource, "getrlimit", lambda _: limits["now"])
    monkeypatch.setattr(resource, "setrlimit",
                        lambda _, value: limits.__setitem__("now", value))
    assert raise_fd_limit(1024) == 1024 + OTHER_FDS
    assert limits["now"] == (1024 + OTHER_FDS, 524288)
    # Never lowered, and only as far as the hard limit allows.
    assert raise_fd_limit(10) == 1024 + OTHER_FDS
    limits["now"] = (1024, 2000)
    assert raise_fd_limit(5000) == 2000

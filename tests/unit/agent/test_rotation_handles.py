"""What the limiter keeps of files read to their end and released (rotated files, copies):
driven with keys and stat signatures, no I/O (see test_handles.py for the rest)."""

from __future__ import annotations

from agent.checkpoint import FileCheckpoint
from agent.handles import HandleLimiter, Key


def _key(n: int) -> Key:
    return (1, n)


def _cp(n: int, offset: int, path: str, finish: bool = False) -> FileCheckpoint:
    return FileCheckpoint(f"1:{n:x}:fp", 1, n, "fp", 4, path, offset, finish)


def _limiter() -> HandleLimiter:
    return HandleLimiter(max_open=10, close_idle_s=5, yield_after_s=60)


def test_a_released_rotated_file_found_again_is_not_queued() -> None:
    lim = _limiter()
    path = "/pods/ns_p_u/c/0.log.20261126-101500"
    lim.found(_key(1), path, None, (10, 1), finish=True)
    assert lim.next_to_open() == (_key(1), lim.closed[_key(1)])
    lim.opened(_key(1), 0.0, None, None)
    lim.finished(_key(1), path, _cp(1, 10, path, True), (10, 1))
    assert lim.free == 10 and not lim.open
    for _ in range(3):  # every later scan
        lim.found(_key(1), path, None, (10, 1), finish=True)
    assert lim.waiting == 0
    assert list(lim.checkpoints()) == [_cp(1, 10, path, True)]
    # Written after all: continued from its offset.
    lim.found(_key(1), path, None, (15, 2), finish=True)
    assert lim.waiting == 1
    assert lim.closed[_key(1)].checkpoint == _cp(1, 10, path, True)


def test_a_new_rotated_file_goes_first() -> None:
    lim = HandleLimiter(max_open=1, close_idle_s=5, yield_after_s=60)
    lim.found(_key(1), "/pods/ns_p_u/c/0.log", None, (10, 1))
    lim.found(_key(2), "/pods/ns_p_u/c/0.log.20261126-101500", None, (10, 1), finish=True)
    picked = lim.next_to_open()
    assert picked is not None and picked[0] == _key(2)
    assert picked[1].finish


def test_a_live_name_is_not_finished() -> None:
    """An inode reused by a live file: the entry of the rotated file it was is no more."""
    lim = _limiter()
    lim.restore([_cp(1, 10, "/pods/ns_p_u/c/0.log.20261126-101500", True)])
    lim.found(_key(1), "/pods/ns_p_u/c/0.log", None, (10, 1))
    entry = lim.closed[_key(1)]
    assert not entry.finish
    assert list(lim.checkpoints()) == [_cp(1, 10, "/pods/ns_p_u/c/0.log", False)]


def test_relocating_files_to_finish() -> None:
    lim = _limiter()
    lim.restore([_cp(1, 5, "/logs/app.log.1", True),  # a copy being read at the stop
                 _cp(2, 7, "/logs/other.log", False)])  # not matched any more
    lim.found(_key(3), "/logs/b.log", None, (3, 1))
    lim.opened(_key(3), 0.0, None, None)
    lim.finished(_key(3), "/logs/b.log", _cp(3, 3, "/logs/b.log", True), (3, 1))
    lim.relocate({_key(1): "/logs/app.log.1", _key(2): "/logs/other.log",
                  _key(3): "/logs/b.log.1"})
    # The copy: read to its end from its checkpoint, though at the same place.
    assert lim.closed[_key(1)].rotated_out and lim.waiting == 1
    picked = lim.next_to_open()
    assert picked is not None and picked[0] == _key(1)
    # A file that is merely unmatched stays as it was; a released one follows its rename.
    assert not lim.closed[_key(2)].rotated_out
    assert lim.closed[_key(3)].path == "/logs/b.log.1" and lim.waiting == 0
    lim.relocate({_key(3): None})
    assert _key(3) not in lim.closed


def test_released_returns_what_was_known() -> None:
    lim = _limiter()
    lim.found(_key(1), "/logs/a.log", None, (3, 1))
    lim.opened(_key(1), 4.0, None, None)
    info = lim.released(_key(1))
    assert info is not None and info.opened_at == 4.0
    assert lim.released(_key(1)) is None


def test_a_checkpoint_name_shown_with_ufffd_is_the_same_name() -> None:
    lim = _limiter()
    lim.restore([_cp(1, 5, "/logs/caf\ufffd.log")])
    lim.found(_key(1), "/logs/caf\udce9.log", None, (9, 1))
    entry = lim.closed[_key(1)]
    assert entry.path == "/logs/caf\udce9.log"
    assert lim.waiting == 1 and not lim._urgent  # queued, not as a rename

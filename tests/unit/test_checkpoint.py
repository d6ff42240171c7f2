from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.checkpoint import CheckpointStore, FileCheckpoint
from logferry.errors import CheckpointError


def _entry(offset: int = 10) -> FileCheckpoint:
    return FileCheckpoint("1:2:ab", 1, 2, "ab", 5, "/var/log/a.log", offset)


def test_round_trip_and_missing(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state")
    assert not store.exists()
    assert store.load() == []
    store.save([_entry(10), _entry(20)])
    assert store.load() == [_entry(10), _entry(20)]
    assert not (tmp_path / "state" / "checkpoints.tmp").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_checkpoint_is_reported_not_reset(tmp_path: Path, damage: str) -> None:
    store = CheckpointStore(tmp_path)
    store.save([_entry(12345)])
    raw = store.path.read_bytes()
    if damage == "truncate":
        store.path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        store.path.write_bytes(raw.replace(b"12345", b"12346"))
    else:
        store.path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        store.load()


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores directory permissions; use a path whose parent is a file instead
        store = CheckpointStore(tmp_path)
        store.save([_entry(1)])
        blocker = tmp_path / "checkpoints.tmp"
        blocker.mkdir()  # os.open(O_WRONLY) on a directory fails
        with pytest.raises(CheckpointError, match="previous checkpoint is intact"):
            store.save([_entry(2)])
        assert store.load() == [_entry(1)]
    else:  # pragma: no cover - CI runs as root
        store = CheckpointStore(tmp_path)
        store.save([_entry(1)])
        tmp_path.chmod(0o500)
        try:
            with pytest.raises(CheckpointError):
                store.save([_entry(2)])
        finally:
            tmp_path.chmod(0o700)
        assert store.load() == [_entry(1)]

from __future__ import annotations

import os
from pathlib import Path

from agent.sources.identity import FINGERPRINT_MAX_BYTES, identify, still_matches


def _ident(path: Path):  # type: ignore[no-untyped-def]
    fd = os.open(path, os.O_RDONLY)
    try:
        return identify(fd)
    finally:
        os.close(fd)


def test_incomplete_first_line_has_no_identity_yet(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"partial")
    assert _ident(path) is None
    path.write_bytes(b"partial line\n")
    assert _ident(path) is not None


def test_identity_stable_while_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"first\n")
    before = _ident(path)
    with path.open("ab") as fh:
        fh.write(b"second\n" * 1000)
    assert _ident(path) == before


def test_rename_keeps_identity(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"hello\n")
    before = _ident(path)
    path.rename(tmp_path / "0.log.20261125-101500")
    assert _ident(tmp_path / "0.log.20261125-101500") == before


def test_rewritten_content_is_a_new_file_even_with_same_inode(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"old first line\n")
    before = _ident(path)
    with path.open("r+b") as fh:  # same inode, new content: copytruncate then new writes
        fh.truncate(0)
        fh.write(b"new first line\n")
    after = _ident(path)
    assert after is not None and before is not None
    assert (after.dev, after.ino) == (before.dev, before.ino)
    assert after.fid != before.fid


def test_long_first_line_uses_capped_prefix(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"x" * (FINGERPRINT_MAX_BYTES + 10))
    ident = _ident(path)
    assert ident is not None and ident.fp_len == FINGERPRINT_MAX_BYTES
    fd = os.open(path, os.O_RDONLY)
    try:
        assert still_matches(fd, ident.fp, ident.fp_len)
        assert not still_matches(fd, ident.fp, ident.fp_len + 1)
    finally:
        os.close(fd)

"""File identity: device + inode + a fingerprint of the file's first line.

Path alone is wrong under rename rotation (the same file gets a new name) and inode alone is
wrong under inode reuse (a new file gets an old number). The fingerprint covers the first line
(at most ``FINGERPRINT_MAX_BYTES``): it is complete before any line of the file is sent and never
changes afterwards, so the id derived from it is stable for the file's whole life, and a file
that was truncated and rewritten (copytruncate) gets a new one.

A copy keeps the id of the file it was copied from (``origin``): logrotate's copytruncate copy
holds the same lines at the same offsets, so what is read from it continues that file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

FINGERPRINT_MAX_BYTES = 256


@dataclass(frozen=True, slots=True)
class FileIdentity:
    dev: int
    ino: int
    fp: str
    fp_len: int
    # The id of the file this one is a copy of; None for a file that is its own origin.
    origin: str | None = None

    @property
    def fid(self) -> str:
        return self.origin or f"{self.dev:x}:{self.ino:x}:{self.fp}"


def _digest(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=8).hexdigest()


def identify(fd: int) -> FileIdentity | None:
    """The identity of the open file, or None while its first line is still incomplete."""
    st = os.fstat(fd)
    head = os.pread(fd, FINGERPRINT_MAX_BYTES, 0)
    newline = head.find(b"\n")
    if newline >= 0:
        head = head[: newline + 1]
    elif len(head) < FINGERPRINT_MAX_BYTES:
        return None
    return FileIdentity(st.st_dev, st.st_ino, _digest(head), len(head))


def still_matches(fd: int, fp: str, fp_len: int) -> bool:
    """Whether the open file still starts with the bytes that ``fp`` was computed from."""
    head = os.pread(fd, fp_len, 0)
    return len(head) == fp_len and _digest(head) == fp

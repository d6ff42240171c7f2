"""Finding the copy that logrotate's ``copytruncate`` left next to a truncated file.

copytruncate copies ``app.log`` to ``app.log.1`` (or ``app.log-20261126``), then truncates
``app.log``. Lines written just before the truncation that the agent had not read yet exist
only in the copy. The copy starts with the same bytes as the file did, so it is recognised by
its name (the file's name plus a suffix, not compressed) and its fingerprint, and it is at
least as long as what was read of the file. Fluent Bit and Filebeat lose these lines.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from agent.sources.identity import still_matches

# A compressed copy holds the same lines, but not at the same offsets.
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".z", ".tmp")


@dataclass(frozen=True, slots=True)
class Copy:
    path: str
    fd: int  # open, read-only: the caller owns it
    st: os.stat_result


def find_copy(path: str, fp: str, fp_len: int, min_size: int,
              not_key: tuple[int, int] | None = None,
              skip: Callable[[tuple[int, int]], bool] | None = None) -> Copy | None:
    """The copy of the file last at ``path`` that started with the bytes ``fp`` was computed
    from and has at least ``min_size`` bytes; None if there is none. ``not_key`` (the file
    itself) and files ``skip`` names (by device and inode) are not candidates.

    Newest first: with a constant first line, an older copy matches too, and the newest holds
    the lines just before the truncation. At most one candidate is open at a time.
    """
    directory, base = os.path.split(path)
    candidates: list[tuple[int, str, os.stat_result]] = []
    try:
        with os.scandir(directory or ".") as it:
            for item in it:
                name = item.name
                if (len(name) <= len(base) or not name.startswith(base)
                        or name.lower().endswith(_COMPRESSED)):
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if (not item.is_file(follow_symlinks=False) or st.st_size < min_size
                        or key == not_key or (skip is not None and skip(key))):
                    continue
                candidates.append((st.st_mtime_ns, item.path, st))
    except OSError:
        return None
    for _, candidate, st in sorted(candidates, key=lambda c: c[0], reverse=True):
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fst = os.fstat(fd)
            if ((fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino) and fst.st_size >= min_size
                    and still_matches(fd, fp, fp_len)):
                return Copy(candidate, fd, fst)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.close(fd)
    return None

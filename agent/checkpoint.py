"""Crash-safe checkpoints: how far each file has been acknowledged by Kafka.

Written as JSON with a CRC to a temp file, fsynced, renamed over the old one, then the directory
is fsynced, so a crash leaves either the old or the new checkpoint, never a torn one. A file that
is unreadable or fails its CRC raises :class:`CheckpointError`: silently starting from zero
would duplicate every line, silently starting from the end would lose them.

Paths are written as text: a file name that is not valid UTF-8 is written with U+FFFD in place
of its bad bytes (the entry is still found again by device and inode).
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from agent.paths import display_path
from logferry.errors import CheckpointError

FORMAT_VERSION = 1
FILE_NAME = "checkpoints.json"


@dataclass(frozen=True, slots=True)
class FileCheckpoint:
    fid: str
    dev: int
    ino: int
    fp: str
    fp_len: int
    path: str
    offset: int
    # Read it to its end, then let it go: a rotated file or a copytruncate copy (never written
    # again). Such an entry is also how a file already read to its end is known again.
    finish: bool = False


class CheckpointStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / FILE_NAME

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> list[FileCheckpoint]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc.strerror}") from exc
        try:
            doc = orjson.loads(raw)
            files = doc["files"]
            if doc.get("version") != FORMAT_VERSION:
                raise CheckpointError(
                    f"checkpoint {self.path} has version {doc.get('version')!r}, "
                    f"expected {FORMAT_VERSION}")
            if zlib.crc32(orjson.dumps(files)) != doc["crc32"]:
                raise ValueError("CRC mismatch")
            return [FileCheckpoint(**entry) for entry in files]
        except CheckpointError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path} is corrupt ({exc}); refusing to guess offsets. "
                f"Inspect it, then move it away to start over (files are then read per "
                f"agent.start_at)") from exc

    def save(self, entries: list[FileCheckpoint]) -> None:
        # orjson writes a dataclass exactly as the dict load() reads back, and ten times faster
        # than dataclasses.asdict: this runs every checkpoint_interval_s for every known file.
        try:
            files = orjson.dumps(entries)
        except orjson.JSONEncodeError:
            # A file name that is not UTF-8 (surrogate-escaped by os): rare, so the common
            # case pays nothing for the check.
            files = orjson.dumps([dataclasses.replace(e, path=display_path(e.path))
                                  for e in entries])
        body = orjson.dumps({"version": FORMAT_VERSION, "files": orjson.Fragment(files),
                             "crc32": zlib.crc32(files)})
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise CheckpointError(
                f"cannot write checkpoint {self.path}: {exc.strerror}; the previous checkpoint "
                f"is intact and the agent keeps retrying") from exc

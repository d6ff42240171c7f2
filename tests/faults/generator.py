"""Writes uniquely numbered log lines into kubelet-style container logs and plain files.

Every logical line carries one token ``#<seq>#``; the checker finds it again in OpenSearch (in
``message`` or ``event.original``) or in the dead-letter topic. Sequence numbers are global
across files, so "line 1234" names exactly one thing the generator wrote.

The mix is what a node really holds: CRI lines (some split into ``P`` pieces), docker
json-file lines, plain files of JSON, logfmt and text lines, and Java stack traces whose
continuation lines carry no token (the agent's multiline rule joins them to their first line).

Writers append through a fresh ``open`` per burst, like a runtime that reopens after the
kubelet rotates, and hold :attr:`Fleet.lock` while appending: a rotation that takes the lock
happens between two bursts, never inside one line.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

TOKEN = "#{}#"


@dataclass
class LogFile:
    """One file the generator appends to."""

    path: Path
    fmt: str  # "cri", "docker" or "plain"
    written: list[int] = field(default_factory=list)  # sequence numbers, in write order


@dataclass
class Fleet:
    """The container logs and plain files of one scenario, under ``root``."""

    root: Path
    files: list[LogFile] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pods_root(self) -> Path:
        return self.root / "pods"

    @property
    def plain_dir(self) -> Path:
        return self.root / "plain"

    @classmethod
    def create(cls, root: Path, pods: int = 3, plain: int = 2, docker: int = 1) -> Fleet:
        fleet = cls(root)
        for i in range(pods):
            fleet.files.append(LogFile(fleet._container_log(f"pod{i}", "app"), "cri"))
        for i in range(docker):
            fleet.files.append(LogFile(fleet._container_log(f"dock{i}", "web"), "docker"))
        fleet.plain_dir.mkdir(parents=True, exist_ok=True)
        for i in range(plain):
            path = fleet.plain_dir / f"app{i}.log"
            path.touch()
            fleet.files.append(LogFile(path, "plain"))
        return fleet

    def _container_log(self, pod: str, container: str) -> Path:
        uid = f"{abs(hash((self.root, pod))) % 10**12:012d}-0000-4000-8000-000000000000"
        directory = self.pods_root / f"faults_{pod}_{uid}" / container
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "0.log"
        path.touch()
        return path

    def total_written(self) -> int:
        return sum(len(f.written) for f in self.files)


class Generator:
    """Appends ``total`` logical lines at about ``rate_per_s``, round robin over the fleet.

    ``extra`` lets a scenario add its own lines (bad input) through the same numbering.
    """

    def __init__(self, fleet: Fleet, total: int, rate_per_s: float, seed: int = 7) -> None:
        self.fleet = fleet
        # Files a scenario adds later (bad input) are written by the scenario alone.
        self.targets = list(fleet.files)
        self.total = total
        self.rate_per_s = rate_per_s
        self.rng = random.Random(seed)
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.stop = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="generator", daemon=True)

    def start(self) -> Generator:
        self._thread.start()
        return self

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def next_seq(self) -> int:
        with self._seq_lock:
            seq = self._seq
            self._seq += 1
            return seq

    def _run(self) -> None:
        burst = max(1, int(self.rate_per_s / 20))  # ~20 bursts per second
        started = time.monotonic()
        made = 0
        try:
            while made < self.total and not self.stop.is_set():
                target = self.targets[made // burst % len(self.targets)]
                n = min(burst, self.total - made)
                self.append(target, [self.logical_line(target.fmt) for _ in range(n)])
                made += n
                ahead = made / self.rate_per_s - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        finally:
            self.done.set()

    def logical_line(self, fmt: str) -> tuple[int, list[bytes]]:
        """A new sequence number and the physical lines (already framed for ``fmt``)."""
        seq = self.next_seq()
        text, continuation = self._text(seq)
        return seq, frame(fmt, text, continuation, self.rng)

    def append(self, target: LogFile, lines: list[tuple[int, list[bytes]]]) -> None:
        data = b"".join(b"".join(physical) for _, physical in lines)
        with self.fleet.lock, target.path.open("ab") as fh:
            fh.write(data)
            target.written.extend(seq for seq, _ in lines)

    def _text(self, seq: int) -> tuple[str, list[str]]:
        token = TOKEN.format(seq)
        pad = "x" * self.rng.randint(0, 300)
        kind = self.rng.random()
        if kind < 0.35:
            return orjson.dumps({"level": self.rng.choice(["info", "WARN", "error", "debug"]),
                                 "msg": f"order {token} processed", "user": f"u{seq % 97}",
                                 "latency_ms": seq % 1000, "pad": pad}).decode(), []
        if kind < 0.6:
            return f'level=info msg="payment {token} ok" amount={seq % 500}.25 pad={pad}', []
        if kind < 0.95:
            return f"INFO worker-{seq % 8} handled {token} {pad}", []
        frames = [f"\tat com.example.Service.step{i}(Service.java:{i + 10})"
                  for i in range(self.rng.randint(2, 6))]
        return f"ERROR java.lang.IllegalStateException: failed {token}", frames


def frame(fmt: str, text: str, continuation: list[str], rng: random.Random) -> list[bytes]:
    """The bytes a runtime writes for one logical line (plus its stack-trace lines)."""
    out: list[bytes] = []
    for i, piece in enumerate([text, *continuation]):
        if fmt == "plain":
            out.append(piece.encode() + b"\n")
        elif fmt == "docker":
            out.append(orjson.dumps({"log": piece + "\n", "stream": "stdout",
                                     "time": now_rfc3339()}) + b"\n")
        else:
            out.extend(_cri(piece, rng if i == 0 else None))
    return out


def _cri(text: str, rng: random.Random | None) -> list[bytes]:
    data = text.encode()
    stream = b"stderr" if text.startswith("ERROR") else b"stdout"
    # ~4% of first lines are split into P pieces, as the runtime does past its buffer size.
    if rng is not None and len(data) > 40 and rng.random() < 0.04:
        cuts = sorted(rng.sample(range(10, len(data) - 5), 2))
        pieces = [data[: cuts[0]], data[cuts[0]: cuts[1]], data[cuts[1]:]]
        tags = [b"P", b"P", b"F"]
    else:
        pieces, tags = [data], [b"F"]
    return [b"%s %s %s %s\n" % (now_rfc3339().encode(), stream, tag, piece)
            for tag, piece in zip(tags, pieces, strict=True)]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def background(fn: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread

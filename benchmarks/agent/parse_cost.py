"""Per-line cost of the container log stages: CRI parse, partial join, multi-line join.

Run: ``.venv/bin/python benchmarks/agent/parse_cost.py [lines]``. Prints µs/line (best of 3)
for 200k synthetic CRI lines of 100-500 bytes, 1 in 50 of them split into P pieces. The costs
add up: "parse + partials" includes the parse.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import orjson

from agent.stages.cri import parse_cri
from agent.stages.docker_json import parse_docker_json
from agent.stages.multiline import MultilineJoiner, MultilineRules
from agent.stages.partials import PartialJoiner

TS = "2024-05-01T10:00:00.123456789Z"


def synthetic_cri(lines: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    out: list[bytes] = []
    while len(out) < lines:
        stream = "stdout" if rng.random() < 0.8 else "stderr"
        body = bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz     0123456789",
                                 k=rng.randint(60, 460)))
        if rng.random() < 0.02:  # a long line, as the runtime splits it
            for _ in range(rng.randint(1, 3)):
                out.append(f"{TS} {stream} P ".encode() + body)
        out.append(f"{TS} {stream} F ".encode() + body)
    return b"\n".join(out[:lines]) + b"\n"


def synthetic_docker(cri: bytes) -> bytes:
    out = []
    for raw in cri.split(b"\n")[:-1]:
        ts, stream, tag, message = raw.split(b" ", 3)
        log = message.decode() + ("" if tag == b"P" else "\n")
        out.append(orjson.dumps({"log": log, "stream": stream.decode(), "time": ts.decode()}))
    return b"\n".join(out) + b"\n"


def split_only(data: bytes) -> int:
    return len(data.split(b"\n")) - 1


def cri_parse(data: bytes) -> int:
    n = 0
    for raw in data.split(b"\n")[:-1]:
        if parse_cri(raw) is not None:
            n += 1
    return n


def cri_partials(data: bytes) -> int:
    joiner = PartialJoiner()
    feed = joiner.feed
    n = 0
    off = 0
    for raw in data.split(b"\n")[:-1]:
        end = off + len(raw) + 1
        parsed = parse_cri(raw)
        if parsed is not None:
            joined = feed(off, end, parsed.ts, parsed.stream, parsed.partial, parsed.message,
                          now=0.0)
            if joined is not None:
                n += 1
        off = end
    return n


def cri_partials_multiline(data: bytes) -> int:
    joiner = PartialJoiner()
    multiline = MultilineJoiner(MultilineRules(mode="indent"))
    feed, ml_feed = joiner.feed, multiline.feed
    n = 0
    off = 0
    for raw in data.split(b"\n")[:-1]:
        end = off + len(raw) + 1
        parsed = parse_cri(raw)
        if parsed is not None:
            j = feed(off, end, parsed.ts, parsed.stream, parsed.partial, parsed.message,
                     now=0.0)
            if j is not None and ml_feed(j.offset, j.end, j.message, now=0.0, ts=j.ts,
                                         stream=j.stream, flags=j.flags,
                                         commit=j.commit) is not None:
                n += 1
        off = end
    return n


def docker_parse(data: bytes) -> int:
    n = 0
    for raw in data.split(b"\n")[:-1]:
        if parse_docker_json(raw) is not None:
            n += 1
    return n


def measure(name: str, fn: Callable[[bytes], int], data: bytes, lines: int) -> None:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - t0)
    print(f"{name:32s} {best / lines * 1e6:6.2f} µs/line  ({lines / best / 1e3:7.0f}k lines/s)")


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    cri = synthetic_cri(lines)
    docker = synthetic_docker(cri)
    print(f"{lines} lines, {len(cri) / lines:.0f} B/line (CRI), Python {sys.version.split()[0]}")
    measure("split only", split_only, cri, lines)
    measure("parse_cri", cri_parse, cri, lines)
    measure("parse_cri + PartialJoiner", cri_partials, cri, lines)
    measure("  + MultilineJoiner (indent)", cri_partials_multiline, cri, lines)
    measure("parse_docker_json", docker_parse, docker, lines)


if __name__ == "__main__":
    main()

"""Agent CPU per line, stage by stage, without Kafka: where a line's microseconds go.

Run: ``.venv/bin/python -m benchmarks.agent.line_cost [lines]`` (default 100,000). Uses the
agent benchmark's CRI file (generated on first use). Prints µs/line (best of 5, process CPU
time) for: packing plain lines into wire records, the CRI pipeline, laying out the Kafka
records section, zstd at levels 1 and 3, and the batch header with its CRC. The agent's
end-to-end cost per line is about their sum for its mode, plus the Kafka client (~0.5
µs/line) and start-up (~0.5 CPU-s per run).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from unittest.mock import patch

from agent.sinks.recordbatch import RecordBatch, compress, frame_records
from agent.sources.tailer import Chunk
from agent.stages.cri import scan_chunk_py
from agent.stages.native import COMPILED
from agent.stages.pipeline import ContainerPipeline, PlainPipeline
from benchmarks.agent.bench import data_file

HOST = "node-a"
PATH = "/var/log/pods/shop_checkout-7d4b9c-x2x9q_0f6e3a52/app/0.log"
FID = "803:1a2b3c:9f8e7d6c5b4a3921"
K8S = {"namespace": "shop", "pod": "checkout-7d4b9c-x2x9q",
       "pod_uid": "0f6e3a52-1c1b-4c44-9a51-2f3c9b7e8d10", "container": "app", "restart": 0}
KEY = FID.encode()


def chunks(lines: int, chunk_bytes: int = 1 << 20) -> list[Chunk]:
    out: list[Chunk] = []
    with data_file(max(lines, 300_000)).open("rb") as f:
        data = b"".join(f.readline() for _ in range(lines))
    start = 0
    while start < len(data):
        cut = data.rfind(b"\n", start, start + chunk_bytes)
        if cut <= start:
            cut = data.find(b"\n", start)
        out.append(Chunk(start, data[start:cut], cut + 1))
        start = cut + 1
    return out


def best_of(fn: Callable[[], object], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    parts = chunks(lines)
    plain_pipe = PlainPipeline(HOST, PATH, FID, 1 << 20, None, 0)
    plain = [plain_pipe.process(c, 0.0).values for c in parts]
    sections = [bytes(frame_records(KEY, values)[0]) for values in plain]
    raw = sum(len(c.body) + 1 for c in parts)

    def cri() -> None:
        pipe = ContainerPipeline(HOST, PATH, FID, K8S, "cri", 1 << 20, 5.0, None, 0)
        for c in parts:
            pipe.process(c, 0.0)

    def cri_python_scan() -> None:
        with patch("agent.stages.pipeline.scan_chunk", scan_chunk_py):
            cri()

    packed = [compress(4, 1, s) for s in sections]

    def build() -> None:
        for payload in packed:
            batch = RecordBatch(4)
            batch._payload = payload
            batch._build()  # header + CRC-32C over the compressed section, as sent

    stages: list[tuple[str, Callable[[], object]]] = [
        ("plain lines -> wire records", lambda: [plain_pipe.process(c, 0.0) for c in parts]),
        ("CRI lines -> wire records" + ("" if COMPILED else " (no C scan)"), cri),
        ("  the same, pure-Python scan", cri_python_scan),
        ("records -> Kafka records section", lambda: [frame_records(KEY, v) for v in plain]),
        ("zstd level 1", lambda: [compress(4, 1, s) for s in sections]),
        ("zstd level 3", lambda: [compress(4, 3, s) for s in sections]),
        ("batch header + CRC (of zstd 1)", build),
    ]
    record_bytes = sum(len(s) for s in sections) / lines
    print(f"{lines:,} lines, {raw / lines:.0f} B/line in the file, {record_bytes:.0f} B/line "
          f"as Kafka records; Python {sys.version.split()[0]}")
    for name, fn in stages:
        print(f"  {name:34s} {best_of(fn) / lines * 1e6:6.2f} µs/line")


if __name__ == "__main__":
    main()

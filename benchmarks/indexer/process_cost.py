"""Cost of ``Processor.process`` per line, on synthetic lines shaped like real ones, and of
the indexer's whole per-line path.

    .venv/bin/python -m benchmarks.indexer.process_cost [--records N] [--seed S]

Prints µs/line for the mix (35% JSON app logs, 20% logfmt, 25% nginx access, 20% plain
text) and for each kind alone. Then the per-line path of the indexer on these lines wrapped
in wire records, with and without Kubernetes fields: ``DocumentBuilder.build_lines`` (wire bytes
to the two bulk lines of each line: decode, process, document, id, NDJSON) on v2 records (a few
hundred lines of one file each, as the agent writes them) and on v1 records (one line each),
next to the reference composition it replaces (``decode_lines``, ``to_document``,
``process().apply``, ``bulk_lines``) on the v2 records. One core, no I/O: the numbers are the
stages' own cost; what the indexer process spends per document on top (Kafka fetch, HTTP,
asyncio) is measured by ``benchmarks.indexer.bench``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from benchmarks.indexer._pack import pack
from indexer.stages.document import DocumentBuilder, IndexNamer, bulk_lines, to_document
from indexer.stages.process import Processor
from logferry.config._processing import ProcessingSettings
from logferry.wire import LogRecord, batch_head, decode_lines, encode

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PATHS = ["/", "/api/v1/orders", "/api/v1/orders/8412", "/static/app.3f9a.js", "/healthz",
         "/api/v1/users?page=2&size=50", "/login"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0 Safari/537.36", "curl/8.5.0", "kube-probe/1.31", "Go-http-client/2.0"]
WORDS = ["connection", "pool", "exhausted", "retrying", "request", "for", "upstream", "service",
         "timed", "out", "after", "waiting", "cache", "miss", "key", "user", "session",
         "refreshed", "token", "expired", "scheduling", "job", "worker", "started", "shutting",
         "down", "gracefully"]
LEVELS = ["debug", "info", "info", "info", "info", "warn", "error"]


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))


def json_line(rng: random.Random, ts: datetime) -> str:
    record: dict[str, object] = {
        "time": _iso(ts), "level": rng.choice(LEVELS), "msg": _sentence(rng),
        "logger": rng.choice(["app.http", "app.db", "app.worker"]),
        "trace_id": f"{rng.getrandbits(128):032x}", "span_id": f"{rng.getrandbits(64):016x}",
        "duration_ms": round(rng.uniform(0.1, 900), 3),
    }
    if rng.random() < 0.4:
        record["http"] = {"method": rng.choice(["GET", "POST"]), "path": rng.choice(PATHS),
                          "status": rng.choice([200, 200, 201, 404, 500])}
    if rng.random() < 0.2:
        record["user"] = {"id": rng.randint(1, 10**6), "roles": ["reader", "writer"]}
    return orjson.dumps(record).decode()


def logfmt_line(rng: random.Random, ts: datetime) -> str:
    return (f'ts={_iso(ts)} level={rng.choice(LEVELS)} caller=main.go:{rng.randint(10, 999)} '
            f'msg="{_sentence(rng)}" component={rng.choice(["scheduler", "store", "api"])} '
            f"duration={rng.uniform(0.1, 500):.3f}ms attempt={rng.randint(1, 5)}")


def nginx_line(rng: random.Random, ts: datetime) -> str:
    local = ts.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - "
            f'[{local}] "{rng.choice(["GET", "POST"])} {rng.choice(PATHS)} HTTP/1.1" '
            f'{rng.choice([200, 200, 200, 304, 404, 502])} {rng.randint(0, 90000)} '
            f'"-" "{rng.choice(AGENTS)}" "-"')


def plain_line(rng: random.Random, ts: datetime) -> str:
    kind = rng.random()
    if kind < 0.4:
        return (f"{ts.strftime('%Y-%m-%d %H:%M:%S')},{ts.microsecond // 1000:03d} "
                f"{rng.choice(['INFO', 'WARN', 'ERROR', 'DEBUG'])} [main] "
                f"com.example.Service - {_sentence(rng)}")
    if kind < 0.7:
        return f"E{ts.strftime('%m%d %H:%M:%S.%f')}    1 controller.go:123] {_sentence(rng)}"
    return _sentence(rng).capitalize() + "."


KINDS: dict[str, tuple[float, Callable[[random.Random, datetime], str]]] = {
    "json": (0.35, json_line), "logfmt": (0.20, logfmt_line), "nginx": (0.25, nginx_line),
    "plain": (0.20, plain_line),
}


def make_lines(count: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    names = list(KINDS)
    weights = [KINDS[n][0] for n in names]
    out: dict[str, list[str]] = {n: [] for n in names}
    out["mix"] = []
    start = NOW - timedelta(hours=1)
    for i in range(count):
        name = rng.choices(names, weights)[0]
        line = KINDS[name][1](rng, start + timedelta(milliseconds=i * 7))
        out[name].append(line)
        out["mix"].append(line)
    return out


def cost_us(processor: Processor, lines: list[str], agent_ts: str) -> tuple[float, float]:
    """Wall-clock (perf_counter) and CPU (process_time) µs per line."""
    process = processor.process
    for line in lines[:2000]:  # warm the caches (regex, the timestamp bounds)
        process(line, agent_ts, NOW)
    wall, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        process(line, agent_ts, NOW)
    count = max(1, len(lines))
    return ((time.perf_counter() - wall) / count * 1e6,
            (time.process_time() - cpu) / count * 1e6)


FILES = 24
AGENT_TS = "2026-11-25T11:59:59.123456789Z"
POD = {"namespace": "shop", "pod": "checkout-7d9f8c-x2x4q", "pod_uid": "4f1c-9a2e",
       "container": "app", "restart": 0, "labels": {"app": "checkout", "tier": "web"},
       "node": "node-a"}


def wire_records(lines: list[str], k8s: bool, version: int) -> list[bytes]:
    """``lines`` spread over FILES files, as v1 records (one line each) or v2 records (each
    file's lines packed as the agent packs them)."""
    kind, pod, stream = ("container", POD, "stdout") if k8s else ("file", None, None)
    columns: list[tuple[list[int], list[str]]] = [([], []) for _ in range(FILES)]
    offsets = [0] * FILES
    v1: list[bytes] = []
    for i, line in enumerate(lines):
        f = i % FILES
        if version == 1:
            v1.append(encode(LogRecord(
                ts=AGENT_TS, host="node-a", kind=kind, path=f"/var/log/app-{f}.log",
                fid=f"803:1a2b{f:02x}:9f8e7d6c5b4a3921", off=offsets[f], line=line, k8s=pod,
                stream=stream)))
        columns[f][0].append(offsets[f])
        columns[f][1].append(line)
        offsets[f] += len(line) + 1
    if version == 1:
        return v1
    return [value for f in range(FILES) for value in pack(
        batch_head("node-a", kind, f"/var/log/app-{f}.log", f"803:1a2b{f:02x}:9f8e7d6c5b4a3921",
                   pod), AGENT_TS, *columns[f], stream)]


def pipeline_cost_us(processor: Processor, values: list[bytes],
                     reference_path: bool = False) -> float:
    """CPU µs per line of DocumentBuilder.build_lines, or of the reference composition."""
    namer = IndexNamer("{prefix}-{date}", "logferry-logs")
    builder = DocumentBuilder(processor, namer)
    ingested = "2026-11-25T12:00:00.000000Z"
    builder.begin(NOW, ingested)
    process = processor.process

    def reference(value: bytes) -> list[bytes]:
        out = []
        for record in decode_lines(value):
            doc = to_document(record, ingested)
            process(record.line, record.ts, NOW).apply(doc)
            out.append(bulk_lines(namer(record), record, doc))
        return out

    fn = reference if reference_path else builder.build_lines
    count = max(1, sum(len(fn(value)) for value in values))  # also warms the caches
    best = float("inf")
    for _ in range(3):  # the best of three: the least disturbed by other processes
        cpu = time.process_time()
        for value in values:
            fn(value)
        best = min(best, time.process_time() - cpu)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    settings = ProcessingSettings(presets=["nginx_access", "syslog_rfc3164"])
    processor = Processor(settings)
    agent_ts = "2026-11-25T11:59:59.123456789Z"
    lines = make_lines(args.records, args.seed)
    print(f"Processor.process, {args.records} lines, parsers={settings.parsers}, "
          f"presets={settings.presets}, python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    # A yardstick for this machine: the field notes put orjson.loads near 2 µs a small record.
    json_lines = lines["json"]
    started = time.perf_counter()
    for line in json_lines:
        orjson.loads(line)
    print(f"  (orjson.loads alone on the JSON lines: "
          f"{(time.perf_counter() - started) / max(1, len(json_lines)) * 1e6:.2f} µs/record)")
    for name in ("mix", *KINDS):
        batch = lines[name]
        mean_bytes = sum(len(line) for line in batch) / max(1, len(batch))
        wall, cpu = cost_us(processor, batch, agent_ts)
        print(f"  {name:<7} {len(batch):>7} lines  {mean_bytes:4.0f} B/line  "
              f"{wall:6.2f} µs/line  ({cpu:5.2f} µs CPU)")
    print("indexer per-line path on the mix as wire records (CPU µs/line, best of 3):")
    for k8s in (False, True):
        batched = wire_records(lines["mix"], k8s, 2)
        v2 = pipeline_cost_us(processor, batched)
        v1 = pipeline_cost_us(processor, wire_records(lines["mix"], k8s, 1))
        reference = pipeline_cost_us(processor, batched, reference_path=True)
        print(f"  {'container + k8s' if k8s else 'plain file':<15}  build_lines v2 {v2:6.2f}"
              f"   v1 {v1:6.2f}   reference path (v2) {reference:6.2f}  "
              f"({reference / v2:.2f}x)")


if __name__ == "__main__":
    main()

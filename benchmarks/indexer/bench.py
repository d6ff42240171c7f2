"""Indexer benchmark: Kafka -> OpenSearch, the logferry indexer against a raw bulk loader (the
node's ceiling: logferry's documents pre-built; and minimal ones) and a naive consumer written
the usual way, on the same topic in one run.

Run: ``python -m benchmarks.indexer.bench [--records N]`` (default 200,000). One 3-partition
topic is filled once with N log lines in wire v2 records (a few hundred consecutive lines of one
file each, as the agent writes them); each loader then reads all of it into its own fresh
index prefix (same index template, so the same mapping and refresh interval for all three)
and the index must hold exactly N documents afterwards. Each loader is a separate process: CPU
from ``wait4``, peak RSS from VmHWM.

Timing: the raw loader from its first POST to its last response (its bodies are built before);
the two consumers from the moment the group gave them their partitions (logged by both) to the
last offset committed, so that neither's start-up (imports, joining the group: about a second)
counts as throughput. The time from process start is kept in the results and notes, and CPU is
the whole process's either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks._data import FastRandom, json_line, plain_line
from benchmarks._harness import (
    PYTHON,
    RESULTS_DIR,
    Child,
    CpuMeter,
    Endpoints,
    KafkaTool,
    Usage,
    bench_stack,
    load1,
    machine,
    num,
    quiet_client_logs,
    split_cores,
    table,
    times,
    wait_until,
    write_results,
)

FILES = 24           # distinct source files (fid) in the generated records
DAY = "2025-01-15"   # every record's date: one daily index per loader

# The ceiling of #5's target is the node's rate for the documents the indexer must write; the
# minimal ones show what those documents cost the node on top.
RAW = "raw _bulk loader, minimal docs"
RAW_LF = "raw _bulk loader, logferry docs (ceiling)"
NAIVE = "naive consumer (streaming_bulk)"
LOGFERRY = "logferry indexer"
LOGFERRY_FIELDS = "logferry indexer, attributes as fields"


# -- the topic ---------------------------------------------------------------------------------

def generate_records(n: int, seed: int = 42) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of wire v2 records holding ``n`` lines in all: half JSON
    application log lines, half plain/nginx lines, 100-600 bytes, from FILES files with
    distinct fid and byte offsets, each file's lines packed as the agent packs them."""
    from benchmarks.indexer._pack import pack
    from logferry.wire import batch_head

    rng = FastRandom(seed)
    apps = ("checkout", "orders", "payments", "nginx", "auth", "inventory")
    fids = [f"803:{0x1a2b00 + i:x}:{rng.getrandbits(64):016x}" for i in range(FILES)]
    paths = [f"/var/log/{apps[i % 6]}/{apps[i % 6]}-{i}.log" for i in range(FILES)]
    hosts = [f"node-{i % 4}" for i in range(FILES)]
    offsets = [0] * FILES
    # per file: its lines' timestamps, offsets and text
    columns: list[tuple[list[str], list[int], list[str]]] = [([], [], []) for _ in range(FILES)]
    t_us = 10 * 3600 * 10**6
    for k in range(n):
        i = k % FILES
        t_us += rng.randint(1, 200)
        secs, us = divmod(t_us, 10**6)
        hh, rem = divmod(secs % 86400, 3600)
        ts = f"{DAY}T{hh:02d}:{rem // 60:02d}:{rem % 60:02d}.{us:06d}Z"
        target = rng.randint(100, 600)
        line = json_line(rng, ts, target) if k % 2 == 0 else plain_line(rng, ts, target)
        stamps, offs, lines = columns[i]
        stamps.append(ts)
        offs.append(offsets[i])
        lines.append(line)
        offsets[i] += len(line.encode()) + 1
    return [(i % 3, fids[i].encode(), value) for i in range(FILES)
            for value in pack(batch_head(hosts[i], "file", paths[i], fids[i]), *columns[i])]


async def _produce(brokers: str, topic: str, records: list[tuple[int, bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks="all", compression_type="zstd",
                                linger_ms=20, max_batch_size=1024 * 1024,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for partition, key, value in records:
            by_partition.setdefault(partition, []).append((key, value))
        futures = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    batch.close()
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def fill_topic(ep: Endpoints, kafka: KafkaTool, topic: str,
               records: list[tuple[int, bytes, bytes]], lines: int) -> dict[str, Any]:
    n = len(records)
    t1 = time.monotonic()
    kafka.create_topic(topic)
    asyncio.run(_produce(ep.brokers, topic, records))
    count = kafka.count(topic)
    if count != n:
        raise RuntimeError(f"topic {topic} holds {count} records after filling, expected {n}")
    value_bytes = sum(len(v) for _, _, v in records)
    print(f"  topic {topic}: {lines:,} lines in {n:,} records, {value_bytes / 2**20:.1f} MiB "
          f"of values (produced in {time.monotonic() - t1:.1f}s)", flush=True)
    return {"topic": topic, "records": n, "lines": lines,
            "value_mib": round(value_bytes / 2**20, 1)}


# -- OpenSearch helpers ------------------------------------------------------------------------

def _client(url: str) -> Any:
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[url], timeout=120)


def install_template(url: str, prefix: str) -> None:
    """The same index template the logferry indexer installs for its own prefix."""
    from indexer.sinks.template import index_template
    from logferry.config import OpenSearchSettings

    body = index_template(OpenSearchSettings(urls=[url], index_prefix=prefix))
    client = _client(url)
    try:
        client.indices.put_index_template(name=prefix, body=body)
    finally:
        client.close()


def count_docs(url: str, prefix: str) -> int:
    params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
    client = _client(url)
    try:
        client.indices.refresh(index=f"{prefix}-*", params=params)
        return int(client.count(index=f"{prefix}-*", params=params)["count"])
    finally:
        client.close()


def drop_prefix(url: str, prefix: str) -> None:
    client = _client(url)
    try:
        with contextlib.suppress(Exception):
            client.indices.delete(index=f"{prefix}-*",
                                  params={"ignore_unavailable": "true",
                                          "allow_no_indices": "true"})
        with contextlib.suppress(Exception):
            client.indices.delete_index_template(name=prefix)
    finally:
        client.close()


WARM_WINDOW_BODIES = 10     # 50,000 documents per measured warm-up window
WARM_MIN_DOCS = 400_000     # a cold node was still speeding up after 150,000
WARM_MAX_S = 150.0


def warm_up(url: str, prefix: str, values: list[bytes]) -> list[float]:
    """Bulk-load throwaway indices until the node's rate is stable: a cold JVM indexes at half
    speed for its first few hundred thousand documents, which would penalise whichever loader
    runs first. The windows alternate both raw loaders' bodies, minimal documents and
    logferry's (fresh ids in each pass): warming on minimal documents alone left the code
    paths of the other field types (the flat_object of parsed fields, dates, keywords) cold,
    and the runs that followed were up to 1.5x slower than the same runs at the end. Returns
    the docs/s of each window."""
    from benchmarks.indexer.raw_loader import build_bodies, build_logferry_bodies, post_all

    install_template(url, prefix)

    def bodies() -> Iterator[bytes]:  # endless: each pass writes a new index, so ids are new
        for run in itertools.count():
            minimal = build_bodies(values, f"{prefix}-p{run}")
            full = build_logferry_bodies(values, f"{prefix}-q{run}")
            for pair in zip(minimal, full, strict=False):
                yield from pair

    stream = bodies()
    rates: list[float] = []
    t_start = time.monotonic()
    done = 0
    try:
        while True:
            window = list(itertools.islice(stream, WARM_WINDOW_BODIES))
            t0 = time.monotonic()
            created, failed, reasons = asyncio.run(post_all(url, window))
            if failed:
                raise RuntimeError(f"warm-up bulk failed: {reasons}")
            rates.append(created / (time.monotonic() - t0))
            done += created
            stable = (len(rates) >= 2 and done >= WARM_MIN_DOCS
                      and abs(rates[-1] - rates[-2]) <= 0.1 * rates[-2])
            if stable or time.monotonic() - t_start > WARM_MAX_S:
                return rates
    finally:
        drop_prefix(url, prefix)


# -- the loaders -------------------------------------------------------------------------------

def _result(name: str, n: int, wall_s: float, cpu_s: float, usage: Usage, docs_in_index: int,
            **extra: Any) -> dict[str, Any]:
    if "wall_s_from_start" in extra:
        extra["docs_per_s_from_start"] = n / extra["wall_s_from_start"]
    return {"loader": name, "measured": True, "docs": n, "wall_s": round(wall_s, 3),
            "docs_per_s": n / wall_s, "cpu_s": round(cpu_s, 3),
            "peak_rss_mib": round(usage.peak_rss_mib, 1),
            "ru_maxrss_mib": round(usage.ru_maxrss_mib, 1), "docs_in_index": docs_in_index,
            "count_ok": docs_in_index == n, **extra}


def _ready_at(log_path: Path) -> float | None:
    """When a consumer had its partitions (wall clock): the naive consumer's
    ``{"assigned_at": ...}`` line, or the logferry indexer's "partitions assigned" log line.

    The consumers are timed from there, as the raw loader is timed from its first POST: what
    comes before (imports, joining the group) is start-up, not throughput. Both figures are
    kept: the time from process start too."""
    for raw in log_path.read_bytes().splitlines():
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(rec, dict):
            continue
        if "assigned_at" in rec:
            return float(rec["assigned_at"])
        if rec.get("msg") == "partitions assigned":
            return datetime.fromisoformat(str(rec["ts"]).replace("Z", "+00:00")).timestamp()
    return None


def _not_measured(name: str, reason: str) -> dict[str, Any]:
    print(f"  {name}: not measured: {reason}", flush=True)
    return {"loader": name, "measured": False, "reason": reason}


def run_raw(ep: Endpoints, topic: str, n: int, prefix: str, work: Path, k: int,
            docs: str = "minimal") -> dict[str, Any]:
    """The raw loader with minimal documents (the node's ceiling), or with the documents the
    logferry indexer writes (the ceiling for those: what logferry would reach if its own work
    cost nothing). ``k``: which of the loader's runs this is."""
    name = RAW if docs == "minimal" else RAW_LF
    install_template(ep.opensearch_url, prefix)
    result_file = work / f"raw-{docs}-{k}-result.json"
    load = load1()
    meter = CpuMeter(ep.pids)
    child = Child([PYTHON, "-m", "benchmarks.indexer.raw_loader", "--brokers", ep.brokers,
                   "--topic", topic, "--url", ep.opensearch_url, "--prefix", prefix,
                   "--records", str(n), "--result", str(result_file), "--docs", docs,
                   "--service-pids", ",".join(f"{k}={v}" for k, v in ep.pids.items())],
                  work / f"raw-{docs}-{k}.log")
    usage = child.wait(max(600.0, n / 200))
    if usage.returncode != 0 or not result_file.exists():
        return _not_measured(name, f"exited {usage.returncode}: {child.log_tail(5)}")
    res = orjson.loads(result_file.read_bytes())
    count = count_docs(ep.opensearch_url, prefix)
    meter.stop(usage.cpu_s)
    return _result(name, n, res["post_s"], res["cpu_post_s"], usage, count, cpu=res["cpu"],
                   loadavg_1m_before=load, failed_items=res["failed"],
                   failures=res["failures"], prebuild_s=round(res["read_s"] + res["build_s"], 2),
                   body_mib=round(res["body_mib"], 1),
                   timed="POST phase only (bodies pre-built); CPU s = that phase",
                   process_cpu_s=round(usage.cpu_s, 2), run=k)


def run_naive(ep: Endpoints, topic: str, n: int, prefix: str, group: str,
              work: Path, k: int) -> dict[str, Any]:
    install_template(ep.opensearch_url, prefix)
    load = load1()
    meter = CpuMeter(ep.pids)
    child = Child([PYTHON, "-m", "benchmarks.indexer.naive_consumer", "--brokers", ep.brokers,
                   "--topic", topic, "--group", group, "--url", ep.opensearch_url,
                   "--prefix", prefix, "--records", str(n)], work / f"naive-{k}.log")
    usage = child.wait(max(600.0, n / 100))
    if usage.returncode != 0:
        return _not_measured(NAIVE, f"exited {usage.returncode}: {child.log_tail(5)}")
    ready = _ready_at(child.log_path)
    if ready is None:
        return _not_measured(NAIVE, "it printed no assignment time")
    docs = count_docs(ep.opensearch_url, prefix)
    return _result(NAIVE, n, child.t0_wall + usage.wall_s - ready, usage.cpu_s, usage, docs,
                   cpu=meter.stop(usage.cpu_s), loadavg_1m_before=load,
                   wall_s_from_start=round(usage.wall_s, 3),
                   timed="partitions assigned -> exit after N docs indexed and committed; "
                         "CPU s = whole process", run=k)


def run_logferry(ep: Endpoints, kafka: KafkaTool, topic: str, n: int, prefix: str,
                 group: str, dead_letter: str, work: Path, k: int,
                 attributes_mapping: str = "flat_object") -> dict[str, Any]:
    """The indexer with its defaults, or with ``attributes_mapping = "fields"``."""
    name = LOGFERRY if attributes_mapping == "flat_object" else LOGFERRY_FIELDS
    conf = work / f"indexer-{attributes_mapping}-{k}.json"
    conf.write_bytes(orjson.dumps({
        "log_level": "info",
        "kafka": {"brokers": [ep.brokers], "topic": topic},
        "opensearch": {"urls": [ep.opensearch_url], "index_prefix": prefix,
                       "attributes_mapping": attributes_mapping},
        "indexer": {"group_id": group, "dead_letter_topic": dead_letter},
    }))
    end = kafka.end_offsets(topic)
    load = load1()
    meter = CpuMeter(ep.pids)
    child = Child([PYTHON, "-m", "logferry.cli", "indexer", "run", "--config", str(conf)],
                  work / f"logferry-indexer-{attributes_mapping}-{k}.log")

    def _committed_all() -> bool:
        committed = kafka.committed(group)
        return all(committed.get(tp, -1) >= off for tp, off in end.items())

    done = wait_until(_committed_all, max(600.0, n / 100), 0.2, child)
    usage = child.stop()
    if done is None:
        return _not_measured(name, f"offsets never fully committed (exit "
                                       f"{usage.returncode}): {child.log_tail(8)}")
    ready = _ready_at(child.log_path)
    if ready is None:
        return _not_measured(name, "no \"partitions assigned\" line in its log")
    docs = count_docs(ep.opensearch_url, prefix)
    dead = kafka.count(dead_letter) if kafka.partitions(dead_letter) else 0
    return _result(name, n, child.t0_wall + done - ready, usage.cpu_s, usage, docs,
                   cpu=meter.stop(usage.cpu_s), loadavg_1m_before=load,
                   dead_lettered=dead, exit_code=usage.returncode,
                   wall_s_from_start=round(done, 3),
                   timed="partitions assigned -> group's committed offsets == topic end "
                         "offsets; CPU s = whole process", run=k)


# -- the run -----------------------------------------------------------------------------------

def run(ep: Endpoints, records: int, split: bool = False, cycles: int = 2) -> dict[str, Any]:
    """The whole indexer benchmark: every loader ``2 * cycles`` times. With ``split``,
    OpenSearch runs alone on one CPU and everything else on the others (see
    :func:`split_cores`)."""
    if cycles < 1:
        raise ValueError(f"cycles must be 1 or more, not {cycles}")
    with split_cores(ep.pids) if split else contextlib.nullcontext({}) as cores:
        results = _run(ep, records, cycles)
    results["cores"] = cores
    results["results_file"] = str(write_results("indexer", results))
    return results


def _run(ep: Endpoints, records: int, cycles: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic = f"bench-indexer-{tag}"
    dead_letter = f"bench-indexer-dlq-{tag}"
    runs = range(1, 2 * cycles + 1)
    prefixes = {f"{kind}{k}": f"bench-{kind}{k}-{tag}" for k in runs
                for kind in ("raw", "rawlf", "naive", "logferry", "fields")}
    prefixes["warm"] = f"bench-warm-{tag}"
    dead_letters = [f"{dead_letter}-{kind}{k}" for k in runs for kind in ("lf", "lff")]
    results: dict[str, Any] = {"benchmark": "indexer", "records": records, "cycles": cycles,
                               "brokers": ep.brokers, "opensearch": ep.opensearch_url,
                               "machine": machine(), "loaders": []}
    with tempfile.TemporaryDirectory(prefix="logferry-bench-indexer-") as tmp, \
            KafkaTool(ep.brokers) as kafka:
        work = Path(tmp)
        try:
            print("indexer bench: filling the topic ...", flush=True)
            generated = generate_records(records)
            results["topic"] = fill_topic(ep, kafka, topic, generated, records)
            print("indexer bench: warming up OpenSearch ...", flush=True)
            rates = warm_up(ep.opensearch_url, prefixes["warm"], [v for _, _, v in generated])
            del generated
            results["warm_up_docs_per_s"] = [round(r) for r in rates]
            print(f"  docs/s per {WARM_WINDOW_BODIES * 5000:,}-doc window: "
                  f"{', '.join(f'{r:,.0f}' for r in rates)}", flush=True)
            # Each load is dropped once counted: the node's cost per document grows with the
            # indices it holds (refreshes, merges), and each loader should meet the same node.
            drop_prefix(ep.opensearch_url, prefixes["warm"])
            _settle(ep.opensearch_url)  # the warm-up's merges, as between loaders

            def plan(k: int) -> list[tuple[str, str, Callable[[], dict[str, Any]]]]:
                """(loader, its index prefix, how to run it) for run ``k``."""
                p = {kind: prefixes[f"{kind}{k}"]
                     for kind in ("raw", "rawlf", "naive", "logferry", "fields")}
                return [
                    (RAW, p["raw"], lambda: run_raw(ep, topic, records, p["raw"], work, k)),
                    (RAW_LF, p["rawlf"], lambda: run_raw(ep, topic, records, p["rawlf"], work,
                                                         k, docs="logferry")),
                    (NAIVE, p["naive"], lambda: run_naive(ep, topic, records, p["naive"],
                                                          f"bench-naive{k}-{tag}", work, k)),
                    (LOGFERRY, p["logferry"], lambda: run_logferry(
                        ep, kafka, topic, records, p["logferry"], f"bench-lf{k}-{tag}",
                        f"{dead_letter}-lf{k}", work, k)),
                    (LOGFERRY_FIELDS, p["fields"], lambda: run_logferry(
                        ep, kafka, topic, records, p["fields"], f"bench-lff{k}-{tag}",
                        f"{dead_letter}-lff{k}", work, k, attributes_mapping="fields")),
                ]

            # The node's rate drifts during a run (the JIT, the shared machine's CPU speed,
            # other load; usually upwards): every loader runs twice per cycle, in mirrored
            # order (A B C D E E D C B A), and all its runs count together, so that a steady
            # drift favours none of them.
            order = [(k, step) for c in range(cycles)
                     for k, steps in ((2 * c + 1, plan(2 * c + 1)),
                                      (2 * c + 2, plan(2 * c + 2)[::-1]))
                     for step in steps]
            for k, (name, prefix, runner) in order:
                print(f"indexer bench: {name}, run {k} ...", flush=True)
                res = runner()
                res["run"] = k  # also on a run that was not measured
                drop_prefix(ep.opensearch_url, prefix)
                if res.get("measured"):
                    print(f"  {res['wall_s']:.2f}s, {res['docs_per_s']:,.0f} docs/s, "
                          f"CPU {res['cpu_s']:.2f}s, index holds {res['docs_in_index']:,}",
                          flush=True)
                results["loaders"].append(res)
                _settle(ep.opensearch_url)
        finally:
            for prefix in prefixes.values():
                drop_prefix(ep.opensearch_url, prefix)
            kafka.delete_topics([topic, *dead_letters])
            _keep_logs(work)
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["summary"] = _summarize(results["loaders"])
    return results


def _settle(url: str, timeout_s: float = 30.0) -> None:
    """Wait (bounded) until the node has no merges running, so one loader's background work
    does not land in the next loader's time."""
    client = _client(url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = client.nodes.stats(metric="indices", params={"filter_path":
                                                                 "nodes.*.indices.merges"})
            current = sum(n["indices"]["merges"]["current"]
                          for n in stats.get("nodes", {}).values())
            if current == 0:
                return
            time.sleep(0.5)
    except Exception:  # noqa: BLE001 - settling is best effort
        return
    finally:
        client.close()


def _keep_logs(work: Path) -> None:
    dest = RESULTS_DIR / "logs" / "indexer"
    dest.mkdir(parents=True, exist_ok=True)
    for log in work.glob("*.log"):
        with contextlib.suppress(OSError):
            shutil.copyfile(log, dest / log.name)


def _summarize(loaders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each loader's runs taken together (total documents over total time) and its ratios
    to the references taken the same way; returns one summary per loader, in run order.

    In the mirrored order (A B C D E E D C B A) a steady drift of the node's speed, which is
    usually upwards, cancels out of the sum of each loader's times. The better run of each
    would not cancel it: it favours the loaders whose runs sit at the ends, the raw loaders,
    over the ones in the middle. A run that was not measured is left out (``runs`` says how
    many counted)."""
    summary: dict[str, dict[str, Any]] = {}
    for r in loaders:
        if not r.get("measured"):
            continue
        s = summary.setdefault(r["loader"], {"loader": r["loader"], "runs": 0, "docs": 0,
                                             "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mib": 0.0,
                                             "runs_docs_per_s": []})
        s["runs"] += 1
        s["docs"] += r["docs"]
        s["wall_s"] += r["wall_s"]
        s["cpu_s"] += r["cpu_s"]
        s["peak_rss_mib"] = max(s["peak_rss_mib"], r["peak_rss_mib"])
        s["runs_docs_per_s"].append(r["docs_per_s"])
    for s in summary.values():
        s["docs_per_s"] = s["docs"] / s["wall_s"] if s["wall_s"] > 0 else 0.0
        s["cpu_s_per_run"] = s["cpu_s"] / s["runs"]
    raw, raw_lf, naive = (summary[name]["docs_per_s"] if name in summary else None
                          for name in (RAW, RAW_LF, NAIVE))
    for s in summary.values():
        s["ratio_to_raw"] = s["docs_per_s"] / raw if raw else None
        s["ratio_to_raw_logferry_docs"] = s["docs_per_s"] / raw_lf if raw_lf else None
        s["ratio_to_naive"] = s["docs_per_s"] / naive if naive else None
    return list(summary.values())


def format_results(results: dict[str, Any]) -> str:
    topic = results.get("topic") or {}
    head = (f"INDEXER: {results['records']:,} lines in {topic.get('records', 0):,} wire v2 "
            f"records ({topic.get('value_mib', '?')} MiB) "
            f"from one 3-partition topic -> OpenSearch {results['opensearch']}, fresh index "
            f"per loader, same template; {results['machine']['cpus']} CPUs, load avg "
            f"{results['machine']['loadavg'][0]:.2f} at start")
    cores = results.get("cores") or {}
    if cores:
        head += (f"\nsplit cores: OpenSearch alone on CPU {cores['opensearch']}, Kafka and the "
                 f"loaders on {cores['others']} (as if the node had machines of its own)")
    rows: list[list[str]] = []
    notes: list[str] = []
    for r in results["loaders"]:
        label = f"{r['loader']} #{r.get('run', 1)}"
        if not r.get("measured"):
            rows.append([label, "-", "-", "-", "-", "-", "-", "-", "not measured"])
            notes.append(f"  {label}: not measured: {r['reason']}")
            continue
        check = "ok" if r["count_ok"] else f"{r['docs_in_index']:,} != N"
        cpu = r.get("cpu") or {}
        rows.append([label, num(r["docs"]), num(r["wall_s"], 2), num(r["docs_per_s"]),
                     num(r["cpu_s"], 2), num(r["peak_rss_mib"], 1),
                     num(cpu.get("services_cpu_s", {}).get("opensearch"), 1),
                     num(cpu.get("other_cores"), 2), check])
    out = [head, "each run:", table(["loader", "docs", "wall s", "docs/s", "CPU s",
                                     "peak RSS MiB", "OpenSearch CPU s", "others' cores",
                                     "index count"], rows)]
    summary_rows = [[s["loader"], str(s["runs"]),
                     " / ".join(num(x) for x in s["runs_docs_per_s"]), num(s["docs_per_s"]),
                     num(s["cpu_s_per_run"], 2), num(s["peak_rss_mib"], 1),
                     times(s["ratio_to_raw"]), times(s["ratio_to_raw_logferry_docs"]),
                     times(s["ratio_to_naive"])]
                    for s in results.get("summary", [])]
    out += ["each loader, its runs together (docs / wall s of all):",
            table(["loader", "runs", "docs/s of each run", "docs/s", "CPU s per run",
                   "peak RSS MiB", "to raw minimal", "to raw lf docs", "ratio to naive"],
                  summary_rows)]
    cycles = results.get("cycles", 1)
    repeated = f", {cycles} times over" if cycles > 1 else ""
    out.append(f"  #1, #2{', ...' if cycles > 1 else ''}: each loader ran {2 * cycles} times, "
               f"in mirrored order (A B C D E E D C B A{repeated}); the ratios divide the "
               "total documents of its runs by their total time, so a steady drift of the "
               "node's speed cancels out")
    for r in results["loaders"]:
        label = f"{r['loader']} #{r.get('run', 1)}"
        if r.get("measured") and r["loader"] in (RAW, RAW_LF):
            out.append(f"  {label}: timed the POST phase only; {r['body_mib']} MiB of "
                       f"NDJSON pre-built in {r['prebuild_s']}s; its RSS holds all bodies")
        if r.get("measured") and "wall_s_from_start" in r:
            out.append(f"  {label}: timed from its partitions assigned; from process "
                       f"start {r['wall_s_from_start']:.2f}s, "
                       f"{r['docs_per_s_from_start']:,.0f} docs/s; CPU s = whole process")
        if r.get("measured") and r.get("dead_lettered"):
            out.append(f"  {label}: {r['dead_lettered']:,} lines dead-lettered")
    out.extend(notes)
    out.append(f"results: {results['results_file']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.indexer.bench",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000,
                        help="log lines (= documents) in the topic, in wire v2 records of "
                        "a few hundred lines (default 200,000)")
    parser.add_argument("--split-cores", action="store_true",
                        help="OpenSearch alone on one CPU, Kafka and the loaders on the others")
    parser.add_argument("--cycles", type=int, default=2,
                        help="mirrored cycles (A B C D E E D C B A): each loader runs twice "
                             "per cycle (default 2)")
    args = parser.parse_args(argv)
    quiet_client_logs()
    with bench_stack() as ep:
        results = run(ep, args.records, split=args.split_cores, cycles=args.cycles)
    print()
    print(format_results(results))


if __name__ == "__main__":
    main()

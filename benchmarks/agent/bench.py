"""Agent benchmark: file -> Kafka, logferry agent against kcat (librdkafka) and, where it
installs, rsyslog (imfile + omkafka), on the same broker in one run.

Run: ``python -m benchmarks.agent.bench [--lines N]`` (default 1,000,000). One file of kubelet
CRI lines is generated once (cached under ``.logferry/bench/data``) and every tool produces it
into a fresh 3-partition topic; the topic must then hold exactly N lines (one record each for
the peers; logferry's wire v2 records hold many). Each tool is a
separate process: CPU and peak RSS come from ``wait4``. A second run feeds the logferry agent
a file growing at 50,000 lines/s for 20 s and samples its resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from benchmarks._data import FastRandom, json_line, plain_line, stack_lines
from benchmarks._harness import (
    PYTHON,
    RESULTS_DIR,
    ROOT,
    Child,
    CpuMeter,
    Endpoints,
    KafkaTool,
    RssSampler,
    Usage,
    bench_stack,
    load1,
    machine,
    num,
    paused,
    quiet_client_logs,
    table,
    times,
    wait_until,
    write_results,
)

DATA_VERSION = 1
STEADY_RATE = 50_000      # lines/s appended during the steady-state memory run
STEADY_SECONDS = 20.0
STEADY_TICK_S = 0.02
RSS_INTERVAL_S = 0.5
KAFKA_OPTS = ("-X", "linger.ms=20", "-X", "batch.size=1000000")

# -- realistic kubelet CRI lines ---------------------------------------------------------------


def generate_cri(path: Path, lines: int, seed: int = 20250115) -> None:
    """``lines`` CRI lines: 100-500 byte messages (JSON app logs, plain text, nginx access
    lines, stack traces line by line), about 2% of them P pieces each followed by an F."""
    rng = FastRandom(seed)
    t_ns = 1_736_935_200 * 10**9  # 2025-01-15T10:00:00Z
    out: list[str] = []
    written = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        while written < lines:
            t_ns += rng.randrange(5_000, 60_000)
            secs, ns = divmod(t_ns, 10**9)
            hh, rem = divmod(secs % 86400, 3600)
            mm, ss = divmod(rem, 60)
            ts = f"2025-01-15T{hh:02d}:{mm:02d}:{ss:02d}.{ns:09d}Z"
            stream = "stdout" if rng.random() < 0.85 else "stderr"
            roll = rng.random()
            if roll < 0.02:  # a long line the runtime split: P pieces, then the final F
                sizes = [rng.randint(300, 500) for _ in range(rng.randint(1, 2))]
                sizes.append(rng.randint(100, 500))
                text = plain_line(rng, ts, sum(sizes))
                pos = 0
                for i, size in enumerate(sizes):
                    tag = "F" if i == len(sizes) - 1 else "P"
                    out.append(f"{ts} {stream} {tag} {text[pos:pos + size]}")
                    pos += size
            elif roll < 0.52:
                out.append(f"{ts} stdout F {json_line(rng, ts, rng.randint(100, 500))}")
            elif roll < 0.97:
                out.append(f"{ts} {stream} F {plain_line(rng, ts, rng.randint(100, 500))}")
            else:
                out.extend(f"{ts} stderr F {m}" for m in stack_lines(rng))
            if len(out) >= 20_000 or written + len(out) >= lines:
                take = out[:lines - written]
                f.write("\n".join(take) + "\n")
                written += len(take)
                out = []
    tmp.rename(path)


def data_file(lines: int) -> Path:
    """The CRI file for ``lines`` lines, generated on first use and reused afterwards."""
    path = RESULTS_DIR / "data" / f"cri-{lines}-v{DATA_VERSION}.log"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        print(f"generating {lines:,} CRI lines -> {path}", flush=True)
        generate_cri(path, lines)
        print(f"  done in {time.monotonic() - t0:.1f}s ({path.stat().st_size / 2**20:.1f} MiB)",
              flush=True)
    return path


# -- the tools ---------------------------------------------------------------------------------

def _result(tool: str, lines: int, wall_s: float, usage: Usage, topic_count: int,
            expected: int | None = None, **extra: Any) -> dict[str, Any]:
    """One row. ``expected``: records the topic must hold (default: one per line)."""
    expected = lines if expected is None else expected
    return {"tool": tool, "measured": True, "lines": lines, "wall_s": round(wall_s, 3),
            "lines_per_s": lines / wall_s, "cpu_s": round(usage.cpu_s, 3),
            "lines_per_cpu_s": lines / usage.cpu_s if usage.cpu_s else None,
            "peak_rss_mib": round(usage.peak_rss_mib, 1),
            "ru_maxrss_mib": round(usage.ru_maxrss_mib, 1), "topic_count": topic_count,
            "records_expected": expected, "count_ok": topic_count == expected, **extra}


def _not_measured(tool: str, reason: str) -> dict[str, Any]:
    print(f"  {tool}: not measured: {reason}", flush=True)
    return {"tool": tool, "measured": False, "reason": reason}


def ensure_package(binary: str, packages: list[str]) -> str | None:
    """Path of ``binary``, installing Debian ``packages`` with apt-get if missing; None (and
    the reason printed) if that fails."""
    found = shutil.which(binary)
    if found:
        return found
    if shutil.which("apt-get") is None:
        print(f"  {binary} missing and apt-get not available", flush=True)
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", *packages]
    print(f"  {binary} missing: {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(f"  cannot install {' '.join(packages)}: "
              f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}", flush=True)
        return None
    return shutil.which(binary)


def run_kcat(ep: Endpoints, kafka: KafkaTool, data: Path, lines: int, topic: str,
             work: Path) -> dict[str, Any]:
    tool = "kcat (librdkafka)"
    kcat = ensure_package("kcat", ["kcat"])
    if kcat is None:
        return _not_measured(tool, "kcat not installed and apt-get install kcat failed")
    kafka.create_topic(topic)
    load = load1()
    meter = CpuMeter(ep.pids)
    child = Child([kcat, "-P", "-b", ep.brokers, "-t", topic, "-z", "zstd", *KAFKA_OPTS,
                   "-l", str(data)], work / "kcat.log")
    usage = child.wait(max(300.0, lines / 2000))
    count = kafka.count(topic)
    if usage.returncode != 0:
        return _not_measured(tool, f"kcat exited {usage.returncode}: {child.log_tail(5)}")
    return _result(tool, lines, usage.wall_s, usage, count, cpu=meter.stop(usage.cpu_s),
                   loadavg_1m_before=load, done_when="kcat exited (all delivery reports in)")


_RSYSLOG_CONF = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="omkafka")
template(name="line" type="string" string="%msg%")
ruleset(name="tokafka") {{
  action(type="omkafka" broker=["{brokers}"] topic="{topic}" template="line"
         confParam=["compression.codec=zstd", "linger.ms=20", "batch.size=1000000"])
}}
input(type="imfile" file="{file}" tag="bench" ruleset="tokafka" freshStartTail="off")
"""


def run_rsyslog(ep: Endpoints, kafka: KafkaTool, data: Path, lines: int, topic: str,
                work: Path) -> dict[str, Any]:
    tool = "rsyslog (imfile+omkafka)"
    rsyslogd = shutil.which("rsyslogd")
    if rsyslogd is None or not _has_omkafka():
        rsyslogd = ensure_package("rsyslogd", ["rsyslog", "rsyslog-kafka"])
    if rsyslogd is None or not _has_omkafka():
        return _not_measured(tool, "rsyslog + rsyslog-kafka (omkafka) could not be installed")
    rwork = work / "rsyslog"
    rwork.mkdir()
    conf = rwork / "rsyslog.conf"
    conf.write_text(_RSYSLOG_CONF.format(work=rwork, brokers=ep.brokers, topic=topic,
                                         file=data))
    check = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True,
                           check=False)
    if check.returncode != 0:
        return _not_measured(tool, f"config rejected: {(check.stderr or check.stdout).strip()}")
    kafka.create_topic(topic)
    load = load1()
    meter = CpuMeter(ep.pids)
    child = Child([rsyslogd, "-n", "-f", str(conf), "-i", str(rwork / "rsyslogd.pid")],
                  work / "rsyslog.log")
    done = wait_until(lambda: kafka.count(topic) >= lines, max(120.0, lines / 5000), 0.1, child)
    usage = child.stop()
    count = kafka.count(topic)
    if done is None:
        return _not_measured(tool, f"topic held {count:,} of {lines:,} records when it stopped "
                                   f"or timed out; log: {child.log_tail(5)}")
    return _result(tool, lines, done, usage, count, cpu=meter.stop(usage.cpu_s),
                   loadavg_1m_before=load, done_when="topic held N records (polled each 0.1s)")


def _has_omkafka() -> bool:
    return any(Path(d).glob("rsyslog/omkafka.so") for d in ("/usr/lib/x86_64-linux-gnu",
                                                            "/usr/lib/aarch64-linux-gnu",
                                                            "/usr/lib"))


def agent_config(ep: Endpoints, topic: str, include: Path | None, state_dir: Path,
                 path: Path, containers_root: Path | None = None) -> Path:
    """The agent's config: tail ``include`` as a plain file, or (``containers_root``) read the
    kubelet layout below it as container logs (CRI parsed, P pieces joined, pod fields)."""
    agent: dict[str, Any] = {
        "include": [str(include)] if include is not None else [],
        "state_dir": str(state_dir), "start_at": "beginning", "compression": "zstd",
        # Only how often the (tiny) checkpoint is written: lets the harness see the end
        # within 0.2 s instead of 1 s. Batching and linger stay at their defaults.
        "checkpoint_interval_s": 0.2,
    }
    if containers_root is not None:
        agent["containers"] = {"enabled": True, "root": str(containers_root)}
    path.write_bytes(orjson.dumps({
        "log_level": "info",
        "kafka": {"brokers": [ep.brokers], "topic": topic},
        "agent": agent,
    }))
    return path


def checkpoint_offset(state_dir: Path, file: Path) -> int:
    try:
        doc = orjson.loads((state_dir / "checkpoints.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return -1
    return max((int(e["offset"]) for e in doc.get("files", []) if e.get("path") == str(file)),
               default=-1)


def run_logferry(ep: Endpoints, kafka: KafkaTool, data: Path, lines: int, topic: str,
                 work: Path) -> dict[str, Any]:
    """The agent tailing the file as a plain log file: one record per line, like the peers."""
    state = work / "logferry-state"
    conf = agent_config(ep, topic, data, state, work / "agent.json")
    return _run_agent("logferry agent", ep, kafka, conf, state, data, lines, lines, topic,
                      work / "logferry-agent.log")


def run_logferry_containers(ep: Endpoints, kafka: KafkaTool, data: Path, lines: int,
                            topic: str, work: Path) -> dict[str, Any]:
    """The agent reading the same file as a container log (hard-linked into a kubelet-style
    ``<root>/<ns>_<pod>_<uid>/<container>/0.log``): CRI header parsed, each run of P pieces
    joined with its F into one record, pod fields from the path. Fewer records than lines."""
    root = data.parent / f"pods-{uuid.uuid4().hex[:8]}"
    log = root / "shop_checkout-7d4b9c-x2x9q_0f6e3a52-1c1b-4c44-9a51-2f3c9b7e8d10" / "app" / "0.log"
    log.parent.mkdir(parents=True)
    try:
        try:
            os.link(data, log)
        except OSError:
            shutil.copyfile(data, log)
        state = work / "containers-state"
        conf = agent_config(ep, topic, None, state, work / "agent-containers.json",
                            containers_root=root)
        return _run_agent("logferry agent, CRI parsed", ep, kafka, conf, state, log, lines,
                          count_full_lines(data), topic, work / "logferry-agent-containers.log")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def count_full_lines(data: Path) -> int:
    """CRI lines tagged F: the records a CRI-aware reader produces (P pieces join their F)."""
    with data.open("rb") as f:
        return sum(1 for line in f if line.split(b" ", 3)[2] == b"F")


def _run_agent(tool: str, ep: Endpoints, kafka: KafkaTool, conf: Path, state: Path,
               file: Path, lines: int, records: int, topic: str,
               log: Path) -> dict[str, Any]:
    size = file.stat().st_size
    kafka.create_topic(topic)
    load = load1()
    meter = CpuMeter(ep.pids)
    child = Child([PYTHON, "-m", "logferry.cli", "agent", "run", "--config", str(conf)], log)
    done = wait_until(lambda: checkpoint_offset(state, file) == size, max(180.0, lines / 2000),
                      0.1, child)
    usage = child.stop()
    count = kafka.count_lines(topic)
    if done is None:
        return _not_measured(tool, f"checkpoint never reached {size} (topic holds {count:,}); "
                                   f"log: {child.log_tail(8)}")
    return _result(tool, lines, done, usage, count, expected=records,
                   cpu=meter.stop(usage.cpu_s), loadavg_1m_before=load,
                   done_when="checkpoint offset == file size (every line acked by Kafka)",
                   kafka_records=kafka.count(topic), exit_code=usage.returncode)


def run_steady(ep: Endpoints, kafka: KafkaTool, data: Path, topic: str,
               work: Path) -> dict[str, Any]:
    """The agent on a file appended at STEADY_RATE lines/s for STEADY_SECONDS: VmRSS samples."""
    pool = _line_blocks(data, int(STEADY_RATE * STEADY_TICK_S))
    live = work / "steady" / "app.log"
    live.parent.mkdir()
    state = work / "steady-state"
    conf = agent_config(ep, topic, live, state, work / "steady.json")
    kafka.create_topic(topic)
    fd = os.open(live, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    written = _write_block(fd, pool[0])
    child = Child([PYTHON, "-m", "logferry.cli", "agent", "run", "--config", str(conf)],
                  work / "steady-agent.log")
    try:
        first = os.fstat(fd).st_size
        if wait_until(lambda: checkpoint_offset(state, live) == first, 60.0, 0.1,
                      child) is None:
            return _not_measured("steady state", f"agent did not start: {child.log_tail(8)}")
        stop = threading.Event()
        counter = [written]
        writer = threading.Thread(target=_paced_writer, args=(fd, pool, stop, counter),
                                  daemon=True)
        rss = RssSampler()
        cpu0 = child.cpu_now_s() or 0.0
        t0 = time.monotonic()
        writer.start()
        while (elapsed := time.monotonic() - t0) < STEADY_SECONDS:
            rss.sample(child)
            time.sleep(min(RSS_INTERVAL_S, max(0.0, STEADY_SECONDS - elapsed)))
        stop.set()
        writer.join()
        window = time.monotonic() - t0
        cpu1 = child.cpu_now_s() or cpu0
        rss.sample(child)
        size = os.fstat(fd).st_size
        lag_s = wait_until(lambda: checkpoint_offset(state, live) == size, 30.0, 0.1)
        usage = child.stop()
        count = kafka.count_lines(topic)
        lines = counter[0]
        return {"tool": "logferry agent", "measured": True, "rate_target": STEADY_RATE,
                "rate_achieved": round((lines - written) / window),
                "seconds": round(window, 2), "lines": lines, "topic_count": count,
                "count_ok": count == lines, "rss_median_mib": round(rss.median, 1),
                "rss_max_mib": round(rss.max, 1), "rss_samples": len(rss.samples_mib),
                "cpu_fraction_of_core": round((cpu1 - cpu0) / window, 3),
                "caught_up_after_s": None if lag_s is None else round(lag_s, 2),
                "peak_rss_mib": round(usage.peak_rss_mib, 1)}
    finally:
        child.stop()
        os.close(fd)


def _line_blocks(data: Path, lines_per_block: int, max_blocks: int = 200) -> list[bytes]:
    blocks: list[bytes] = []
    with data.open("rb") as f:
        while len(blocks) < max_blocks:
            chunk = [f.readline() for _ in range(lines_per_block)]
            if not chunk[-1]:
                break
            blocks.append(b"".join(chunk))
    return blocks


def _write_block(fd: int, block: bytes) -> int:
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view):]
    return block.count(b"\n")


def _paced_writer(fd: int, pool: list[bytes], stop: threading.Event, counter: list[int]) -> None:
    """Append one block per tick on an absolute schedule (late ticks are caught up)."""
    next_t = time.monotonic()
    i = 1
    while not stop.is_set():
        counter[0] += _write_block(fd, pool[i % len(pool)])
        i += 1
        next_t += STEADY_TICK_S
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


# -- the run -----------------------------------------------------------------------------------

WARM_LINES = 300_000


async def _produce_lines(brokers: str, topic: str, data: Path, limit: int) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks="all", compression_type="zstd",
                                linger_ms=20, max_batch_size=1_000_000)
    await producer.start()
    sent = 0
    try:
        futures: list[asyncio.Future[Any]] = []
        batch = producer.create_batch()
        with data.open("rb") as f:
            for line in f:
                if sent >= limit:
                    break
                if batch.append(key=None, value=line.rstrip(b"\n"), timestamp=None) is None:
                    batch.close()
                    futures.append(await producer.send_batch(batch, topic,
                                                             partition=len(futures) % 3))
                    batch = producer.create_batch()
                    batch.append(key=None, value=line.rstrip(b"\n"), timestamp=None)
                sent += 1
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=len(futures) % 3))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def warm_up_kafka(ep: Endpoints, kafka: KafkaTool, data: Path, topic: str) -> float:
    """Produce the file's first WARM_LINES lines to a throwaway topic, untimed: a cold broker
    JVM would otherwise slow down whichever tool runs first. Returns the seconds it took."""
    kafka.create_topic(topic)
    t0 = time.monotonic()
    asyncio.run(_produce_lines(ep.brokers, topic, data, WARM_LINES))
    return time.monotonic() - t0


def compile_sources() -> None:
    """Byte-compile the project's modules, as an installed agent has them. Where
    PYTHONDONTWRITEBYTECODE is set (as on the dev machines), every agent start would otherwise
    compile them again, ~0.1 CPU-s that a real deployment never pays."""
    import compileall

    for package in ("agent", "logferry", "indexer"):
        compileall.compile_dir(str(ROOT / package), quiet=2)


def run(ep: Endpoints, lines: int, steady: bool = True,
        containers: bool = True) -> dict[str, Any]:
    data = data_file(lines)
    compile_sources()
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"bench-agent-{name}-{tag}" for name in ("warm", "kcat", "rsyslog",
                                                             "logferry", "containers",
                                                             "steady")}
    results: dict[str, Any] = {
        "benchmark": "agent", "lines": lines, "file": str(data),
        "file_bytes": data.stat().st_size, "brokers": ep.brokers, "machine": machine(),
        "tools": [], "steady": None,
    }
    with tempfile.TemporaryDirectory(prefix="logferry-bench-agent-") as tmp, \
            KafkaTool(ep.brokers) as kafka, paused(ep.pids, "opensearch"):
        work = Path(tmp)
        try:
            print("agent bench: warming up Kafka ...", flush=True)
            results["warm_up_s"] = round(warm_up_kafka(ep, kafka, data, topics["warm"]), 2)
            kafka.delete_topics([topics["warm"]])
            for name, runner in (("kcat", run_kcat), ("rsyslog", run_rsyslog),
                                 ("logferry", run_logferry),
                                 ("containers", run_logferry_containers)):
                if name == "containers" and not containers:
                    continue
                print(f"agent bench: {name} ...", flush=True)
                res = runner(ep, kafka, data, lines, topics[name], work)
                if res.get("measured"):
                    print(f"  {res['wall_s']:.2f}s, {res['lines_per_s']:,.0f} lines/s, "
                          f"CPU {res['cpu_s']:.2f}s, topic holds {res['topic_count']:,}",
                          flush=True)
                results["tools"].append(res)
            if steady:
                print(f"agent bench: steady state at {STEADY_RATE:,} lines/s for "
                      f"{STEADY_SECONDS:.0f}s ...", flush=True)
                results["steady"] = run_steady(ep, kafka, data, topics["steady"], work)
        finally:
            kafka.delete_topics(list(topics.values()))
            _keep_logs(work)
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["ratios"] = _ratios(results["tools"])
    results["results_file"] = str(write_results("agent", results))
    return results


def _keep_logs(work: Path) -> None:
    """Copy the tools' logs next to the results, for when a number looks wrong."""
    dest = RESULTS_DIR / "logs" / "agent"
    dest.mkdir(parents=True, exist_ok=True)
    for log in work.glob("*.log"):
        with contextlib.suppress(OSError):
            shutil.copyfile(log, dest / log.name)


def _ratios(tools: list[dict[str, Any]]) -> dict[str, float | None]:
    by = {t["tool"]: t for t in tools if t.get("measured")}
    kcat = by.get("kcat (librdkafka)")
    out: dict[str, float | None] = {}
    for key, name in (("", "logferry agent"), ("cri_", "logferry agent, CRI parsed")):
        ours = by.get(name)
        out[f"{key}lines_per_s"] = out[f"{key}per_core"] = None
        if ours is None or kcat is None:
            continue
        out[f"{key}lines_per_s"] = ours["lines_per_s"] / kcat["lines_per_s"]
        if ours["lines_per_cpu_s"] and kcat["lines_per_cpu_s"]:
            out[f"{key}per_core"] = ours["lines_per_cpu_s"] / kcat["lines_per_cpu_s"]
    return out


def format_results(results: dict[str, Any]) -> str:
    mib = results["file_bytes"] / 2**20
    head = (f"AGENT: {results['lines']:,} CRI lines ({mib:.1f} MiB) -> Kafka {results['brokers']}"
            f", fresh 3-partition topic per tool; {results['machine']['cpus']} CPUs, "
            f"load avg {results['machine']['loadavg'][0]:.2f} at start")
    rows: list[list[str]] = []
    notes: list[str] = []
    for t in results["tools"]:
        if not t.get("measured"):
            rows.append([t["tool"], "-", "-", "-", "-", "-", "-", "-", "-", "not measured"])
            notes.append(f"  {t['tool']}: not measured: {t['reason']}")
            continue
        check = "ok" if t["count_ok"] else f"{t['topic_count']:,} != {t['records_expected']:,}"
        cpu = t.get("cpu") or {}
        rows.append([t["tool"], num(t["lines"]), num(t["wall_s"], 2), num(t["lines_per_s"]),
                     num(t["cpu_s"], 2), num(t["lines_per_cpu_s"]), num(t["peak_rss_mib"], 1),
                     num(cpu.get("services_cpu_s", {}).get("kafka"), 1),
                     num(cpu.get("other_cores"), 2), check])
    out = [head, table(["tool", "lines", "wall s", "lines/s", "CPU s",
                        "lines/CPU-s (per core)", "peak RSS MiB", "Kafka CPU s",
                        "others' cores", "topic count"], rows)]
    r = results.get("ratios") or {}
    out.append(f"logferry / kcat: lines/s {times(r.get('lines_per_s'))}, "
               f"per core used {times(r.get('per_core'))}")
    if r.get("cri_lines_per_s") is not None:
        out.append(f"logferry (CRI parsed) / kcat: lines/s {times(r.get('cri_lines_per_s'))}, "
                   f"per core used {times(r.get('cri_per_core'))}  (kcat sends raw lines)")
    for t in results["tools"]:
        if t.get("kafka_records") is not None:
            out.append(f"  ({t['tool']}: {t['records_expected']:,} lines in "
                       f"{t['kafka_records']:,} Kafka records)")
    s = results.get("steady")
    if s and s.get("measured"):
        caught = ("caught up" if s["caught_up_after_s"] is not None
                  else "did NOT catch up within 30 s")
        out.append(
            f"steady state, file growing at {s['rate_achieved']:,} lines/s for "
            f"{s['seconds']:.0f}s: RSS median {s['rss_median_mib']:.1f} MiB, max "
            f"{s['rss_max_mib']:.1f} MiB ({s['rss_samples']} samples, every {RSS_INTERVAL_S}s);"
            f" CPU {100 * s['cpu_fraction_of_core']:.0f}% of one core; {caught}; "
            f"topic count {'ok' if s['count_ok'] else str(s['topic_count']) + ' != written'}")
    elif s:
        out.append(f"steady state: not measured: {s['reason']}")
    out.extend(notes)
    out.append(f"results: {results['results_file']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent.bench",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=1_000_000,
                        help="CRI lines in the file (default 1,000,000)")
    parser.add_argument("--no-steady", action="store_true",
                        help="skip the 20 s steady-state memory run")
    parser.add_argument("--no-containers", action="store_true",
                        help="skip the extra run of the agent reading the file as a container "
                             "log (CRI parsed)")
    args = parser.parse_args(argv)
    quiet_client_logs()
    with bench_stack() as ep:
        results = run(ep, args.lines, steady=not args.no_steady,
                      containers=not args.no_containers)
    print()
    print(format_results(results))


if __name__ == "__main__":
    main()

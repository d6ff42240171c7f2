"""What both benchmarks share: the dedicated dev stack, measured child processes, Kafka admin
helpers, result files and table formatting.

Every measured program runs as its own process. Its CPU time (user + sys) comes from
``os.wait4``, so the harness never mixes its own work into a tool's numbers. Peak RSS is the
process's ``VmHWM`` (/proc/<pid>/status, the high-water mark of its own address space), sampled
while it runs and once more just before it is stopped: ``ru_maxrss`` from ``wait4`` cannot be
used as is, because Linux carries the forking parent's high-water mark over ``exec`` (fs/exec.c
``setmax_mm_hiwater_rss``), so every child of this ~60 MiB Python harness reported >= 60 MiB.
It is still recorded (``ru_maxrss_mib``). The harness polls (Kafka offsets, checkpoint files) at
a coarse interval so that it takes as little as possible of the two cores from the program
being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / ".logferry" / "bench"
STACK_DIR = ROOT / ".logferry" / "bench-stack"
KAFKA_PORT = 39092
OPENSEARCH_PORT = 39200
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() \
    else sys.executable
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the stack ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoints:
    brokers: str
    opensearch_url: str
    # pid of each service ("kafka", "opensearch"), to count the CPU they use during a run
    pids: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def bench_stack() -> Iterator[Endpoints]:
    """The dedicated bench stack (Kafka :39092, OpenSearch :39200, state in
    ``.logferry/bench-stack``). Stopped at the end only if this call started it."""
    from logferry.devstack import DevStack

    stack = DevStack(STACK_DIR, kafka_port=KAFKA_PORT, opensearch_port=OPENSEARCH_PORT)
    already_running = all(s.ready for s in stack.status())
    print(f"bench stack: {'already running' if already_running else 'starting'} "
          f"(state {STACK_DIR.relative_to(ROOT)})", flush=True)
    # The readiness probe retries while the broker boots; aiokafka logs each refused connect.
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        stack.up(echo=True)
    finally:
        kafka_log.setLevel(level)
    try:
        pids = {st.name: st.pid for st in stack.status() if st.pid is not None}
        yield Endpoints(stack.kafka.address, stack.opensearch.address, pids)
    finally:
        if not already_running:
            stopped = stack.down()
            print(f"bench stack stopped: {', '.join(stopped) or 'nothing'}", flush=True)


@contextlib.contextmanager
def paused(pids: dict[str, int], name: str) -> Iterator[None]:
    """Service ``name`` stopped (SIGSTOP) for the block, then continued: a benchmark that does
    not use it should not share the two cores with its background work (a JVM that booted
    minutes ago still compiles and collects). Nothing to do if it does not run."""
    pid = pids.get(name)
    if pid is None:
        yield
        return
    os.kill(pid, signal.SIGSTOP)
    print(f"bench stack: {name} paused (not used by this benchmark)", flush=True)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        print(f"bench stack: {name} continued", flush=True)


def _pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus``; threads it starts later inherit the mask of the
    thread that starts them. A thread that ends meanwhile is skipped."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def split_cores(pids: dict[str, int]) -> Iterator[dict[str, list[int]]]:
    """OpenSearch alone on the first CPU, everything else of the benchmark (Kafka, this harness
    and the programs it starts) on the others, for the block; then all back on every CPU.

    This stands for a deployment where the node has machines of its own: the loaders no longer
    take CPU from it, so what separates them from its ceiling is how well they keep it busy.
    Yields which CPUs went to which side; nothing changes on a machine with one CPU."""
    every = sorted(os.sched_getaffinity(0))
    if len(every) < 2 or "opensearch" not in pids:
        yield {}
        return
    node, rest = {every[0]}, set(every[1:])
    others = [pid for name, pid in pids.items() if name != "opensearch"]
    _pin_process(pids["opensearch"], node)
    for pid in others:
        _pin_process(pid, rest)
    _pin_process(os.getpid(), rest)  # the programs it starts inherit this
    print(f"bench stack: OpenSearch on CPU {sorted(node)}, the rest on {sorted(rest)}",
          flush=True)
    try:
        yield {"opensearch": sorted(node), "others": sorted(rest)}
    finally:
        for pid in [pids["opensearch"], *others, os.getpid()]:
            with contextlib.suppress(OSError):
                _pin_process(pid, set(every))


# -- measured processes ------------------------------------------------------------------------

@dataclass(frozen=True)
class Usage:
    """What the kernel says a finished child used."""

    wall_s: float          # process start -> reaped
    cpu_s: float           # user + sys, all threads
    peak_rss_mib: float    # highest VmHWM seen while it ran
    ru_maxrss_mib: float   # from wait4: includes the forking harness's RSS (see above)
    returncode: int


class Child:
    """A program run as a separate process, reaped with ``os.wait4`` for its rusage.

    Never call ``Popen.poll``/``wait`` on it: they would reap the child and lose the rusage.
    """

    def __init__(self, argv: Sequence[str], log_path: Path, *, cwd: Path = ROOT,
                 env: dict[str, str] | None = None, stdin: IO[bytes] | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.t0 = time.monotonic()
        self.t0_wall = time.time()  # to place the child's own log timestamps
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                     cwd=cwd, env=env)
        self.pid = self.proc.pid
        self.usage: Usage | None = None
        self.hwm_mib = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def poll(self) -> Usage | None:
        if self.usage is not None:
            return self.usage
        self.sample_hwm()
        pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        return self._reaped(status, ru)

    def _reaped(self, status: int, ru: resource.struct_rusage) -> Usage:
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code  # so Popen does not try to reap it again
        self._log.close()
        self.usage = Usage(self.elapsed(), ru.ru_utime + ru.ru_stime, self.hwm_mib,
                           ru.ru_maxrss / 1024.0, code)
        return self.usage

    def wait(self, timeout_s: float) -> Usage:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            usage = self.poll()
            if usage is not None:
                return usage
            time.sleep(0.02)
        raise TimeoutError(f"{self.argv[0]} still running after {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 30.0) -> Usage:
        """SIGTERM, wait (SIGKILL after ``timeout_s``); returns the usage."""
        if self.usage is not None:
            return self.usage
        self.sample_hwm()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self.wait(timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _, status, ru = os.wait4(self.pid, 0)
            return self._reaped(status, ru)

    def _status_kib(self, key: bytes) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            return None
        return None  # a zombie has no memory lines

    def vmrss_mib(self) -> float | None:
        """Current resident set size (None once the process is gone)."""
        kib = self._status_kib(b"VmRSS:")
        return None if kib is None else kib / 1024.0

    def sample_hwm(self) -> None:
        """Remember the peak RSS so far (VmHWM only grows while the process lives)."""
        kib = self._status_kib(b"VmHWM:")
        if kib is not None:
            self.hwm_mib = max(self.hwm_mib, kib / 1024.0)

    def cpu_now_s(self) -> float | None:
        """CPU (user + sys) used so far, from /proc/<pid>/stat."""
        return pid_cpu_s(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Child:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(10.0)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float,
               child: Child | None = None) -> float | None:
    """Poll ``predicate``; seconds since ``child`` started (or since now) when it held, None on
    timeout. Stops early (None) if ``child`` exits."""
    t0 = child.t0 if child is not None else time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic() - t0
        if child is not None and child.poll() is not None:
            return time.monotonic() - t0 if predicate() else None
        time.sleep(interval_s)
    return None


@dataclass
class RssSampler:
    """VmRSS of a child sampled at a fixed interval."""

    samples_mib: list[float] = field(default_factory=list)

    def sample(self, child: Child) -> None:
        value = child.vmrss_mib()
        if value is not None:
            self.samples_mib.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_mib) if self.samples_mib else float("nan")

    @property
    def max(self) -> float:
        return max(self.samples_mib) if self.samples_mib else float("nan")


# -- where else the CPU went -------------------------------------------------------------------

def pid_cpu_s(pid: int) -> float | None:
    """CPU (user + sys, all threads) a live process has used, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _machine_busy_s() -> float:
    """CPU-seconds all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat", "rb") as f:
        parts = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class CpuMeter:
    """CPU used during one measured run by the services, and by everything else on the machine
    (neither the services, the measured program nor this harness): the noise to read the run
    against on a shared machine."""

    def __init__(self, service_pids: dict[str, int]) -> None:
        self.pids = dict(service_pids)
        self.t0 = time.monotonic()
        self.busy0 = _machine_busy_s()
        self.self0 = _self_cpu_s()
        self.svc0 = {name: pid_cpu_s(pid) for name, pid in self.pids.items()}

    def stop(self, tool_cpu_s: float) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        busy = _machine_busy_s() - self.busy0
        harness = _self_cpu_s() - self.self0
        services: dict[str, float] = {}
        for name, pid in self.pids.items():
            before, after = self.svc0.get(name), pid_cpu_s(pid)
            if before is not None and after is not None:
                services[name] = round(after - before, 2)
        other = max(0.0, busy - harness - tool_cpu_s - sum(services.values()))
        return {"window_s": round(wall, 2), "services_cpu_s": services,
                "harness_cpu_s": round(harness, 2), "other_cpu_s": round(other, 2),
                "other_cores": round(other / wall, 2) if wall > 0 else None}


def _self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- Kafka -------------------------------------------------------------------------------------

class KafkaTool:
    """Synchronous wrapper over aiokafka's admin client and an unsubscribed consumer, on a
    private event loop: create/delete topics, end offsets, committed group offsets."""

    def __init__(self, brokers: str) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self.brokers = brokers
        self._loop = asyncio.new_event_loop()
        self._admin: Any = None
        self._consumer: Any = None

        async def _start() -> None:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
            await self._admin.start()
            self._consumer = AIOKafkaConsumer(bootstrap_servers=brokers,
                                              enable_auto_commit=False)
            await self._consumer.start()

        self._run(_start())

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        async def _stop() -> None:
            if self._consumer is not None:
                await self._consumer.stop()
            if self._admin is not None:
                await self._admin.close()

        with contextlib.suppress(Exception):
            self._run(_stop())
        self._loop.close()

    def __enter__(self) -> KafkaTool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def create_topic(self, name: str, partitions: int = 3) -> None:
        from aiokafka.admin import NewTopic

        async def _create() -> None:
            await self._admin.create_topics([NewTopic(name, partitions, 1)])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer._client.cluster.partitions_for_topic(name)
                if parts and len(parts) == partitions:
                    return
                await asyncio.sleep(0.2)
            raise RuntimeError(f"topic {name} did not appear")

        self._run(_create())

    def delete_topics(self, names: Sequence[str]) -> None:
        if names:
            with contextlib.suppress(Exception):
                self._run(self._admin.delete_topics(list(names)))

    def partitions(self, topic: str) -> list[Any]:
        from aiokafka import TopicPartition

        async def _parts() -> list[Any]:
            parts = self._consumer._client.cluster.partitions_for_topic(topic)
            if not parts:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer._client.cluster.partitions_for_topic(topic) or set()
            return [TopicPartition(topic, p) for p in sorted(parts)]

        result: list[Any] = self._run(_parts())
        return result

    def end_offsets(self, topic: str) -> dict[Any, int]:
        tps = self.partitions(topic)
        if not tps:
            return {}
        result: dict[Any, int] = self._run(self._consumer.end_offsets(tps))
        return result

    def count(self, topic: str) -> int:
        """Records in a fresh topic: the sum of its partitions' end offsets."""
        return sum(self.end_offsets(topic).values())

    def count_lines(self, topic: str) -> int:
        """Log lines in a fresh topic: a logferry record (wire v2) holds many, anything else
        (a peer's record) is one. Reads the whole topic: for after a run, not while timing."""
        from aiokafka import AIOKafkaConsumer

        from logferry.errors import WireFormatError
        from logferry.wire import decode_lines

        end = self.end_offsets(topic)

        async def _count() -> int:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.brokers,
                                        enable_auto_commit=False,
                                        max_partition_fetch_bytes=8 * 1024 * 1024)
            await consumer.start()
            try:
                consumer.assign(list(end))
                await consumer.seek_to_beginning(*end)
                total = 0
                todo = {tp for tp, high in end.items() if high > 0}
                while todo:
                    batch = await consumer.getmany(*todo, timeout_ms=1000)
                    for tp, msgs in batch.items():
                        for msg in msgs:
                            try:
                                total += len(decode_lines(msg.value or b""))
                            except WireFormatError:
                                total += 1
                        if msgs and msgs[-1].offset + 1 >= end[tp]:
                            todo.discard(tp)
                return total
            finally:
                await consumer.stop()

        result: int = self._run(_count())
        return result

    def committed(self, group: str) -> dict[Any, int]:
        """The group's committed offsets ({} while the group or its coordinator is unknown)."""
        from aiokafka.errors import KafkaError

        try:
            offsets = self._run(self._admin.list_consumer_group_offsets(group))
        except KafkaError:
            return {}
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


# -- results -----------------------------------------------------------------------------------

def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(kind: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{kind}-{timestamp()}.json"
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0]}


def quiet_client_logs() -> None:
    """aiokafka warns on every retry while topics/leaders settle; only errors matter here."""
    for name in ("aiokafka", "opensearch", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned: the first left, the rest right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), sep, *(fmt(r) for r in rows)])


def num(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def times(value: float | None) -> str:
    """A ratio as ``0.42x``."""
    return "-" if value is None else f"{value:.2f}x"

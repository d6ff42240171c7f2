"""The two services of the dev stack: a KRaft Kafka broker and an OpenSearch node.

Each knows how to prepare its state directory, the command that runs it and how to tell that it
is really usable (not merely listening).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from logferry.devstack._artifacts import cache_root, ensure_jars
from logferry.devstack._tools import Jdk
from logferry.errors import DevStackError

_JAVA_DIR = Path(__file__).parent / "java"
LOG4J_CONFIG = _JAVA_DIR / "log4j2.properties"


@dataclass
class Service:
    name: str
    state_dir: Path
    ports: tuple[int, ...]

    @property
    def dir(self) -> Path:
        return self.state_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def marker(self) -> str:
        # Part of the command line; identifies our process and which state dir it serves.
        return f"-Dlogferry.devstack={self.dir}"

    @property
    def address(self) -> str:
        raise NotImplementedError

    def prepare(self, jdk: Jdk) -> list[str]:
        """Make the state dir ready and return the command line that runs the service."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError


@dataclass
class KafkaService(Service):
    heap_mb: int = 512

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self, jdk: Jdk) -> list[str]:
        lib = ensure_jars("kafka")
        data = self.dir / "data"
        props = self.dir / "server.properties"
        self.dir.mkdir(parents=True, exist_ok=True)
        controller = self.ports[1]
        props.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={data}",
                "num.partitions=3",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=3",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "message.max.bytes=10485760",
                "",
            ])
        )
        base = [str(jdk.java), f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", self.marker,
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{lib}/*"]
        if not (data / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            proc = subprocess.run(
                [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                raise DevStackError(f"kafka storage format failed: {proc.stdout}{proc.stderr}")
        return [*base, "kafka.Kafka", str(props)]

    def is_ready(self) -> bool:
        return asyncio.run(_kafka_round_trip(self.address))


def _kafka_cluster_id() -> str:
    # KRaft wants a base64url-encoded 16-byte id, which is what StorageTool random-uuid prints.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


async def _kafka_round_trip(address: str) -> bool:
    """Produce one record and read it back: the broker, its metadata and its log all work."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.errors import KafkaError

    topic = "__logferry_ready"
    token = uuid.uuid4().bytes
    # A broker that is still starting makes aiokafka log "topic not found" and retries at
    # ERROR; this probe expects exactly that and answers with its own result.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    producer = AIOKafkaProducer(bootstrap_servers=address, request_timeout_ms=5000,
                                acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                                request_timeout_ms=5000)
    try:
        await asyncio.wait_for(producer.start(), 10)
        meta = await asyncio.wait_for(producer.send_and_wait(topic, token, partition=0), 10)
        await asyncio.wait_for(consumer.start(), 10)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        batch = await consumer.getmany(tp, timeout_ms=5000)
        return any(m.value == token for m in batch.get(tp, []))
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await producer.stop()
        await consumer.stop()


@dataclass
class OpenSearchService(Service):
    heap_mb: int = 1024

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self, jdk: Jdk) -> list[str]:
        lib = ensure_jars("opensearch")
        home = self.dir / "home"
        (home / "config").mkdir(parents=True, exist_ok=True)
        classes = _compiled_launcher(jdk, lib)
        return [
            str(jdk.java), f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", self.marker,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            # OpenSearch's own jvm.options: it needs these to run outside its launcher script.
            "-Dopensearch.networkaddress.cache.ttl=60", "-Dio.netty.noUnsafe=true",
            "-Dio.netty.recycler.maxCapacityPerThread=0", "-Djava.awt.headless=true",
            "-XX:+UseG1GC", "-Dfile.encoding=UTF-8",
            "-cp", f"{classes}:{lib}/*", "LogferryOpenSearch",
            str(home), str(self.ports[0]), str(self.ports[1]),
        ]

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.address}/_cluster/health?wait_for_status=yellow&timeout=2s", timeout=5
            ) as resp:
                body = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return body.get("status") in ("yellow", "green")


def _compiled_launcher(jdk: Jdk, lib: Path) -> Path:
    """Compile LogferryOpenSearch.java once per source version into the cache."""
    source = _JAVA_DIR / "LogferryOpenSearch.java"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out = cache_root() / f"launcher-{digest}"
    if (out / "LogferryOpenSearch.class").exists():
        return out
    if jdk.javac is None:
        raise DevStackError(f"javac not found next to {jdk.java}; install a full JDK, not a JRE")
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc = subprocess.run(
        [str(jdk.javac), "-d", str(tmp), "-cp", f"{lib}/*", str(source)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise DevStackError(f"compiling the OpenSearch launcher failed:\n{proc.stderr[-2000:]}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out

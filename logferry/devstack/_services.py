"""The services of the dev stack: a KRaft Kafka broker and an OpenSearch node (and, with
``--secure``, the TLS proxy of ``_proxy.py``).

Each knows how to prepare its state directory, the command that runs it and how to tell that it
is really usable (not merely listening).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logferry.devstack._artifacts import cache_root, ensure_jars
from logferry.devstack._secure import SCRAM_MECHANISM, SecureFiles
from logferry.devstack._tools import Jdk, find_jdk
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

    def needs_restart(self) -> bool:
        """Whether the running process was started with settings that no longer apply."""
        return False


@dataclass
class KafkaService(Service):
    heap_mb: int = 512
    # With these, a SASL_SSL listener (SCRAM-SHA-512, the dev CA's certificate) on ports[2]
    # next to the PLAINTEXT one; broker-to-controller traffic stays PLAINTEXT on loopback.
    secure: SecureFiles | None = None

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure_address(self) -> str | None:
        return f"127.0.0.1:{self.ports[2]}" if self.secure is not None else None

    @property
    def props_path(self) -> Path:
        return self.dir / "server.properties"

    @property
    def _scram_marker(self) -> Path:
        # Which SCRAM credential the broker's metadata holds (a hash, never the password).
        return self.dir / "scram-user"

    def _properties(self) -> str:
        controller = self.ports[1]
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{controller}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        extra: list[str] = []
        if self.secure is not None:
            listeners.append(f"SASL_SSL://127.0.0.1:{self.ports[2]}")
            advertised.append(f"SASL_SSL://127.0.0.1:{self.ports[2]}")
            protocols.append("SASL_SSL:SASL_SSL")
            prefix = "listener.name.sasl_ssl."
            extra = [
                f"{prefix}sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                f"{prefix}{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                f"{prefix}ssl.keystore.type=PEM",
                f"{prefix}ssl.keystore.location={self.secure.kafka_keystore}",
            ]
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={','.join(protocols)}",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.dir / 'data'}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "message.max.bytes=10485760",
            *extra,
            "",
        ])

    def needs_restart(self) -> bool:
        """A broker started without the SASL_SSL listener that is now wanted."""
        if self.secure is None:
            return False
        try:
            return "SASL_SSL://" not in self.props_path.read_text()
        except OSError:
            return True

    def _java(self, jdk: Jdk, lib: Path) -> list[str]:
        return [str(jdk.java), f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", self.marker,
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{lib}/*"]

    def prepare(self, jdk: Jdk) -> list[str]:
        lib = ensure_jars("kafka")
        data = self.dir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.secure is not None:
            self.secure.ensure()
        self.props_path.write_text(self._properties())
        base = self._java(jdk, lib)
        if not (data / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            scram: list[str] = []
            if self.secure is not None:
                # KRaft keeps SCRAM credentials in its metadata log; the first one can be
                # written while formatting, before any listener is up.
                scram = ["--add-scram", self._scram_spec()]
            proc = subprocess.run(
                [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                 "-c", str(self.props_path), *scram],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                raise DevStackError(
                    "kafka storage format failed: "
                    + self._without_secret(proc.stdout + proc.stderr))
            if self.secure is not None:
                self._scram_marker.write_text(self._scram_digest())
        return [*base, "kafka.Kafka", str(self.props_path)]

    def _scram_spec(self) -> str:
        assert self.secure is not None
        return (f"{SCRAM_MECHANISM}=[name={self.secure.username},"
                f"password={self.secure.kafka_password()}]")

    def _scram_digest(self) -> str:
        assert self.secure is not None
        return hashlib.sha256(
            f"{self.secure.username}:{self.secure.kafka_password()}".encode()).hexdigest()

    def _without_secret(self, text: str) -> str:
        if self.secure is not None and self.secure.kafka_password_file.exists():
            text = text.replace(self.secure.kafka_password(), "***")
        return text

    def ensure_scram_user(self) -> None:
        """Give the broker the ``logferry`` SCRAM credential when its data was formatted
        without it (first brought up without --secure) or with another password: through the
        PLAINTEXT listener, which needs no credential."""
        if self.secure is None:
            return
        digest = self._scram_digest()
        try:
            if self._scram_marker.read_text() == digest:
                return
        except OSError:
            pass
        lib = ensure_jars("kafka")
        # The password is on this short-lived command line as it is on StorageTool's: the
        # tools take SCRAM credentials no other way, and this is a loopback dev broker.
        proc = subprocess.run(
            [*self._java(find_jdk(), lib), "kafka.admin.ConfigCommand",
             "--bootstrap-server", self.address, "--alter", "--entity-type", "users",
             "--entity-name", self.secure.username,
             "--add-config", f"{SCRAM_MECHANISM}=[password={self.secure.kafka_password()}]"],
            capture_output=True, text=True, check=False, timeout=120,
        )
        if proc.returncode != 0:
            raise DevStackError("could not create the Kafka SCRAM user: "
                                + self._without_secret(proc.stdout + proc.stderr)[-1500:])
        self._scram_marker.write_text(digest)

    def is_ready(self) -> bool:
        if not asyncio.run(_kafka_round_trip(self.address)):
            return False
        if self.secure is None:
            return True
        self.ensure_scram_user()
        assert self.secure_address is not None
        return asyncio.run(_kafka_round_trip(self.secure_address, self._secure_kwargs()))

    def _secure_kwargs(self) -> dict[str, Any]:
        assert self.secure is not None
        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": ssl.create_default_context(cafile=str(self.secure.ca_file)),
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": self.secure.username,
            "sasl_plain_password": self.secure.kafka_password(),
        }


def _kafka_cluster_id() -> str:
    # KRaft wants a base64url-encoded 16-byte id, which is what StorageTool random-uuid prints.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


async def _kafka_round_trip(address: str, security: dict[str, Any] | None = None) -> bool:
    """Produce one record and read it back: the broker, its metadata and its log all work."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.errors import KafkaError

    topic = "__logferry_ready"
    token = uuid.uuid4().bytes
    # A broker that is still starting makes aiokafka log "topic not found" and retries at
    # ERROR; this probe expects exactly that and answers with its own result.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    producer = AIOKafkaProducer(bootstrap_servers=address, request_timeout_ms=5000,
                                acks="all", **(security or {}))
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                                request_timeout_ms=5000, **(security or {}))
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

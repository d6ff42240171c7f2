"""``logferry dev up | down | status``: a real Kafka broker and OpenSearch node on loopback.

Used by the demo, the integration tests and the benchmarks alike, so all three exercise the same
services a user gets.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from logferry.devstack import _process
from logferry.devstack._proxy import TlsProxyService
from logferry.devstack._secure import SecureFiles
from logferry.devstack._services import KafkaService, OpenSearchService, Service
from logferry.devstack._tools import find_jdk
from logferry.errors import ServiceStartError


def default_state_dir() -> Path:
    env = os.environ.get("LOGFERRY_DEV_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "logferry" / "dev"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    ready: bool
    log_path: Path


# Offsets from --kafka-port / --opensearch-port of the secure endpoints (9094 and 9243 by
# default: the next free Kafka port after the controller's, and HTTPS's 443 in OpenSearch's range).
SECURE_KAFKA_OFFSET = 2
TLS_PROXY_OFFSET = 43


class DevStack:
    """Kafka + OpenSearch started from pinned Maven Central artifacts, tracked under one dir.

    ``secure=True`` adds a SASL_SSL listener (SCRAM-SHA-512) to Kafka on ``kafka_port + 2`` and
    an nginx proxy serving OpenSearch over TLS with basic auth on ``opensearch_port + 43``, with
    a private CA, passwords and a client config under ``<state_dir>/secure``; the plain
    endpoints keep working. ``secure=None`` means: as this state dir was last brought up (a
    state dir that has its secure files stays secure, so ``down`` also stops its proxy).
    """

    def __init__(self, state_dir: Path | None = None, kafka_port: int = 9092,
                 opensearch_port: int = 9200, start_timeout_s: float = 180.0,
                 secure: bool | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        files = SecureFiles(self.state_dir / "secure")
        self.secure_files: SecureFiles | None = (
            files if (secure or (secure is None and files.exists())) else None)
        kafka_ports: tuple[int, ...] = (kafka_port, kafka_port + 1)
        if self.secure_files is not None:
            kafka_ports += (kafka_port + SECURE_KAFKA_OFFSET,)
        self.kafka = KafkaService("kafka", self.state_dir, kafka_ports,
                                  secure=self.secure_files)
        self.opensearch = OpenSearchService(
            "opensearch", self.state_dir, (opensearch_port, opensearch_port + 100))
        self.proxy: TlsProxyService | None = None
        if self.secure_files is not None:
            self.proxy = TlsProxyService("nginx", self.state_dir,
                                         (opensearch_port + TLS_PROXY_OFFSET,),
                                         upstream_port=opensearch_port,
                                         secure=self.secure_files)
        self.start_timeout_s = start_timeout_s
        # Children started by this process: their exit is seen directly, without racing /proc.
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def services(self) -> tuple[Service, ...]:
        base: tuple[Service, ...] = (self.kafka, self.opensearch)
        return base if self.proxy is None else (*base, self.proxy)

    @property
    def secure(self) -> bool:
        return self.secure_files is not None

    def secure_client_config(self) -> dict[str, dict[str, object]]:
        """The ``kafka`` and ``opensearch`` config sections that reach the secure endpoints."""
        if self.secure_files is None or self.proxy is None or self.kafka.secure_address is None:
            raise ValueError("this dev stack is not secure (DevStack(secure=True))")
        return self.secure_files.client_config(self.kafka.secure_address, self.proxy.address)

    def up(self, echo: bool = True) -> list[ServiceStatus]:
        """Start what is not running, wait until all are usable. Idempotent."""
        jdk = find_jdk()
        started: list[Service] = []
        for svc in self.services:
            if _process.running_pid(svc.pid_path) is not None:
                if not svc.needs_restart():
                    continue
                if echo:
                    print(f"restarting {svc.name} with the secure settings", flush=True)
                _process.stop(svc.pid_path)
            _process.require_free_ports(svc.name, svc.ports)
            argv = svc.prepare(jdk)
            self._children[svc.name] = _process.spawn(argv, svc.log_path, svc.pid_path,
                                                      svc.marker)
            started.append(svc)
            if echo:
                print(f"starting {svc.name} (log: {svc.log_path})", flush=True)
        for svc in self.services:
            self._wait_ready(svc)
        if self.secure_files is not None and self.proxy is not None:
            assert self.kafka.secure_address is not None
            self.secure_files.write_client_config(self.kafka.secure_address, self.proxy.address)
        return self.status()

    def _wait_ready(self, svc: Service) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            child = self._children.get(svc.name)
            exited = (child.poll() is not None) if child is not None else (
                _process.running_pid(svc.pid_path) is None)
            if exited:
                raise ServiceStartError(
                    f"{svc.name} exited during start-up; last lines of {svc.log_path}:\n"
                    + _process.log_tail(svc.log_path))
            if svc.is_ready():
                return
            time.sleep(1.0)
        raise ServiceStartError(
            f"{svc.name} did not become ready within {self.start_timeout_s:.0f}s; "
            f"last lines of {svc.log_path}:\n" + _process.log_tail(svc.log_path))

    def down(self) -> list[str]:
        """Stop the services this state dir started (by pid). Returns the names stopped."""
        return [svc.name for svc in reversed(self.services) if _process.stop(svc.pid_path)]

    def status(self) -> list[ServiceStatus]:
        out = []
        for svc in self.services:
            pid = _process.running_pid(svc.pid_path)
            out.append(ServiceStatus(svc.name, svc.address, pid,
                                     pid is not None and svc.is_ready(), svc.log_path))
        return out

    def kill(self, name: str) -> None:
        """SIGKILL one service (fault injection)."""
        svc = {s.name: s for s in self.services}[name]
        _process.kill_hard(svc.pid_path)

    def start(self, name: str) -> None:
        """Start one service again after :meth:`kill` or :meth:`stop`, and wait until ready."""
        svc = {s.name: s for s in self.services}[name]
        if _process.running_pid(svc.pid_path) is None:
            argv = svc.prepare(find_jdk())
            self._children[name] = _process.spawn(argv, svc.log_path, svc.pid_path, svc.marker)
        self._wait_ready(svc)

    def stop(self, name: str) -> None:
        svc = {s.name: s for s in self.services}[name]
        _process.stop(svc.pid_path)

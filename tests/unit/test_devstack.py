"""Dev-stack failure modes that need no running service: each is one clear error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from logferry.devstack import DevStack, _process
from logferry.devstack._services import Service
from logferry.errors import PortInUseError, ServiceStartError, ToolMissingError


def test_java_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(ToolMissingError, match="java not found"):
        DevStack(tmp_path).up(echo=False)


def test_maven_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGFERRY_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn here; java comes from JAVA_HOME
    jdk_home = Path(os.environ.get("JAVA_HOME") or "/usr/lib/jvm/java-17-openjdk-amd64")
    monkeypatch.setenv("JAVA_HOME", str(jdk_home))
    with pytest.raises(ToolMissingError, match="mvn not found"):
        DevStack(tmp_path, kafka_port=_free_port(), opensearch_port=_free_port()).up(echo=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} .* already in use"):
            DevStack(tmp_path, kafka_port=port).up(echo=False)


class _Crashing(Service):
    @property
    def address(self) -> str:
        return "nowhere"

    def is_ready(self) -> bool:
        return False


def test_service_that_dies_reports_its_log_tail(tmp_path: Path) -> None:
    svc = _Crashing("crashy", tmp_path, (1,))
    svc.dir.mkdir(parents=True)
    stack = DevStack(tmp_path, start_timeout_s=20)
    stack._children["crashy"] = _process.spawn(
        [sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)", svc.marker],
        svc.log_path, svc.pid_path, svc.marker)
    with pytest.raises(ServiceStartError, match=r"(?s)crashy exited during start-up.*boom"):
        stack._wait_ready(svc)


def test_stop_never_signals_a_process_that_is_not_ours(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = tmp_path / "x.pid"
        pid_file.write_text(f"{other.pid}\n-Dlogferry.devstack=/somewhere/else\n")
        assert _process.running_pid(pid_file) is None
        assert _process.stop(pid_file) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_status_of_a_never_started_stack(tmp_path: Path) -> None:
    statuses = DevStack(tmp_path, kafka_port=_free_port(), opensearch_port=_free_port()).status()
    assert [(s.name, s.pid, s.ready) for s in statuses] == [("kafka", None, False),
                                                           ("opensearch", None, False)]

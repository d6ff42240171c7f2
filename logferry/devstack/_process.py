"""Starting and stopping the dev-stack JVMs as detached processes tracked by pid files.

A pid file records the pid and a marker string that must appear in the process's command line,
so ``down`` never signals an unrelated process that reused the pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from logferry.errors import PortInUseError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_ports(service: str, ports: Sequence[int]) -> None:
    for port in ports:
        if not port_is_free(port):
            raise PortInUseError(
                f"{service}: port {port} on 127.0.0.1 is already in use by another process; "
                f"stop it or pick other ports (see `logferry dev up --help`)"
            )


def spawn(argv: Sequence[str], log_path: Path, pid_path: Path, marker: str,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=str(log_path.parent),
        )
    pid_path.write_text(f"{proc.pid}\n{marker}\n")
    return proc


def running_pid(pid_path: Path) -> int | None:
    """The pid recorded in ``pid_path`` if that process is alive and is still ours."""
    try:
        pid_s, marker = pid_path.read_text().split("\n")[:2]
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # A zombie (state Z) has exited; its parent just has not reaped it yet.
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return None
    return pid if marker in cmdline else None


def stop(pid_path: Path, timeout_s: float = 30.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after ``timeout_s``. True if one was stopped."""
    pid = running_pid(pid_path)
    if pid is None:
        pid_path.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running_pid(pid_path) is None:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while running_pid(pid_path) is not None:
            _reap(pid)
            time.sleep(0.1)
    pid_path.unlink(missing_ok=True)
    return True


def kill_hard(pid_path: Path) -> None:
    """SIGKILL, for fault tests that simulate a crashed broker or node."""
    pid = running_pid(pid_path)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while running_pid(pid_path) is not None:
            _reap(pid)
            time.sleep(0.05)


def _reap(pid: int) -> None:
    # When the stack was started by this very process the JVM is our child and must be reaped.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])

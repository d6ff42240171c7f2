"""The secure dev stack on real services: files -> agent -> SASL_SSL Kafka (SCRAM-SHA-512) ->
indexer -> OpenSearch over TLS with basic auth, and `logferry search` through the same.

A wrong password or a CA that did not sign the server's certificate is one clear
`logferry: error:` line and a non-zero exit, and no secret ever reaches a log line, /metrics,
/health, --help or `config show`.

The secure stack is a second dev stack with its own ports and state dir (started once per
session; `LOGFERRY_TEST_SECURE_STACK_DIR` reuses one that already runs). nginx, which serves
OpenSearch over TLS, is installed from Debian's packages by scripts/install-nginx.sh when
missing.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from logferry.devstack import DevStack
from logferry.devstack._proxy import find_nginx
from logferry.devstack._tls import make_ca
from logferry.errors import ToolMissingError
from tests.integration.conftest import ROOT, Service, count_docs, wait_for, write_config

pytestmark = pytest.mark.integration

SECURE_KAFKA_PORT = int(os.environ.get("LOGFERRY_TEST_SECURE_KAFKA_PORT", "19110"))
SECURE_OPENSEARCH_PORT = int(os.environ.get("LOGFERRY_TEST_SECURE_OPENSEARCH_PORT", "19210"))
LINES = 500


def _ensure_nginx() -> None:
    try:
        find_nginx()
    except ToolMissingError:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "install-nginx.sh")],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.fail(f"scripts/install-nginx.sh failed:\n{proc.stdout}{proc.stderr}")


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    _ensure_nginx()
    state = Path(os.environ.get("LOGFERRY_TEST_SECURE_STACK_DIR")
                 or tmp_path_factory.mktemp("securestack"))
    dev = DevStack(state, kafka_port=SECURE_KAFKA_PORT, opensearch_port=SECURE_OPENSEARCH_PORT,
                   secure=True)
    already_running = all(s.ready for s in dev.status())
    dev.up(echo=False)
    yield dev
    if not already_running:
        dev.down()


@pytest.fixture(scope="session")
def untrusted_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA made the same way as the stack's, that signed nothing the stack serves."""
    return make_ca(tmp_path_factory.mktemp("other-ca")).cert


@pytest.fixture
def secure_os_client(secure_stack: DevStack) -> Iterator[OpenSearch]:
    files = secure_stack.secure_files
    assert files is not None and secure_stack.proxy is not None
    client = OpenSearch(hosts=[secure_stack.proxy.address], timeout=30,
                        http_auth=(files.username, files.opensearch_password()),
                        use_ssl=True, verify_certs=True, ca_certs=str(files.ca_file))
    yield client
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(stack: DevStack, names: dict[str, str], tmp_path: Path,
            kafka: dict[str, Any] | None = None,
            opensearch: dict[str, Any] | None = None, **sections: Any) -> Path:
    base = stack.secure_client_config()
    data: dict[str, Any] = {
        "kafka": {**base["kafka"], "topic": names["topic"], "request_timeout_s": 10,
                  **(kafka or {})},
        "opensearch": {**base["opensearch"], "index_prefix": names["prefix"],
                       "request_timeout_s": 10, **(opensearch or {})},
        "agent": {"include": [str(tmp_path / "logs" / "*.log")],
                  "state_dir": str(tmp_path / "agent-state"), "scan_interval_s": 0.2},
        "indexer": {"group_id": names["group"], "dead_letter_topic": names["dlq"],
                    "flush_interval_s": 0.2},
        **sections,
    }
    return write_config(tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json", data)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The timeout only keeps a hanging process from hanging the suite; the assertion is that
    # the command gave up on its own with a clear message.
    return subprocess.run([sys.executable, "-m", "logferry.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False, env=env)


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("logferry: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _scrape(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return str(resp.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:  # /health answers 503 while not ready
        return str(exc.read().decode(errors="replace"))


def _secrets(stack: DevStack) -> list[str]:
    files = stack.secure_files
    assert files is not None
    return [files.kafka_password(), files.opensearch_password()]


# -- the pipeline through the secure endpoints -------------------------------------------------

def test_lines_flow_through_sasl_ssl_kafka_and_tls_opensearch_without_leaking_secrets(
        secure_stack: DevStack, secure_os_client: OpenSearch, names: dict[str, str],
        tmp_path: Path, run_service: Callable[..., Service]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [f"secure line {n:04d} checkout ok" for n in range(LINES)]
    (logs / "app.log").write_text("\n".join(lines[: LINES // 2]) + "\n")
    agent_port, indexer_port = _free_port(), _free_port()
    # debug: the most a service ever logs, so the most chances for a secret to slip out.
    config = _config(secure_stack, names, tmp_path, log_level="debug",
                     agent={"include": [str(logs / "*.log")],
                            "state_dir": str(tmp_path / "agent-state"), "scan_interval_s": 0.2,
                            "metrics_port": agent_port},
                     indexer={"group_id": names["group"], "dead_letter_topic": names["dlq"],
                              "flush_interval_s": 0.2, "metrics_port": indexer_port})
    agent = run_service("agent", "run", "--config", str(config), name="agent")
    indexer = run_service("indexer", "run", "--config", str(config), name="indexer")
    agent.wait_started()
    indexer.wait_started()
    with (logs / "app.log").open("a") as fh:
        fh.write("\n".join(lines[LINES // 2:]) + "\n")
    wait_for(lambda: count_docs(secure_os_client, names["prefix"]) >= LINES, 120,
             f"{LINES} documents via the secure endpoints")

    scraped = [_scrape(port, path) for port in (agent_port, indexer_port)
               for path in ("/metrics", "/health")]
    assert all(scraped), scraped
    assert "logferry" in scraped[0] and "logferry" in scraped[2]

    search = _cli("search", "checkout", "--config", str(config), "--limit", "5",
                  "--output", "json")
    assert search.returncode == 0, search.stderr
    assert search.stdout.count("secure line") == 5

    assert agent.stop() == 0, agent.log()
    assert indexer.stop() == 0, indexer.log()
    assert count_docs(secure_os_client, names["prefix"]) == LINES

    shown = _cli("config", "show", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    helps = [_cli(*cmd, "--help").stdout for cmd in (("agent", "run"), ("indexer", "run"),
                                                     ("search",), ("dev", "up"))]
    outputs = {"agent log": agent.log(), "indexer log": indexer.log(),
               "search": search.stdout + search.stderr, "config show": shown.stdout,
               "help": "\n".join(helps), **{f"scrape {i}": s for i, s in enumerate(scraped)}}
    assert '"level":"debug"' in outputs["agent log"] + outputs["indexer log"]
    for secret in _secrets(secure_stack):
        for what, text in outputs.items():
            assert secret not in text, f"a password appears in the {what}"


def test_secrets_from_the_environment_stay_out_of_config_show(secure_stack: DevStack,
                                                              names: dict[str, str],
                                                              tmp_path: Path) -> None:
    config = _config(secure_stack, names, tmp_path,
                     kafka={"sasl_password_file": None}, opensearch={"password_file": None})
    kafka_pw, os_pw = _secrets(secure_stack)
    env = {**os.environ, "LOGFERRY_KAFKA_SASL_PASSWORD": kafka_pw,
           "LOGFERRY_OPENSEARCH_PASSWORD": os_pw}
    shown = _cli("config", "show", "--config", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    assert kafka_pw not in shown.stdout and os_pw not in shown.stdout
    assert shown.stdout.count('"***"') == 2
    search = _cli("search", "--config", str(config), "--limit", "1", env=env)
    # Nothing was indexed under this test's prefix: the env passwords got it that far.
    _one_line_error(search, "nothing was indexed yet")


# -- Kafka: wrong password, untrusted certificate ----------------------------------------------

@pytest.mark.parametrize("command", ["agent", "indexer"])
def test_wrong_kafka_password_is_one_line_and_exits(
        command: str, secure_stack: DevStack, names: dict[str, str], tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    config = _config(secure_stack, names, tmp_path, kafka={"sasl_password_file": str(wrong)})
    proc = _cli(command, "run", "--config", str(config))
    _one_line_error(proc, "rejected the SCRAM-SHA-512 login", "'logferry'",
                    "kafka.sasl_password_file")


@pytest.mark.parametrize("command", ["agent", "indexer"])
def test_untrusted_kafka_certificate_is_one_line_and_exits(
        command: str, secure_stack: DevStack, untrusted_ca: Path, names: dict[str, str],
        tmp_path: Path) -> None:
    config = _config(secure_stack, names, tmp_path, kafka={"ssl_ca_file": str(untrusted_ca)})
    proc = _cli(command, "run", "--config", str(config))
    _one_line_error(proc, "TLS certificate is not trusted", str(untrusted_ca))


def test_plaintext_client_on_the_sasl_ssl_listener_is_one_line(
        secure_stack: DevStack, names: dict[str, str], tmp_path: Path) -> None:
    config = _config(secure_stack, names, tmp_path, kafka={"security_protocol": "PLAINTEXT"})
    _one_line_error(_cli("agent", "run", "--config", str(config)),
                    "cannot reach Kafka", "security_protocol PLAINTEXT")


# -- OpenSearch: wrong password, untrusted certificate -----------------------------------------

@pytest.mark.parametrize("command", [("indexer", "run"), ("search", "anything")])
def test_wrong_opensearch_password_is_one_line_and_exits(
        command: tuple[str, str], secure_stack: DevStack, names: dict[str, str],
        tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    config = _config(secure_stack, names, tmp_path, opensearch={"password_file": str(wrong)})
    _one_line_error(_cli(*command, "--config", str(config)),
                    "HTTP 401 authentication failed", "opensearch.username")


@pytest.mark.parametrize("command", [("indexer", "run"), ("search", "anything")])
def test_untrusted_opensearch_certificate_is_one_line_and_exits(
        command: tuple[str, str], secure_stack: DevStack, untrusted_ca: Path,
        names: dict[str, str], tmp_path: Path) -> None:
    config = _config(secure_stack, names, tmp_path, opensearch={"ca_file": str(untrusted_ca)})
    _one_line_error(_cli(*command, "--config", str(config)),
                    "TLS certificate is not trusted", str(untrusted_ca))


# -- the stack itself ---------------------------------------------------------------------------

def test_secure_stack_keeps_the_plain_endpoints_and_its_files_private(
        secure_stack: DevStack) -> None:
    statuses = {s.name: s for s in secure_stack.status()}
    assert set(statuses) == {"kafka", "opensearch", "nginx"}
    assert all(s.ready for s in statuses.values())
    files = secure_stack.secure_files
    assert files is not None
    for private in (files.ca.key, files.server_key, files.kafka_keystore,
                    files.kafka_password_file, files.opensearch_password_file, files.htpasswd):
        assert private.stat().st_mode & 0o077 == 0, private
    text = files.config_file.read_text()
    assert "SASL_SSL" in text and secure_stack.proxy is not None
    assert secure_stack.proxy.address in text
    for secret in _secrets(secure_stack):
        assert secret not in text
    # Without credentials the proxy answers 401, not OpenSearch's data.
    req = urllib.request.Request(f"{secure_stack.proxy.address}/")
    ctx = ssl.create_default_context(cafile=str(files.ca_file))
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10, context=ctx)
    assert info.value.code == 401
    status = _cli("dev", "status", "--state-dir", str(secure_stack.state_dir), "--kafka-port",
                  str(SECURE_KAFKA_PORT), "--opensearch-port", str(SECURE_OPENSEARCH_PORT))
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count(" ready ") == 3
    up = _cli("dev", "up", "--secure", "--state-dir", str(secure_stack.state_dir),
              "--kafka-port", str(SECURE_KAFKA_PORT), "--opensearch-port",
              str(SECURE_OPENSEARCH_PORT))
    assert up.returncode == 0, up.stdout + up.stderr
    assert str(files.config_file) in up.stdout and "starting" not in up.stdout
    for secret in _secrets(secure_stack):
        assert secret not in status.stdout + up.stdout + up.stderr

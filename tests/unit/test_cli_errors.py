"""A user's mistake is one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logferry.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("logferry: error:")]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0], errors[0]


def test_malformed_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka]\nbrokers = 5\n")
    _one_line_error(_cli("config", "validate", str(bad)), "kafka.brokers")
    _one_line_error(_cli("agent", "run", "--config", str(bad)), "kafka.brokers")


def test_valid_config_validates(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[agent]\ninclude = ["/var/log/*.log"]\n')
    proc = _cli("config", "validate", str(good))
    assert proc.returncode == 0 and "ok" in proc.stdout


def test_unreachable_broker(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[kafka]\nbrokers = ["127.0.0.1:{_closed_port()}"]\nrequest_timeout_s = 3\n'
                   f'[agent]\ninclude = ["{tmp_path}/*.log"]\nstate_dir = "{tmp_path}/s"\n')
    _one_line_error(_cli("agent", "run", "--config", str(cfg)), "cannot reach Kafka")


def test_bad_opensearch_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    _one_line_error(_cli("search", "x", "--opensearch-url", url), "cannot reach OpenSearch")
    proc = _cli("indexer", "run", "--opensearch-url", url)
    _one_line_error(proc, "cannot use OpenSearch")
    # its Kafka clients, never started, are closed too: no "Unclosed AIOKafka..." lines
    assert "Unclosed" not in proc.stderr, proc.stderr
    _one_line_error(_cli("search", "x", "--opensearch-url", "localhost:9200"),
                    "must start with http")


def test_agent_without_include() -> None:
    _one_line_error(_cli("agent", "run", "--state-dir", "/tmp/x"), "agent.include is empty")


def test_help_for_every_command() -> None:
    for args in (["--help"], ["agent", "run", "--help"], ["indexer", "run", "--help"],
                 ["search", "--help"], ["dev", "up", "--help"], ["dev", "down", "--help"],
                 ["dev", "status", "--help"], ["config", "validate", "--help"]):
        proc = _cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Usage:" in proc.stdout


def test_secrets_never_appear_in_help_config_or_errors(tmp_path: Path) -> None:
    import os

    secret = "s3cr3t-Pa55w0rd-xyz"
    secret_file = tmp_path / "pw"
    secret_file.write_text(secret + "\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[kafka]\nbrokers = ["127.0.0.1:{_closed_port()}"]\nrequest_timeout_s = 3\n'
        'security_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "SCRAM-SHA-512"\n'
        f'sasl_username = "u"\nsasl_password_file = "{secret_file}"\n'
        f'[opensearch]\nurls = ["http://127.0.0.1:{_closed_port()}"]\nusername = "u"\n'
        f'[agent]\ninclude = ["{tmp_path}/*.log"]\nstate_dir = "{tmp_path}/s"\n')
    env = {**os.environ, "LOGFERRY_OPENSEARCH_PASSWORD": secret}
    runs = [
        ["config", "show", "--config", str(cfg)],
        ["agent", "run", "--help"],
        ["indexer", "run", "--help"],
        ["agent", "run", "--config", str(cfg)],
        ["indexer", "run", "--config", str(cfg)],
        ["search", "x", "--config", str(cfg)],
    ]
    for args in runs:
        proc = subprocess.run([sys.executable, "-m", "logferry.cli", *args],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env=env, check=False)
        assert secret not in proc.stdout + proc.stderr, args
    shown = subprocess.run([sys.executable, "-m", "logferry.cli", *runs[0]],
                           capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert '"sasl_password": "***"' in shown.stdout and '"password": "***"' in shown.stdout


def test_unreadable_tls_files_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[kafka]\nbrokers = ["127.0.0.1:{_closed_port()}"]\nsecurity_protocol = "SASL_SSL"\n'
        f'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "u"\nsasl_password_file = "{pw}"\n'
        f'ssl_ca_file = "{missing}"\n'
        f'[agent]\ninclude = ["{tmp_path}/*.log"]\nstate_dir = "{tmp_path}/s"\n')
    _one_line_error(_cli("agent", "run", "--config", str(cfg)), "kafka.ssl_ca_file")
    os_cfg = tmp_path / "os.toml"
    os_cfg.write_text(
        f'[opensearch]\nurls = ["https://127.0.0.1:{_closed_port()}"]\nca_file = "{missing}"\n')
    _one_line_error(_cli("indexer", "run", "--config", str(os_cfg)), "opensearch.ca_file")
    _one_line_error(_cli("search", "x", "--config", str(os_cfg)), "opensearch.ca_file")


def test_sasl_without_a_password_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[kafka]\nbrokers = ["127.0.0.1:{_closed_port()}"]\nsecurity_protocol = "SASL_PLAINTEXT"\n'
        f'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "u"\n'
        f'[agent]\ninclude = ["{tmp_path}/*.log"]\nstate_dir = "{tmp_path}/s"\n')
    env_without = {k: v for k, v in os.environ.items() if k != "LOGFERRY_KAFKA_SASL_PASSWORD"}
    proc = subprocess.run([sys.executable, "-m", "logferry.cli", "agent", "run", "--config",
                           str(cfg)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=env_without, check=False)
    _one_line_error(proc, "needs kafka.sasl_username and a password")


def test_dev_up_help_explains_secure() -> None:
    proc = _cli("dev", "up", "--help")
    assert proc.returncode == 0
    assert "--secure" in proc.stdout and "SASL_SSL" in proc.stdout

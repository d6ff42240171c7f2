"""What ``logferry dev up --secure`` keeps under ``<state-dir>/secure``: a private CA, the
server certificate Kafka and nginx present, the ``logferry`` user's passwords and a client
config that points agent, indexer and search at all of it.

Everything is made once and reused, so clients configured against one ``up`` keep working
after a restart. Private keys and passwords are readable by their owner only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from logferry.devstack._tls import CertificateAuthority, issue_server_cert, make_ca

USERNAME = "logferry"
SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SecureFiles:
    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.ca_file, self.dir / "ca.key")

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def kafka_keystore(self) -> Path:
        """Key, certificate and CA in one PEM file: Kafka's ``ssl.keystore.type=PEM``."""
        return self.dir / "kafka-keystore.pem"

    @property
    def kafka_password_file(self) -> Path:
        return self.dir / "kafka-password"

    @property
    def opensearch_password_file(self) -> Path:
        return self.dir / "opensearch-password"

    @property
    def htpasswd(self) -> Path:
        return self.dir / "htpasswd"

    @property
    def config_file(self) -> Path:
        return self.dir / "logferry.toml"

    @property
    def username(self) -> str:
        return USERNAME

    def exists(self) -> bool:
        return self.ca_file.exists()

    def ensure(self) -> None:
        """Make whatever is missing. A new CA invalidates the server certificate."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        new_ca = not (self.ca_file.exists() and self.ca.key.exists())
        if new_ca:
            make_ca(self.dir)
        if new_ca or not (self.server_cert.exists() and self.server_key.exists()):
            issue_server_cert(self.ca, self.dir, "server")
            self.kafka_keystore.unlink(missing_ok=True)
        if not self.kafka_keystore.exists():
            _write_private(self.kafka_keystore,
                           self.server_key.read_text() + self.server_cert.read_text())
        for path in (self.kafka_password_file, self.opensearch_password_file):
            if not path.exists():
                # URL-safe characters only: the password goes through Kafka's SCRAM option
                # syntax ([name=...,password=...]) where ',' and ']' would break it.
                _write_private(path, secrets.token_urlsafe(24) + "\n")
        if not htpasswd_matches(self.htpasswd, USERNAME, self.opensearch_password()):
            _write_private(self.htpasswd, htpasswd_line(USERNAME, self.opensearch_password()))

    def kafka_password(self) -> str:
        return self.kafka_password_file.read_text().strip()

    def opensearch_password(self) -> str:
        return self.opensearch_password_file.read_text().strip()

    def client_config(self, kafka_address: str, opensearch_url: str
                      ) -> dict[str, dict[str, object]]:
        """The ``kafka`` and ``opensearch`` config sections for the secure endpoints."""
        return {
            "kafka": {
                "brokers": [kafka_address],
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": SCRAM_MECHANISM,
                "sasl_username": USERNAME,
                "sasl_password_file": str(self.kafka_password_file),
                "ssl_ca_file": str(self.ca_file),
            },
            "opensearch": {
                "urls": [opensearch_url],
                "username": USERNAME,
                "password_file": str(self.opensearch_password_file),
                "ca_file": str(self.ca_file),
            },
        }

    def write_client_config(self, kafka_address: str, opensearch_url: str) -> Path:
        lines = ["# Written by `logferry dev up --secure`: the secure endpoints of this dev "
                 "stack.", "# Passwords stay in their files; this file holds no secret."]
        for section, values in self.client_config(kafka_address, opensearch_url).items():
            lines.append(f"\n[{section}]")
            # JSON strings and arrays of strings are valid TOML values.
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        self.config_file.write_text("\n".join(lines) + "\n")
        return self.config_file


def htpasswd_line(user: str, password: str) -> str:
    """One nginx ``auth_basic_user_file`` line in the salted SHA-1 scheme (``{SSHA}``), which
    nginx checks itself on every platform, unlike crypt() schemes that depend on libc."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"


def htpasswd_matches(path: Path, user: str, password: str) -> bool:
    """Whether ``path`` already lets ``user`` in with ``password`` (then it is left alone, so
    a running nginx never reads a half-written file)."""
    try:
        name, _, scheme_hash = path.read_text().strip().partition(":")
        raw = base64.b64decode(scheme_hash.removeprefix("{SSHA}"), validate=True)
    except (OSError, ValueError):
        return False
    digest, salt = raw[:20], raw[20:]
    return name == user and hashlib.sha1(password.encode() + salt).digest() == digest


def _write_private(path: Path, text: str) -> None:
    # Created with owner-only permissions, so the secret is never readable by others, not even
    # for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)

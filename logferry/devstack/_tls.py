"""A private certificate authority and server certificates for the secure dev stack.

Made with the ``openssl`` command, which every Debian machine with a JDK already has, so the
project needs no Python crypto dependency. The certificates carry the extensions strict X.509
verification asks for (key usage, key identifiers, subject alternative names), so clients that
verify strictly (Python >= 3.13, Java) accept them as they would a real CA's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from logferry.errors import DevStackError, ToolMissingError

# Long enough that a dev state dir never meets an expired certificate, short enough for the
# 825-day limit some TLS clients put on server certificates.
_CA_DAYS = 3650
_SERVER_DAYS = 825
# P-256 keys: made in milliseconds where RSA takes up to seconds on a busy machine, and read
# by Kafka's PEM keystore, nginx and Python alike.
_NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


@dataclass(frozen=True)
class CertificateAuthority:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerCertificate:
    cert: Path  # the server certificate followed by the CA's: a full chain
    key: Path  # PKCS#8 PEM, unencrypted: Kafka's PEM keystore and nginx both read it as is


def find_openssl() -> Path:
    found = shutil.which("openssl")
    if found is None:
        raise ToolMissingError(
            "openssl not found; the secure dev stack makes its certificates with it: "
            "install it, e.g. `apt-get install openssl`")
    return Path(found)


def _openssl(args: Sequence[str], what: str) -> None:
    proc = subprocess.run([str(find_openssl()), *args], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise DevStackError(f"openssl could not {what}: {proc.stderr.strip()[-800:]}")


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def make_ca(directory: Path, name: str = "logferry dev CA") -> CertificateAuthority:
    """A new self-signed CA in ``directory`` (``ca.pem``, ``ca.key``), replacing any there."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory / "ca.pem", directory / "ca.key")
    # A random serial in the name: two CAs made by this function never look alike to a client.
    subject = f"/O=logferry/CN={name} {secrets.token_hex(4)}"
    _openssl([
        "req", "-x509", *_NEW_KEY, "-sha256", "-days", str(_CA_DAYS),
        "-keyout", str(ca.key), "-out", str(ca.cert), "-subj", subject,
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    ], "make the dev CA")
    _private(ca.key)
    return ca


def issue_server_cert(ca: CertificateAuthority, directory: Path, name: str,
                      hosts: Sequence[str] = ("127.0.0.1", "localhost")
                      ) -> ServerCertificate:
    """A server certificate for ``hosts`` (IP addresses or DNS names) signed by ``ca``:
    ``<name>.crt`` (chain) and ``<name>.key`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    out = ServerCertificate(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    sans = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    ext.write_text("\n".join([
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        f"subjectAltName={sans}",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
        "",
    ]))
    try:
        _openssl(["req", "-new", *_NEW_KEY, "-sha256",
                  "-keyout", str(out.key), "-out", str(csr), "-subj", f"/O=logferry/CN={hosts[0]}"],
                 f"make the {name} key")
        _private(out.key)
        leaf = directory / f"{name}.leaf.pem"
        _openssl(["x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
                  "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(_SERVER_DAYS),
                  "-sha256", "-extfile", str(ext), "-out", str(leaf)],
                 f"sign the {name} certificate")
        out.cert.write_text(leaf.read_text() + ca.cert.read_text())
        leaf.unlink()
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
    return out


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

"""The secure dev stack's pieces that need no running service: the CA and certificates it
makes, its secret files, the broker and proxy configs it writes, and the one-line errors that
clients turn TLS and login failures into."""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
from pathlib import Path

import pytest
from aiokafka.errors import IllegalSaslStateError, KafkaConnectionError, SaslAuthenticationFailed
from opensearchpy import AIOHttpConnection, Urllib3HttpConnection
from opensearchpy.exceptions import AuthenticationException, TransportError
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import SSLError as OSSSLError
from pydantic import SecretStr

from logferry import kafka as lf_kafka
from logferry import opensearch as lf_opensearch
from logferry.config import Config, KafkaSettings, OpenSearchSettings
from logferry.devstack._proxy import TlsProxyService, find_nginx
from logferry.devstack._secure import SecureFiles, htpasswd_line, htpasswd_matches
from logferry.devstack._services import KafkaService
from logferry.devstack._tls import issue_server_cert, make_ca
from logferry.errors import (
    ConfigError,
    KafkaSecurityError,
    KafkaUnavailableError,
    OpenSearchSecurityError,
    OpenSearchUnavailableError,
    ToolMissingError,
)

SECRET = "Zebra-Lantern-93-unique"


def _handshake(server_cert: Path, server_key: Path, cafile: Path, hostname: str) -> None:
    """A TLS handshake in memory, verifying as strictly as Python 3.13+ and Java do."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_cert, server_key)
    client_ctx = ssl.create_default_context(cafile=str(cafile))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_server_certificate_is_trusted_through_its_ca_only(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    cert = issue_server_cert(ca, tmp_path / "ca", "server")
    other = make_ca(tmp_path / "other")
    for host in ("127.0.0.1", "localhost"):
        _handshake(cert.cert, cert.key, ca.cert, host)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert.cert, cert.key, other.cert, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match"):
        _handshake(cert.cert, cert.key, ca.cert, "example.org")
    # Kafka's PEM keystore wants an unencrypted PKCS#8 key.
    assert cert.key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert ca.key.stat().st_mode & 0o077 == 0 and cert.key.stat().st_mode & 0o077 == 0


def test_secure_files_are_made_once_private_and_form_a_valid_config(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path / "secure")
    files.ensure()
    before = {p.name: p.read_bytes() for p in files.dir.iterdir()}
    files.ensure()
    assert {p.name: p.read_bytes() for p in files.dir.iterdir()} == before
    for private in (files.ca.key, files.server_key, files.kafka_keystore, files.htpasswd,
                    files.kafka_password_file, files.opensearch_password_file):
        assert private.stat().st_mode & 0o077 == 0, private
    assert files.kafka_password() != files.opensearch_password()
    assert len(files.kafka_password()) >= 24
    assert htpasswd_matches(files.htpasswd, "logferry", files.opensearch_password())
    keystore = files.kafka_keystore.read_text()
    assert keystore.count("BEGIN CERTIFICATE") == 2 and "BEGIN PRIVATE KEY" in keystore

    config = Config.model_validate(files.client_config("127.0.0.1:9094", "https://127.0.0.1:9243"))
    assert config.kafka.security_protocol == "SASL_SSL"
    assert config.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert config.opensearch.ca_file == files.ca_file
    written = files.write_client_config("127.0.0.1:9094", "https://127.0.0.1:9243")
    import tomllib

    assert tomllib.loads(written.read_text()) == files.client_config(
        "127.0.0.1:9094", "https://127.0.0.1:9243")
    assert files.kafka_password() not in written.read_text()


def test_htpasswd_ssha_line() -> None:
    line = htpasswd_line("logferry", SECRET)
    user, _, value = line.strip().partition(":")
    assert user == "logferry" and value.startswith("{SSHA}")
    raw = base64.b64decode(value.removeprefix("{SSHA}"))
    assert hashlib.sha1(SECRET.encode() + raw[20:]).digest() == raw[:20]
    assert SECRET not in line
    assert htpasswd_line("logferry", SECRET) != line  # salted


def test_htpasswd_matches(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    assert not htpasswd_matches(path, "logferry", SECRET)
    path.write_text(htpasswd_line("logferry", SECRET))
    assert htpasswd_matches(path, "logferry", SECRET)
    assert not htpasswd_matches(path, "logferry", SECRET + "x")
    assert not htpasswd_matches(path, "other", SECRET)


def test_kafka_gets_a_sasl_ssl_listener_only_when_secure(tmp_path: Path) -> None:
    plain = KafkaService("kafka", tmp_path, (9092, 9093))._properties()
    assert "SASL" not in plain and "listeners=PLAINTEXT://127.0.0.1:9092," in plain
    files = SecureFiles(tmp_path / "secure")
    secure_svc = KafkaService("kafka", tmp_path, (9092, 9093, 9094), secure=files)
    props = secure_svc._properties()
    assert "SASL_SSL://127.0.0.1:9094" in props
    assert "PLAINTEXT://127.0.0.1:9092" in props  # the plain listener stays
    assert "inter.broker.listener.name=PLAINTEXT" in props
    assert "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512" in props
    assert f"listener.name.sasl_ssl.ssl.keystore.location={files.kafka_keystore}" in props
    assert "password" not in props.lower()
    # A broker started with the plain properties has to be restarted to get the listener.
    secure_svc.dir.mkdir(parents=True)
    secure_svc.props_path.write_text(plain)
    assert secure_svc.needs_restart()
    secure_svc.props_path.write_text(props)
    assert not secure_svc.needs_restart()


def test_proxy_config_terminates_tls_checks_basic_auth_and_drops_the_credential(
        tmp_path: Path) -> None:
    files = SecureFiles(tmp_path / "secure")
    files.ensure()
    proxy = TlsProxyService("nginx", tmp_path, (9243,), upstream_port=9200, secure=files)
    conf = proxy._config(tmp_path / "tmp")
    assert "listen 127.0.0.1:9243 ssl;" in conf
    assert f"ssl_certificate {files.server_cert};" in conf
    assert f"auth_basic_user_file {files.htpasswd};" in conf
    assert "server 127.0.0.1:9200;" in conf
    assert 'proxy_set_header Authorization "";' in conf
    assert files.opensearch_password() not in conf
    try:
        nginx = find_nginx()
    except ToolMissingError:
        return
    cmd = proxy.prepare(jdk=None)  # type: ignore[arg-type]
    assert cmd[0] == str(nginx) and proxy.marker in cmd
    proc = subprocess.run([*cmd, "-t"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


# -- clients: one-line errors --------------------------------------------------------------------

def _kafka(**kw: object) -> KafkaSettings:
    base: dict[str, object] = {
        "brokers": ["127.0.0.1:9094"], "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "logferry",
        "sasl_password": SecretStr(SECRET)}
    return KafkaSettings.model_validate({**base, **kw})


def test_kafka_failures_map_to_one_line_errors_without_the_password(tmp_path: Path) -> None:
    settings = _kafka(ssl_ca_file=tmp_path / "ca.pem")
    cert_err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert_err.verify_message = "self-signed certificate in certificate chain"
    cases: list[tuple[BaseException, type[Exception], str]] = [
        (cert_err, KafkaSecurityError, "TLS certificate is not trusted (self-signed"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
         KafkaSecurityError, "TLS handshake failed"),
        (SaslAuthenticationFailed("invalid credentials"), KafkaSecurityError,
         "rejected the SCRAM-SHA-512 login of user 'logferry'"),
        (IllegalSaslStateError(), KafkaSecurityError, "does not take a SASL login"),
        (KafkaConnectionError("Connection at 127.0.0.1:9094 closed"), KafkaUnavailableError,
         "hung up"),
        (ConnectionRefusedError(111, "Connect call failed"), KafkaUnavailableError,
         "cannot reach Kafka at 127.0.0.1:9094: Connect call failed"),
    ]
    for exc, kind, needle in cases:
        err = lf_kafka.describe(settings, exc)
        assert type(err) is kind, (exc, err)
        assert needle in str(err), str(err)
        assert "\n" not in str(err) and SECRET not in str(err)


async def test_kafka_start_timeout_is_not_diagnosed_again() -> None:
    err = await lf_kafka.start_error(_kafka(ssl_ca_file=None, request_timeout_s=7), TimeoutError())
    assert "no answer within 7s" in str(err)


def test_kafka_client_settings_that_cannot_work_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.ssl_ca_file"):
        lf_kafka.client_kwargs(_kafka(ssl_ca_file=tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"kafka\.ssl_ca_file"):
        lf_kafka.client_kwargs(_kafka(ssl_ca_file=bad))
    with pytest.raises(ConfigError, match=r"needs kafka\.sasl_username and a password"):
        lf_kafka.client_kwargs(_kafka(security_protocol="SASL_PLAINTEXT", sasl_password=None))


def test_opensearch_clients_use_the_explaining_connection_classes(tmp_path: Path) -> None:
    settings = OpenSearchSettings(urls=["https://127.0.0.1:9243"])
    sync = lf_opensearch.client_kwargs(settings)["connection_class"]
    asynchronous = lf_opensearch.client_kwargs(settings, asynchronous=True)["connection_class"]
    assert issubclass(sync, Urllib3HttpConnection)
    assert issubclass(asynchronous, AIOHttpConnection)
    missing = OpenSearchSettings(urls=["https://x:1"], ca_file=tmp_path / "none.pem")
    with pytest.raises(ConfigError, match=r"opensearch\.ca_file"):
        lf_opensearch.client_kwargs(missing)


def test_opensearch_http_errors_become_one_line() -> None:
    conn = lf_opensearch.client_kwargs(OpenSearchSettings())["connection_class"](
        host="127.0.0.1", port=1)
    page = ("<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n"
            "<center><h1>401 Authorization Required</h1></center>\r\n</body>\r\n</html>\r\n")
    with pytest.raises(AuthenticationException) as info:
        conn._raise_error(401, page, "text/html")
    assert info.value.error.startswith("authentication failed: check opensearch.username")
    with pytest.raises(TransportError) as bad_gateway:
        conn._raise_error(502, page.replace("401 Authorization Required", "502 Bad Gateway"),
                          "text/html")
    assert bad_gateway.value.error == "502 Bad Gateway"
    described = lf_opensearch.describe_error(OpenSearchSettings(), info.value, "use OpenSearch")
    assert isinstance(described, OpenSearchSecurityError)
    assert "\n" not in str(described) and "HTTP 401" in str(described)


class _WrapperSSLError(ssl.SSLError):
    """Like aiohttp's ClientConnectorCertificateError: an ssl.SSLError subclass that carries
    the real one."""

    def __init__(self, inner: ssl.SSLError) -> None:
        super().__init__("wrapper")
        self.certificate_error = inner


def test_opensearch_tls_failures_name_the_certificate_problem(tmp_path: Path) -> None:
    ca = make_ca(tmp_path).cert
    settings = OpenSearchSettings(urls=["https://127.0.0.1:9243"], ca_file=ca)
    inner = ssl.SSLCertVerificationError(1, "certificate verify failed")
    inner.verify_message = "unable to get local issuer certificate"
    conn = lf_opensearch.client_kwargs(settings)["connection_class"](host="127.0.0.1", port=9243)
    explained = conn._explain(OSConnectionError("N/A", "wrapped", _WrapperSSLError(inner)))
    assert isinstance(explained, OSSSLError)
    assert "TLS certificate is not trusted (unable to get local issuer certificate)" in (
        explained.error)
    assert str(ca) in explained.error
    err = lf_opensearch.describe_error(settings, explained, "use OpenSearch")
    assert isinstance(err, OpenSearchSecurityError) and "\n" not in str(err)
    plain = OSConnectionError("N/A", "Connect call failed", ConnectionRefusedError())
    assert conn._explain(plain) is plain
    refused = lf_opensearch.describe_error(settings, plain, "use OpenSearch")
    assert type(refused) is OpenSearchUnavailableError

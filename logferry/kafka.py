"""Building aiokafka clients from :class:`KafkaSettings` (TLS, SASL) for agent and indexer, and
the one place that turns a failed client start into a one-line error."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from logferry.config import KafkaSettings
from logferry.errors import ConfigError, KafkaSecurityError, KafkaUnavailableError


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Connection arguments shared by every aiokafka producer, consumer and admin client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": ",".join(settings.brokers),
        "client_id": settings.client_id,
        "request_timeout_ms": int(settings.request_timeout_s * 1000),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = _ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        if not settings.sasl_username or settings.sasl_password is None:
            raise ConfigError(
                f"kafka.security_protocol {settings.security_protocol} needs "
                "kafka.sasl_username and a password (kafka.sasl_password_file or "
                "$LOGFERRY_KAFKA_SASL_PASSWORD)")
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    ca = settings.ssl_ca_file
    try:
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"kafka.ssl_ca_file: cannot load {ca} as PEM CA certificates: "
                          f"{_reason(exc)}") from exc
    if settings.ssl_cert_file:
        try:
            ctx.load_cert_chain(str(settings.ssl_cert_file),
                                str(settings.ssl_key_file) if settings.ssl_key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"kafka.ssl_cert_file/ssl_key_file: cannot load "
                              f"{settings.ssl_cert_file}: {_reason(exc)}") from exc
    return ctx


async def start_error(settings: KafkaSettings, exc: BaseException) -> KafkaUnavailableError:
    """The one-line error for a producer or consumer whose ``start()`` failed with ``exc``.

    aiokafka's bootstrap logs each broker's real failure (a certificate it does not trust, a
    rejected password) and raises only "Unable to bootstrap"; so this connects to the brokers
    once more, through aiokafka's own connection code with the same settings, to find the
    cause. A rejected login or an untrusted certificate is a :class:`KafkaSecurityError`:
    retrying cannot fix it, so agent and indexer exit instead of retrying.
    """
    brokers = ", ".join(settings.brokers)
    if isinstance(exc, TimeoutError):
        return KafkaUnavailableError(
            f"cannot reach Kafka at {brokers}: no answer within {settings.request_timeout_s:g}s "
            "(kafka.request_timeout_s)")
    cause = await _connect_failure(settings) or exc
    return describe(settings, cause)


async def _connect_failure(settings: KafkaSettings) -> BaseException | None:
    from aiokafka.conn import create_conn

    kwargs = client_kwargs(settings)
    for broker in settings.brokers:
        host, _, port = broker.rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(
                host.strip("[]"), int(port), client_id=settings.client_id,
                request_timeout_ms=kwargs["request_timeout_ms"],
                ssl_context=kwargs.get("ssl_context"),
                security_protocol=settings.security_protocol,
                sasl_mechanism=kwargs.get("sasl_mechanism"),
                sasl_plain_username=kwargs.get("sasl_plain_username"),
                sasl_plain_password=kwargs.get("sasl_plain_password"),
            ), settings.request_timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            return exc
        conn.close()
    return None


def describe(settings: KafkaSettings, exc: BaseException) -> KafkaUnavailableError:
    """Map what aiokafka raised to a one-line error that says what to check."""
    brokers = ", ".join(settings.brokers)
    proto = settings.security_protocol
    if isinstance(exc, ssl.SSLCertVerificationError):
        ca = settings.ssl_ca_file or "the system CA store"
        why = getattr(exc, "verify_message", None) or _reason(exc)
        return KafkaSecurityError(
            f"Kafka at {brokers}: the broker's TLS certificate is not trusted "
            f"({why}); is kafka.ssl_ca_file ({ca}) the CA that signed it?")
    if isinstance(exc, ssl.SSLError):
        return KafkaSecurityError(
            f"Kafka at {brokers}: TLS handshake failed ({_reason(exc)}); does "
            f"kafka.security_protocol {proto} match the listener?")
    if isinstance(exc, SaslAuthenticationFailed):
        return KafkaSecurityError(
            f"Kafka at {brokers} rejected the {settings.sasl_mechanism or 'PLAIN'} login of "
            f"user {settings.sasl_username!r}: check kafka.sasl_username and the password "
            "(kafka.sasl_password_file or $LOGFERRY_KAFKA_SASL_PASSWORD)")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return KafkaSecurityError(f"Kafka at {brokers}: {_reason(exc)} "
                                  "(kafka.sasl_mechanism)")
    if isinstance(exc, IllegalSaslStateError):
        return KafkaSecurityError(
            f"Kafka at {brokers} does not take a SASL login on this listener; does "
            f"kafka.security_protocol {proto} match it?")
    hint = ""
    if "closed" in str(exc).lower():
        # A TLS listener drops a plaintext client (and vice versa) without a word.
        hint = f" (the broker hung up: does kafka.security_protocol {proto} match the listener?)"
    return KafkaUnavailableError(f"cannot reach Kafka at {brokers}: {_reason(exc)}{hint}")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # set by the ssl module on the errors it raises
    if isinstance(exc, ssl.SSLError) and reason:
        return str(reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text or type(exc).__name__

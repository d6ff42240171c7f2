"""Building aiokafka clients from :class:`KafkaSettings` (TLS, SASL) for agent and indexer."""

from __future__ import annotations

import ssl
from typing import Any

from logferry.config import KafkaSettings


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Connection arguments shared by every aiokafka producer, consumer and admin client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": ",".join(settings.brokers),
        "client_id": settings.client_id,
        "request_timeout_ms": int(settings.request_timeout_s * 1000),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(
            cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None)
        if settings.ssl_cert_file:
            ctx.load_cert_chain(str(settings.ssl_cert_file),
                                str(settings.ssl_key_file) if settings.ssl_key_file else None)
        kwargs["ssl_context"] = ctx
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None)
    return kwargs

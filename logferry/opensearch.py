"""Building OpenSearch clients from :class:`OpenSearchSettings`, and the document layout that
the indexer writes and ``logferry search`` reads."""

from __future__ import annotations

import ssl
from typing import Any

import orjson
from opensearchpy.serializer import JSONSerializer

from logferry.config import OpenSearchSettings

# Field names follow the Elastic Common Schema where one exists (documented in the README).
F_TIMESTAMP = "@timestamp"
F_MESSAGE = "message"
F_HOST = "host.name"
F_PATH = "log.file.path"
F_OFFSET = "log.offset"
F_LEVEL = "log.level"
F_NAMESPACE = "kubernetes.namespace"
F_POD = "kubernetes.pod.name"
F_CONTAINER = "kubernetes.container.name"
F_FID = "logferry.fid"
F_INGESTED = "event.ingested"

# The values of log.level: the indexer normalizes every level it recognises to one of these.
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")


def index_pattern(settings: OpenSearchSettings) -> str:
    return f"{settings.index_prefix}-*"


class OrjsonSerializer(JSONSerializer):
    """opensearch-py parses every bulk response (one item per document) with the stdlib json;
    orjson does it several times faster."""

    def loads(self, s: str | bytes) -> Any:
        return orjson.loads(s)

    def dumps(self, data: Any) -> Any:
        if isinstance(data, str | bytes):
            return data
        return orjson.dumps(data, default=self.default).decode()


def client_kwargs(settings: OpenSearchSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "serializer": OrjsonSerializer(),
        "hosts": list(settings.urls),
        "timeout": settings.request_timeout_s,
        "http_compress": settings.compress_requests,
    }
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        kwargs["http_auth"] = (settings.username, password)
    if any(u.startswith("https://") for u in settings.urls):
        ctx = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
        if not settings.verify_certs:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if settings.client_cert_file:
            ctx.load_cert_chain(
                str(settings.client_cert_file),
                str(settings.client_key_file) if settings.client_key_file else None)
        kwargs["ssl_context"] = ctx
        kwargs["use_ssl"] = True
        kwargs["verify_certs"] = settings.verify_certs
    return kwargs

"""Building OpenSearch clients from :class:`OpenSearchSettings`, and the document layout that
the indexer writes and ``logferry search`` reads.

The clients built here raise opensearch-py's usual exceptions, but with a one-line ``error``
that says what to check: a rejected password (401) or an untrusted TLS certificate reads as
such, not as an HTML page or a chain of wrapped SSL exceptions.
"""

from __future__ import annotations

import re
import ssl
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import Urllib3HttpConnection
from opensearchpy._async.http_aiohttp import AIOHttpConnection
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import SSLError as OSSSLError
from opensearchpy.exceptions import TransportError
from opensearchpy.serializer import JSONSerializer

from logferry.config import OpenSearchSettings
from logferry.errors import ConfigError, OpenSearchSecurityError, OpenSearchUnavailableError

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


def client_kwargs(settings: OpenSearchSettings, asynchronous: bool = False) -> dict[str, Any]:
    """Arguments for ``OpenSearch(**...)``, or ``AsyncOpenSearch(**...)`` with
    ``asynchronous``."""
    base = AIOHttpConnection if asynchronous else Urllib3HttpConnection
    mixin = _AsyncExplained if asynchronous else _SyncExplained
    kwargs: dict[str, Any] = {
        "serializer": OrjsonSerializer(),
        "hosts": list(settings.urls),
        "timeout": settings.request_timeout_s,
        "http_compress": settings.compress_requests,
        "connection_class": type(f"Logferry{base.__name__}", (mixin, base),
                                 {"ca_file": settings.ca_file}),
    }
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        kwargs["http_auth"] = (settings.username, password)
    if any(u.startswith("https://") for u in settings.urls):
        # The context carries verify_certs; passing it as well only earns a warning that
        # opensearch-py ignores it.
        kwargs["ssl_context"] = _ssl_context(settings)
        kwargs["use_ssl"] = True
    return kwargs


def _ssl_context(settings: OpenSearchSettings) -> ssl.SSLContext:
    ca = settings.ca_file
    try:
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"opensearch.ca_file: cannot load {ca} as PEM CA certificates: "
                          f"{_ssl_reason(exc)}") from exc
    if not settings.verify_certs:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.client_cert_file:
        try:
            ctx.load_cert_chain(
                str(settings.client_cert_file),
                str(settings.client_key_file) if settings.client_key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"opensearch.client_cert_file/client_key_file: cannot load "
                              f"{settings.client_cert_file}: {_ssl_reason(exc)}") from exc
    return ctx


def describe_error(settings: OpenSearchSettings, exc: TransportError, doing: str
                   ) -> OpenSearchUnavailableError:
    """The one-line error for a request that failed with ``exc`` while ``doing`` something
    (\"cannot {doing} at URL: ...\"); credentials and certificates are security errors."""
    urls = ", ".join(settings.urls)
    status = exc.status_code
    detail = exc.error if isinstance(exc.error, str) and exc.error != "N/A" else str(exc)
    if isinstance(exc, OSConnectionError):
        cls = OpenSearchSecurityError if isinstance(exc, OSSSLError) else (
            OpenSearchUnavailableError)
        return cls(f"cannot {doing} at {urls}: {detail}")
    cls = OpenSearchSecurityError if status in (401, 403) else OpenSearchUnavailableError
    return cls(f"cannot {doing} at {urls}: HTTP {status} {detail}")


class _Explained:
    """What both connection classes share: one-line errors for HTTP and TLS failures."""

    host: str
    ca_file: Path | None

    def _raise_error(self, status_code: int, raw_data: str | bytes,
                     content_type: str | None = None) -> None:
        try:
            super()._raise_error(status_code, raw_data, content_type)  # type: ignore[misc]
        except TransportError as exc:
            raise type(exc)(exc.status_code, _http_error(exc), exc.info) from None

    def _explain(self, exc: OSConnectionError) -> OSConnectionError:
        found = _ssl_cause(exc.info)
        if found is None:
            return exc
        if isinstance(found, ssl.SSLCertVerificationError):
            ca = self.ca_file or "the system CA store"
            why = getattr(found, "verify_message", None) or _ssl_reason(found)
            message = (f"the server's TLS certificate is not trusted ({why}); "
                       f"is opensearch.ca_file ({ca}) the CA that signed it?")
        else:
            message = (f"TLS handshake failed ({_ssl_reason(found)}); does {self.host} serve "
                       "https?")
        return OSSSLError("N/A", message, exc.info)


class _SyncExplained(_Explained):
    def perform_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().perform_request(*args, **kwargs)  # type: ignore[misc]
        except OSConnectionError as exc:
            explained = self._explain(exc)
            if explained is exc:
                raise
            raise explained from exc


class _AsyncExplained(_Explained):
    async def perform_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().perform_request(*args, **kwargs)  # type: ignore[misc]
        except OSConnectionError as exc:
            explained = self._explain(exc)
            if explained is exc:
                raise
            raise explained from exc


def _http_error(exc: TransportError) -> str:
    if exc.status_code == 401:
        return ("authentication failed: check opensearch.username and the password "
                "(opensearch.password_file or $LOGFERRY_OPENSEARCH_PASSWORD)")
    error = exc.error
    if not isinstance(error, str):
        return str(error)
    # A proxy in front of OpenSearch (nginx, a load balancer) answers with an HTML page.
    title = re.search(r"<title>(.*?)</title>", error, re.IGNORECASE | re.DOTALL)
    text = title.group(1) if title else error
    text = " ".join(text.split())
    if exc.status_code == 403:
        text = f"forbidden ({text}): the user lacks a permission"
    return text if len(text) <= 300 else text[:297] + "..."


def _ssl_cause(exc: object) -> ssl.SSLError | None:
    """The ssl module's own error somewhere inside what urllib3 or aiohttp raised (their
    wrappers subclass ssl.SSLError too, without its details)."""
    queue: deque[object] = deque([exc])
    seen: set[int] = set()
    while queue:
        item = queue.popleft()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLError) and type(item).__module__ == "ssl":
            return item
        queue.extend(item.args)
        queue.extend((item.__cause__, item.__context__, getattr(item, "certificate_error", None),
                      getattr(item, "os_error", None)))
    return None


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # set by the ssl module on the errors it raises
    if isinstance(exc, ssl.SSLError) and reason:
        return str(reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__

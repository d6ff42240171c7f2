"""``logferry search``: the newest matching lines, readable in a terminal or as JSON.

``--follow`` (new lines as they are indexed) lives in :mod:`logferry.follow` and reuses the
query, the error handling and the formatting from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import (
    ConnectionTimeout,
    NotFoundError,
    RequestError,
    TransportError,
)

from logferry.config import OpenSearchSettings
from logferry.errors import (
    ConfigError,
    NoIndexError,
    OpenSearchUnavailableError,
)
from logferry.opensearch import (
    F_CONTAINER,
    F_HOST,
    F_LEVEL,
    F_MESSAGE,
    F_NAMESPACE,
    F_OFFSET,
    F_PATH,
    F_POD,
    F_TIMESTAMP,
    client_kwargs,
    index_pattern,
)

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")


def time_bound(value: str) -> str:
    """``15m``/``2h``/``7d`` become OpenSearch date math relative to now; ISO 8601 passes."""
    match = _RELATIVE.match(value.strip())
    if match:
        return f"now-{match.group(1)}{match.group(2)}"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"time {value!r} is neither a duration like 15m, 2h, 7d nor an ISO 8601 time"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class SearchRequest:
    query: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 50
    # Exact keyword matches: (field, accepted values); a document must match every field.
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()


def match_query(req: SearchRequest) -> dict[str, Any]:
    """The ``bool`` query for QUERY, the exact-match filters and the @timestamp bounds."""
    must: list[dict[str, Any]] = []
    if req.query:
        must.append({"query_string": {"query": req.query, "default_field": F_MESSAGE,
                                      "default_operator": "AND"}})
    flt: list[dict[str, Any]] = []
    for field, values in req.filters:
        if len(values) == 1:
            flt.append({"term": {field: values[0]}})
        elif values:
            flt.append({"terms": {field: list(values)}})
    if req.since or req.until:
        rng: dict[str, str] = {}
        if req.since:
            rng["gte"] = time_bound(req.since)
        if req.until:
            rng["lte"] = time_bound(req.until)
        flt.append({"range": {F_TIMESTAMP: rng}})
    return {"bool": {"must": must or [{"match_all": {}}], "filter": flt}}


def build_query(req: SearchRequest) -> dict[str, Any]:
    """The newest ``req.limit`` matches, newest first."""
    return {
        "size": req.limit,
        "query": match_query(req),
        "sort": [{F_TIMESTAMP: {"order": "desc"}}, {F_OFFSET: {"order": "desc"}}],
    }


class LogIndex:
    """The logferry indices of one cluster; every failure becomes a one-line LogferryError."""

    def __init__(self, settings: OpenSearchSettings) -> None:
        self.settings = settings
        self.pattern = index_pattern(settings)
        self._client = OpenSearch(**client_kwargs(settings))

    def __enter__(self) -> LogIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._client.close()

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        urls = ", ".join(self.settings.urls)
        try:
            # allow_no_indices=false: an unknown prefix is an error, not an empty result.
            resp: dict[str, Any] = self._client.search(
                index=self.pattern, body=body,
                params={"ignore_unavailable": "true", "allow_no_indices": "false"})
        except ConnectionTimeout as exc:
            raise OpenSearchUnavailableError(
                f"OpenSearch at {urls} did not answer within "
                f"{self.settings.request_timeout_s:g}s") from exc
        except OSConnectionError as exc:
            reason = exc.error if isinstance(exc.error, str) and exc.error != "N/A" else exc
            raise OpenSearchUnavailableError(
                f"cannot reach OpenSearch at {urls}: {reason}") from exc
        except NotFoundError as exc:
            if exc.error != "index_not_found_exception":
                raise OpenSearchUnavailableError(
                    f"OpenSearch at {urls} refused the search: HTTP 404 {exc.error}") from exc
            raise NoIndexError(
                f"no index matches {self.pattern} at {urls}: nothing was indexed yet (or "
                f"opensearch.index_prefix {self.settings.index_prefix!r} is not the one the "
                f"indexer writes)") from exc
        except RequestError as exc:
            raise ConfigError(f"OpenSearch rejected the search: {_reason(exc)}") from exc
        except TransportError as exc:
            raise OpenSearchUnavailableError(
                f"OpenSearch at {urls} refused the search: HTTP {exc.status_code} {exc.error}"
            ) from exc
        return resp


def _reason(exc: TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        reason = causes[0].get("reason") if isinstance(causes[0], dict) else None
        if reason:
            return str(reason).replace("\n", " ")
    return str(exc.error)


def run_search(settings: OpenSearchSettings, req: SearchRequest) -> list[dict[str, Any]]:
    """The ``_source`` of the newest matches, newest first."""
    with LogIndex(settings) as index:
        hits: list[dict[str, Any]] = index.search(build_query(req))["hits"]["hits"]
    return [h["_source"] for h in hits]


# -- output ----------------------------------------------------------------------------------

_LEVEL_COLORS = {"trace": "2", "debug": "34", "info": "32", "warn": "33", "error": "31",
                 "fatal": "1;31"}
# Terminal control characters from a log line must not reach the terminal (escape sequences
# could rewrite the screen): shown as \xNN. Newlines and tabs stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _get(doc: dict[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def origin(doc: dict[str, Any]) -> str:
    """``namespace/pod/container`` for a container log, ``host path`` for a plain file."""
    k8s = [_get(doc, f) for f in (F_NAMESPACE, F_POD, F_CONTAINER)]
    if any(k8s):
        return "/".join(str(v) if v else "-" for v in k8s)
    return f"{_get(doc, F_HOST) or '-'} {_get(doc, F_PATH) or '-'}"


def format_line(doc: dict[str, Any], color: bool) -> str:
    """``time LEVEL origin message``; the level is ``-`` when the indexer found none."""
    ts = str(_get(doc, F_TIMESTAMP) or "-")
    level = str(_get(doc, F_LEVEL) or "")
    shown = (level.upper() or "-").ljust(5)
    source = origin(doc)
    message = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(_get(doc, F_MESSAGE) or ""))
    if not color:
        return f"{ts} {shown} {source} {message}"
    code = _LEVEL_COLORS.get(level.lower())
    if code:
        shown = f"\x1b[{code}m{shown}\x1b[0m"
    return f"\x1b[2m{ts}\x1b[0m {shown} \x1b[36m{source}\x1b[0m {message}"

"""``logferry search``: the newest matching lines, readable in a terminal or as JSON."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from logferry.config import OpenSearchSettings
from logferry.errors import ConfigError, OpenSearchUnavailableError
from logferry.opensearch import (
    F_HOST,
    F_MESSAGE,
    F_OFFSET,
    F_PATH,
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
    filters: tuple[tuple[str, str], ...] = ()


def build_query(req: SearchRequest) -> dict[str, Any]:
    must: list[dict[str, Any]] = []
    if req.query:
        must.append({"query_string": {"query": req.query, "default_field": F_MESSAGE,
                                      "default_operator": "AND"}})
    flt: list[dict[str, Any]] = [{"term": {field: value}} for field, value in req.filters]
    if req.since or req.until:
        rng: dict[str, str] = {}
        if req.since:
            rng["gte"] = time_bound(req.since)
        if req.until:
            rng["lte"] = time_bound(req.until)
        flt.append({"range": {F_TIMESTAMP: rng}})
    return {
        "size": req.limit,
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": flt}},
        "sort": [{F_TIMESTAMP: {"order": "desc"}}, {F_OFFSET: {"order": "desc"}}],
    }


def run_search(settings: OpenSearchSettings, req: SearchRequest) -> list[dict[str, Any]]:
    client = OpenSearch(**client_kwargs(settings))
    urls = ", ".join(settings.urls)
    try:
        resp = client.search(index=index_pattern(settings), body=build_query(req),
                             params={"ignore_unavailable": "true", "allow_no_indices": "true"})
    except OSConnectionError as exc:
        raise OpenSearchUnavailableError(f"cannot reach OpenSearch at {urls}: {exc}") from exc
    except TransportError as exc:
        raise OpenSearchUnavailableError(
            f"OpenSearch at {urls} refused the search: HTTP {exc.status_code} {exc.error}"
        ) from exc
    finally:
        client.close()
    hits: list[dict[str, Any]] = resp["hits"]["hits"]
    return [h["_source"] for h in hits]


def _get(doc: dict[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def format_line(doc: dict[str, Any], color: bool) -> str:
    ts = str(_get(doc, F_TIMESTAMP) or "")
    origin = f"{_get(doc, F_HOST) or '-'} {_get(doc, F_PATH) or '-'}"
    message = str(_get(doc, F_MESSAGE) or "")
    if color:
        return f"\x1b[2m{ts}\x1b[0m \x1b[36m{origin}\x1b[0m {message}"
    return f"{ts} {origin} {message}"

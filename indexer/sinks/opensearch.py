"""Bulk writes to OpenSearch that read every item's status.

HTTP 200 on ``_bulk`` says nothing about the documents: each item has its own status. 201 is
indexed; 409 on ``create`` means the document (same origin id) is already there, which is what a
replay looks like, so it counts as done. 429 and 503 are back-pressure and are retried forever
with jittered exponential backoff; other 5xx are retried ``max_retries`` times; anything else
(mapping and parse errors) will never succeed and goes to the dead-letter topic with its reason.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from indexer.metrics import IndexerMetrics
from indexer.sinks.template import index_template, ism_policy
from logferry.config import IndexerSettings, OpenSearchSettings
from logferry.opensearch import client_kwargs, describe_error

log = logging.getLogger("logferry.indexer.opensearch")

_ALWAYS_RETRY = {429, 503}
_BACKOFF_BASE_S = 0.2
_BACKOFF_MAX_S = 30.0


# Only what the indexer reads from a bulk response: ``errors`` (false: every item is created)
# and each item's status and error. The response shrinks from ~200 to ~26 bytes per document,
# which OpenSearch does not have to write and the indexer does not have to parse.
BULK_FILTER_PATH = "errors,items.*.status,items.*.error"


@dataclass(slots=True)
class Rejected:
    """A document OpenSearch will never take: ``position`` in the list given to ``write``."""

    position: int
    status: int
    reason: str


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential backoff."""
    return random.uniform(0, min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * (2 ** min(attempt, 16))))


class OpenSearchSink:
    def __init__(self, settings: OpenSearchSettings, indexer: IndexerSettings,
                 metrics: IndexerMetrics) -> None:
        self.settings = settings
        self.max_retries = indexer.max_retries
        self.metrics = metrics
        self.client = AsyncOpenSearch(**client_kwargs(settings, asynchronous=True))

    async def start(self) -> None:
        try:
            await self.client.info()
            await self.client.indices.put_index_template(
                name=self.settings.index_prefix, body=index_template(self.settings))
        except TransportError as exc:
            await self.client.close()
            raise describe_error(self.settings, exc, "use OpenSearch") from exc

    async def install_retention(self) -> None:
        """Install the ISM retention policy when asked for; a cluster without the ISM plugin
        (like the dev stack) gets a warning, not a failure: retention is not correctness."""
        if self.settings.retention_days is None:
            return
        name = f"{self.settings.index_prefix}-retention"
        try:
            await self.client.transport.perform_request(
                "PUT", f"/_plugins/_ism/policies/{name}", body=ism_policy(self.settings))
        except TransportError as exc:
            if exc.status_code == 409:  # exists: keep the operator's edits
                return
            log.warning("ISM retention policy not installed (is the index-management plugin "
                        "installed?)", extra={"policy": name, "error": _describe(exc)})

    async def close(self) -> None:
        await self.client.close()

    async def write(self, lines: list[bytes],
                    wait: Callable[[float], Awaitable[None]]) -> list[Rejected]:
        """Write documents (``lines``: the NDJSON action and source lines of each) until each
        is indexed, already present, or rejected for good.

        ``wait`` sleeps between retries; the indexer passes one that keeps its Kafka consumer
        polling (with partitions paused) so a long OpenSearch outage does not cost the group
        membership.
        """
        rejected: list[Rejected] = []
        retries: dict[int, int] = {}
        todo: list[int] | None = None  # positions still to write; None: all of them
        body = b"".join(lines)
        attempt = 0
        while True:
            count = len(lines) if todo is None else len(todo)
            started = time.monotonic()
            try:
                resp = await self.client.bulk(body=body, filter_path=BULK_FILTER_PATH)
            except (OSConnectionError, TransportError) as exc:
                delay = backoff_s(attempt)
                attempt += 1
                self.metrics.bulk_failures.inc()
                log.warning("bulk request failed; retrying",
                            extra={"error": _describe(exc), "docs": count,
                                   "attempt": attempt, "delay_s": round(delay, 2)})
                await wait(delay)
                continue
            self.metrics.bulk_latency.observe(time.monotonic() - started)
            items = resp.get("items") or ()
            if len(items) != count:
                raise ValueError(f"bulk response has {len(items)} items for {count} documents")
            if resp.get("errors") is False:  # every item is 200/201: nothing to look at
                self.metrics.indexed.inc(count)
                return rejected
            retry: list[int] = []
            indexed = duplicates = 0
            for i, item in enumerate(items):
                position = i if todo is None else todo[i]
                result = item.get("create") or next(iter(item.values()))
                status = int(result.get("status", 0))
                if status in (200, 201):
                    indexed += 1
                elif status == 409:
                    duplicates += 1
                elif status in _ALWAYS_RETRY or (
                        status >= 500 and retries.get(position, 0) < self.max_retries):
                    retries[position] = retries.get(position, 0) + 1
                    retry.append(position)
                else:
                    rejected.append(Rejected(position, status, _item_reason(result)))
            self.metrics.indexed.inc(indexed)
            self.metrics.duplicates.inc(duplicates)
            if not retry:
                return rejected
            self.metrics.retried.inc(len(retry))
            delay = backoff_s(attempt)
            attempt += 1
            log.warning("bulk items to retry", extra={"count": len(retry),
                                                      "delay_s": round(delay, 2)})
            await wait(delay)
            todo = retry
            body = b"".join([lines[p] for p in retry])


def _item_reason(result: dict[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return str(error)


def _describe(exc: Exception) -> str:
    if isinstance(exc, TransportError) and isinstance(exc.status_code, int):
        return f"HTTP {exc.status_code} {exc.error}"
    return str(exc) or type(exc).__name__

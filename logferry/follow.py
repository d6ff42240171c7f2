"""``logferry search --follow``: new matching lines as they are indexed, like ``tail -f``.

Documents do not become searchable in ``@timestamp`` order: the agent ships a line when it
reads it (a node catching up ships hours-old lines), the indexer bulk-loads batches
concurrently and retries, and OpenSearch shows a document only after its next refresh. Polling
on ``@timestamp`` would therefore skip late lines. The cursor is instead ``event.ingested``,
which the indexer sets when it takes a batch from Kafka, with an overlap window:

* The *watermark* W is the newest ``event.ingested`` that was searchable at the previous poll:
  a max aggregation over all logferry documents (not only the matching ones, so a rare filter
  does not widen the window), taken in the same request as the first page.
* Each poll asks for every match with ``event.ingested >= W - overlap``, oldest first, page
  by page with ``search_after`` on (event.ingested, logferry.fid, log.offset), a total order
  since (fid, offset) is what the document ``_id`` is made of.
* Matches already printed are skipped by ``_id``. An id is remembered only while its
  ``event.ingested`` is inside the window, so memory is bounded by the matches of one window,
  and in any case by ``max_seen`` ids.

Guarantees:

* **No duplicates**, unconditionally: the lower bound of the window never decreases, an id is
  forgotten only once its ``event.ingested`` is below that bound, and a hit below the bound is
  never printed (a pass keeps the bound it began with, the id cap may raise it meanwhile).
* **No gaps**, provided every document becomes searchable less than ``overlap`` (10 s) after
  its ``event.ingested``, clock skew between indexer replicas included: that covers a bulk
  request, a refresh (1 s) and a few retries. Why: a pass that begins at time t reads a
  watermark W <= t, and a document not yet searchable at t has ``event.ingested`` > t - overlap
  >= W - overlap, so the next pass's window still holds it. A document that an indexer kept
  retrying for longer is missed by ``--follow`` (a plain search finds it). If more than
  ``max_seen`` matches fall inside one window, the oldest ids are dropped and the lower bound
  moves past them: still no duplicates, but a shorter window for late documents.

Start: the window's current matches are remembered without being printed, then the newest
``--limit`` matches are printed (oldest first) and remembered; from then on, what becomes
searchable is printed. Everything that was searchable before the start is thus either in the
backlog or deliberately not shown, and nothing is printed twice.
"""

from __future__ import annotations

import heapq
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from logferry.errors import OpenSearchUnavailableError
from logferry.opensearch import F_FID, F_INGESTED, F_OFFSET
from logferry.search import SearchRequest, build_query, match_query

OVERLAP_S = 10.0
POLL_INTERVAL_S = 1.0
MAX_RETRY_DELAY_S = 30.0
PAGE_SIZE = 500
MAX_SEEN = 100_000

_SORT: list[dict[str, Any]] = [
    {F_INGESTED: {"order": "asc"}},
    {F_FID: {"order": "asc", "unmapped_type": "keyword"}},
    {F_OFFSET: {"order": "asc", "unmapped_type": "long"}},
]

Emit = Callable[[dict[str, Any]], None]


class Index(Protocol):
    """What following needs of :class:`logferry.search.LogIndex`."""

    def search(self, body: dict[str, Any]) -> dict[str, Any]: ...


class FollowCursor:
    """The follow window and the ids printed inside it. Pure: no I/O, times in epoch ms."""

    def __init__(self, overlap_ms: int = int(OVERLAP_S * 1000),
                 max_seen: int = MAX_SEEN) -> None:
        self.overlap_ms = overlap_ms
        self.max_seen = max_seen
        self.watermark: int | None = None  # newest event.ingested seen searchable
        self.floor: int | None = None  # ids up to this event.ingested were dropped (max_seen)
        self._seen: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []  # (event.ingested, id), oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def lower_bound(self) -> int | None:
        """The smallest ``event.ingested`` the next poll asks for; None: no bound yet."""
        bounds = []
        if self.watermark is not None:
            bounds.append(self.watermark - self.overlap_ms)
        if self.floor is not None:
            bounds.append(self.floor + 1)
        return max(bounds) if bounds else None

    def is_new(self, doc_id: str) -> bool:
        return doc_id not in self._seen

    def admit(self, doc_id: str, ingested: int) -> bool:
        """True, and remembered, for a document a poll returned that was not printed yet.

        False also below the window: the id cap may have dropped ids of a printed document
        that the current pass (whose bound was fixed when it began) still returns."""
        low = self.lower_bound()
        if (low is not None and ingested < low) or doc_id in self._seen:
            return False
        self.remember(doc_id, ingested)
        return True

    def remember(self, doc_id: str, ingested: int | None) -> None:
        """Note a printed document. One below the window (or without ``event.ingested``)
        cannot be returned again and is not kept."""
        low = self.lower_bound()
        if ingested is None or (low is not None and ingested < low) or doc_id in self._seen:
            return
        self._seen[doc_id] = ingested
        heapq.heappush(self._heap, (ingested, doc_id))
        while len(self._seen) > self.max_seen:
            self._drop_oldest()

    def advance(self, searchable_max: int | None) -> None:
        """After a poll: move the watermark up and forget ids that fell out of the window."""
        if searchable_max is not None and (self.watermark is None
                                           or searchable_max > self.watermark):
            self.watermark = searchable_max
        low = self.lower_bound()
        while self._heap and low is not None and self._heap[0][0] < low:
            _, doc_id = heapq.heappop(self._heap)
            del self._seen[doc_id]

    def _drop_oldest(self) -> None:
        # Drop every id of the oldest millisecond and never ask for that millisecond again.
        oldest = self._heap[0][0]
        while self._heap and self._heap[0][0] == oldest:
            _, doc_id = heapq.heappop(self._heap)
            del self._seen[doc_id]
        self.floor = oldest if self.floor is None else max(self.floor, oldest)


def _window(lower: int | None) -> dict[str, Any]:
    if lower is None:
        return {"exists": {"field": F_INGESTED}}
    return {"range": {F_INGESTED: {"gte": lower, "format": "epoch_millis"}}}


def follow_query(req: SearchRequest, lower: int | None, after: list[Any] | None = None,
                 size: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of the matches with ``event.ingested >= lower``, oldest ingestion first. The
    first page (``after`` None) also asks for the newest ``event.ingested`` of all documents
    in the window (the next watermark)."""
    query = match_query(req)
    query["bool"]["filter"].append(_window(lower))
    body: dict[str, Any] = {"size": size, "query": query, "sort": _SORT,
                            "track_total_hits": False}
    if after is None:
        body["aggs"] = {"all": {"global": {}, "aggs": {"window": {
            "filter": _window(lower), "aggs": {"newest": {"max": {"field": F_INGESTED}}}}}}}
    else:
        body["search_after"] = after
    return body


def searchable_max(resp: dict[str, Any]) -> int | None:
    """The newest ``event.ingested`` from :func:`follow_query`'s aggregation (epoch ms)."""
    aggs = resp.get("aggregations") or {}
    value = aggs.get("all", {}).get("window", {}).get("newest", {}).get("value")
    if value is None:
        value = aggs.get("newest", {}).get("value")
    return None if value is None else int(value)


def docvalue_ms(hit: dict[str, Any]) -> int | None:
    """``event.ingested`` as epoch ms from a hit's ``fields`` (asked as ``epoch_millis``)."""
    values = (hit.get("fields") or {}).get(F_INGESTED) or []
    if not values:
        return None
    return int(str(values[0]).split(".", 1)[0])


def poll(index: Index, req: SearchRequest, cursor: FollowCursor, emit: Emit | None,
         page_size: int = PAGE_SIZE) -> int:
    """One pass over the cursor's window. ``emit`` gets each match not printed before, in
    ingestion order (None: only remember them). Returns how many were new."""
    lower = cursor.lower_bound()  # fixed for the whole pass, whatever remember() drops
    after: list[Any] | None = None
    newest: int | None = None
    new = 0
    while True:
        resp = index.search(follow_query(req, lower, after, page_size))
        if after is None:
            # The watermark is what was searchable when the pass began. Not the hits of later
            # pages: they may have become searchable after a document that this pass skipped
            # (sorted before the page) and whose place in the window must stay covered.
            newest = searchable_max(resp)
        hits: list[dict[str, Any]] = resp["hits"]["hits"]
        for hit in hits:
            if cursor.admit(hit["_id"], int(hit["sort"][0])):
                if emit is not None:
                    emit(hit["_source"])
                new += 1
        if len(hits) < page_size:
            break
        after = hits[-1]["sort"]
    cursor.advance(newest)
    return new


def start(index: Index, req: SearchRequest, cursor: FollowCursor, emit: Emit) -> None:
    """Remember the current window, then print the newest ``req.limit`` matches oldest first."""
    resp = index.search({"size": 0, "track_total_hits": False,
                         "aggs": {"newest": {"max": {"field": F_INGESTED}}}})
    cursor.advance(searchable_max(resp))
    poll(index, req, cursor, None)
    body = build_query(req)
    body["docvalue_fields"] = [{"field": F_INGESTED, "format": "epoch_millis"}]
    backlog: list[dict[str, Any]] = index.search(body)["hits"]["hits"]
    for hit in reversed(backlog):
        emit(hit["_source"])
        cursor.remember(hit["_id"], docvalue_ms(hit))


def follow(index: Index, req: SearchRequest, emit: Emit, warn: Callable[[str], None],
           interval_s: float = POLL_INTERVAL_S, cursor: FollowCursor | None = None,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """The backlog, then every new match, until a signal interrupts (see :func:`run_until_signal`).
    OpenSearch going away while following is retried with backoff, not fatal."""
    cursor = cursor if cursor is not None else FollowCursor()
    start(index, req, cursor, emit)
    delay = interval_s
    failing = False
    while True:
        sleep(delay)
        try:
            poll(index, req, cursor, emit)
        except OpenSearchUnavailableError as exc:
            if not failing:
                warn(f"{exc}; retrying")
            failing = True
            delay = min(delay * 2, MAX_RETRY_DELAY_S)
            continue
        if failing:
            warn("OpenSearch answers again; following")
        failing = False
        delay = interval_s


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, so that no ``except Exception`` in a client
    library swallows it."""


def run_until_signal(run: Callable[[], None]) -> None:
    """Run ``run`` until SIGINT (Ctrl-C) or SIGTERM, which end it quietly and promptly, even in
    the middle of a request."""
    sigs = (signal.SIGINT, signal.SIGTERM)

    def stop(signum: int, frame: FrameType | None) -> None:
        for sig in sigs:  # a second signal must not interrupt the way out
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped

    previous = {sig: signal.signal(sig, stop) for sig in sigs}
    try:
        run()
    except Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""`logferry search`: query building, output, and the pure parts of --follow (no services)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logferry import cli as cli_module
from logferry.errors import ConfigError, OpenSearchUnavailableError
from logferry.follow import (
    FollowCursor,
    Stopped,
    docvalue_ms,
    follow,
    follow_query,
    poll,
    run_until_signal,
    searchable_max,
    start,
)
from logferry.opensearch import (
    F_CONTAINER,
    F_HOST,
    F_INGESTED,
    F_LEVEL,
    F_NAMESPACE,
    F_PATH,
    F_POD,
    F_TIMESTAMP,
    LEVELS,
)
from logferry.search import SearchRequest, build_query, format_line, time_bound

# -- query building ----------------------------------------------------------------------------


def _filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = body["query"]["bool"]["filter"]
    return result


def test_no_query_matches_all_newest_first() -> None:
    body = build_query(SearchRequest(limit=7))
    assert body["size"] == 7
    assert body["query"]["bool"]["must"] == [{"match_all": {}}]
    assert _filters(body) == []
    assert body["sort"] == [{"@timestamp": {"order": "desc"}}, {"log.offset": {"order": "desc"}}]


def test_query_string_on_message() -> None:
    (clause,) = build_query(SearchRequest("timeout AND checkout"))["query"]["bool"]["must"]
    assert clause == {"query_string": {"query": "timeout AND checkout",
                                       "default_field": "message", "default_operator": "AND"}}


@pytest.mark.parametrize("field", [F_NAMESPACE, F_POD, F_CONTAINER, F_LEVEL, F_HOST, F_PATH])
def test_each_filter_is_an_exact_keyword_match(field: str) -> None:
    one = build_query(SearchRequest(filters=((field, ("a",)),)))
    assert _filters(one) == [{"term": {field: "a"}}]
    many = build_query(SearchRequest(filters=((field, ("a", "b")),)))
    assert _filters(many) == [{"terms": {field: ["a", "b"]}}]


def test_field_names_are_the_document_layout() -> None:
    assert (F_NAMESPACE, F_POD, F_CONTAINER, F_LEVEL, F_HOST, F_PATH) == (
        "kubernetes.namespace", "kubernetes.pod.name", "kubernetes.container.name",
        "log.level", "host.name", "log.file.path")
    from indexer.stages.levels import LEVELS as INDEXER_LEVELS

    assert LEVELS == INDEXER_LEVELS


def test_filters_combine_with_and_and_time_bounds() -> None:
    req = SearchRequest("x", since="2h", until="2026-11-25T10:00:00Z",
                        filters=((F_NAMESPACE, ("shop",)), (F_LEVEL, ("error", "fatal")),
                                 (F_HOST, ())))
    assert _filters(build_query(req)) == [
        {"term": {F_NAMESPACE: "shop"}},
        {"terms": {F_LEVEL: ["error", "fatal"]}},
        {"range": {F_TIMESTAMP: {"gte": "now-2h", "lte": "2026-11-25T10:00:00+00:00"}}},
    ]


@pytest.mark.parametrize(("value", "bound"), [
    ("15m", "now-15m"), ("2h", "now-2h"), (" 7d ", "now-7d"), ("30s", "now-30s"),
    ("1w", "now-1w"),
    ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00+00:00"),
    ("2026-11-25T10:00:00", "2026-11-25T10:00:00+00:00"),  # naive = UTC
    ("2026-11-25T12:00:00+02:00", "2026-11-25T10:00:00+00:00"),
    ("2026-11-25", "2026-11-25T00:00:00+00:00"),
])
def test_time_bounds(value: str, bound: str) -> None:
    assert time_bound(value) == bound


def test_only_since_or_only_until() -> None:
    assert _filters(build_query(SearchRequest(since="1h"))) == [
        {"range": {F_TIMESTAMP: {"gte": "now-1h"}}}]
    assert _filters(build_query(SearchRequest(until="1h"))) == [
        {"range": {F_TIMESTAMP: {"lte": "now-1h"}}}]


@pytest.mark.parametrize("value", ["yesterday", "15 minutes", "2h ago", "-5m"])
def test_bad_time_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="neither a duration"):
        time_bound(value)


# -- CLI options -> request ----------------------------------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[SearchRequest]:
    seen: list[SearchRequest] = []

    def fake_run_search(_settings: Any, req: SearchRequest) -> list[dict[str, Any]]:
        seen.append(req)
        return [{"@timestamp": "2026-11-25T10:00:00Z", "message": "hello", "log": {"level": "info"},
                 "host": {"name": "n1"}}]

    monkeypatch.setattr("logferry.search.run_search", fake_run_search)
    return seen


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli_module.cli, ["search", *args], catch_exceptions=False)


def test_cli_maps_every_filter(captured: list[SearchRequest]) -> None:
    result = _invoke("boom", "--namespace", "shop", "--namespace", "pay", "--pod", "web-1",
                     "--container", "app", "--level", "ERROR", "--level", "warn",
                     "--host", "node-a", "--path", "/var/log/syslog", "--since", "1h",
                     "--limit", "3")
    assert result.exit_code == 0, result.output
    (req,) = captured
    assert req == SearchRequest("boom", "1h", None, 3, (
        (F_NAMESPACE, ("shop", "pay")), (F_POD, ("web-1",)), (F_CONTAINER, ("app",)),
        (F_LEVEL, ("error", "warn")), (F_HOST, ("node-a",)), (F_PATH, ("/var/log/syslog",))))


def test_cli_rejects_unknown_level(captured: list[SearchRequest]) -> None:
    result = CliRunner().invoke(cli_module.cli, ["search", "--level", "loud"])
    assert result.exit_code == 2 and "loud" in result.output
    assert not captured


def test_cli_output_json_and_alias(captured: list[SearchRequest]) -> None:
    for args in (["--output", "json"], ["-o", "json"], ["--json"]):
        result = _invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.output.startswith('{"@timestamp":"2026-11-25T10:00:00Z","message":"hello"')
    text = _invoke()
    assert text.output == "2026-11-25T10:00:00Z INFO  n1 - hello\n"  # not a TTY: no colour
    bad = CliRunner().invoke(cli_module.cli, ["search", "--json", "--output", "text"])
    assert bad.exit_code == 2 and "contradicts" in bad.output


def test_cli_until_with_follow_is_refused(captured: list[SearchRequest]) -> None:
    result = CliRunner().invoke(cli_module.cli, ["search", "--follow", "--until", "1h"])
    assert result.exit_code == 2 and "--until cannot be used with --follow" in result.output


# -- output ------------------------------------------------------------------------------------

K8S_DOC: dict[str, Any] = {
    "@timestamp": "2026-11-25T10:00:00.123456Z", "message": "payment failed",
    "host": {"name": "node-a"}, "log": {"file": {"path": "/var/log/pods/x/app/0.log"},
                                        "offset": 7, "level": "error", "stream": "stderr"},
    "kubernetes": {"namespace": "shop", "pod": {"name": "checkout-7d9f"},
                   "container": {"name": "app"}},
}
FILE_DOC: dict[str, Any] = {
    "@timestamp": "2026-11-25T10:00:01Z", "message": "disk full",
    "host": {"name": "node-b"}, "log": {"file": {"path": "/var/log/syslog"}, "offset": 0},
}


def test_format_kubernetes_line() -> None:
    assert format_line(K8S_DOC, color=False) == (
        "2026-11-25T10:00:00.123456Z ERROR shop/checkout-7d9f/app payment failed")


def test_format_plain_file_line_has_host_and_path() -> None:
    assert format_line(FILE_DOC, color=False) == (
        "2026-11-25T10:00:01Z -     node-b /var/log/syslog disk full")
    with_level = {**FILE_DOC, "log": {**FILE_DOC["log"], "level": "warn"}}
    assert format_line(with_level, color=False) == (
        "2026-11-25T10:00:01Z WARN  node-b /var/log/syslog disk full")


def test_format_partial_kubernetes_fields() -> None:
    doc = {"message": "m", "kubernetes": {"namespace": "shop"}}
    assert format_line(doc, color=False) == "- -     shop/-/- m"


def test_format_colour_by_level() -> None:
    line = format_line(K8S_DOC, color=True)
    assert "\x1b[31mERROR\x1b[0m" in line
    assert "\x1b[36mshop/checkout-7d9f/app\x1b[0m" in line
    assert line.endswith(" payment failed")
    for level, code in (("info", "32"), ("warn", "33"), ("fatal", "1;31"), ("debug", "34")):
        doc = {**K8S_DOC, "log": {"level": level}}
        assert f"\x1b[{code}m{level.upper().ljust(5)}\x1b[0m" in format_line(doc, color=True)
    plain = format_line(FILE_DOC, color=True)
    assert " -     \x1b[36mnode-b /var/log/syslog\x1b[0m" in plain


def test_format_neutralises_terminal_escapes() -> None:
    doc = {**FILE_DOC, "message": "evil \x1b[2J\x07 bell\r\nnext\tline \x9b"}
    line = format_line(doc, color=True)
    assert "\x1b[2J" not in line and "\x07" not in line and "\r" not in line
    assert line.endswith("evil \\x1b[2J\\x07 bell\\x0d\nnext\tline \\x9b")


# -- follow: the cursor ---------------------------------------------------------------------------


def test_cursor_starts_unbounded_then_follows_the_watermark() -> None:
    cur = FollowCursor(overlap_ms=1000)
    assert cur.lower_bound() is None
    cur.advance(None)
    assert cur.lower_bound() is None
    cur.advance(50_000)
    assert cur.lower_bound() == 49_000
    cur.advance(40_000)  # never backwards
    assert cur.watermark == 50_000 and cur.lower_bound() == 49_000


def test_cursor_dedups_and_forgets_ids_that_left_the_window() -> None:
    cur = FollowCursor(overlap_ms=1000)
    cur.advance(10_000)
    assert cur.is_new("a")
    assert cur.admit("a", 9_500)
    cur.remember("b", 10_000)
    assert not cur.admit("a", 9_500) and not cur.admit("b", 10_000)
    assert not cur.admit("too-old", 8_999)
    assert not cur.is_new("a") and not cur.is_new("b") and len(cur) == 2
    cur.advance(10_600)  # window now starts at 9_600: "a" can never be returned again
    assert cur.is_new("a") and not cur.is_new("b") and len(cur) == 1


def test_cursor_does_not_keep_what_no_poll_can_return() -> None:
    cur = FollowCursor(overlap_ms=1000)
    cur.advance(10_000)
    cur.remember("old", 8_999)
    cur.remember("no-ingested", None)
    assert len(cur) == 0


def test_cursor_memory_is_capped_and_the_window_closes_behind_it() -> None:
    cur = FollowCursor(overlap_ms=10_000, max_seen=3)
    cur.advance(100_000)
    for i, ts in enumerate((95_000, 95_000, 96_000, 97_000)):
        cur.remember(f"d{i}", ts)
    # Both ids of 95_000 were dropped together; no later poll asks for 95_000 again.
    assert len(cur) == 2 and cur.floor == 95_000 and cur.lower_bound() == 95_001
    assert cur.is_new("d0") and not cur.is_new("d2")
    cur.remember("late", 95_000)  # below the window now: not kept
    assert len(cur) == 2


def test_follow_query_pages() -> None:
    req = SearchRequest("boom", filters=((F_NAMESPACE, ("shop",)),))
    first = follow_query(req, 5_000, size=10)
    assert first["size"] == 10 and "search_after" not in first
    assert first["query"]["bool"]["must"][0]["query_string"]["query"] == "boom"
    window = {"range": {F_INGESTED: {"gte": 5_000, "format": "epoch_millis"}}}
    assert _filters(first) == [{"term": {F_NAMESPACE: "shop"}}, window]
    assert [next(iter(s)) for s in first["sort"]] == [F_INGESTED, "logferry.fid", "log.offset"]
    # The watermark: newest event.ingested of every document in the window, not only matches.
    agg = first["aggs"]["all"]
    assert agg["global"] == {} and agg["aggs"]["window"]["filter"] == window
    later = follow_query(req, 5_000, after=[5_001, "f", 3], size=10)
    assert later["search_after"] == [5_001, "f", 3] and "aggs" not in later
    unbounded = follow_query(SearchRequest(), None)
    assert _filters(unbounded) == [{"exists": {"field": F_INGESTED}}]


def test_response_parsing() -> None:
    resp = {"aggregations": {"all": {"window": {"newest": {"value": 1.795647798665e12}}}}}
    assert searchable_max(resp) == 1_795_647_798_665
    assert searchable_max({"aggregations": {"all": {"window": {"newest": {"value": None}}}}}) \
        is None
    assert searchable_max({"aggregations": {"newest": {"value": 12.0}}}) == 12
    assert docvalue_ms({"fields": {F_INGESTED: ["1795647798665"]}}) == 1_795_647_798_665
    assert docvalue_ms({"fields": {F_INGESTED: ["1795647798665.000"]}}) == 1_795_647_798_665
    assert docvalue_ms({"_source": {}}) is None


# -- follow against an in-memory index -------------------------------------------------------


@dataclass(frozen=True)
class FakeDoc:
    id: str
    ingested: int  # event.ingested, epoch ms
    visible_at: int  # when a search first sees it
    fid: str = "f"
    off: int = 0


class FakeIndex:
    """Answers the requests logferry.follow sends, like OpenSearch would, at a fake clock that
    moves ``step`` ms per request (documents become searchable between pages, too)."""

    def __init__(self, docs: list[FakeDoc], now: int = 0, step: int = 1) -> None:
        self.docs = docs
        self.now = now
        self.step = step
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        self.now += self.step
        self.requests.append(body)
        if self.fail_next:
            self.fail_next -= 1
            raise OpenSearchUnavailableError("cannot reach OpenSearch at fake")
        visible = [d for d in self.docs if d.visible_at <= self.now]
        if body.get("size") == 0:
            return {"hits": {"hits": []}, "aggregations": {"newest": {
                "value": max((d.ingested for d in visible), default=None)}}}
        if F_TIMESTAMP in body["sort"][0]:  # the backlog: newest first
            newest = sorted(visible, key=lambda d: (d.ingested, d.off), reverse=True)
            return {"hits": {"hits": [
                {"_id": d.id, "_source": {"message": d.id},
                 "fields": {F_INGESTED: [str(d.ingested)]}} for d in newest[:body["size"]]]}}
        window = body["query"]["bool"]["filter"][-1]
        lower = window["range"][F_INGESTED]["gte"] if "range" in window else None
        inside = sorted((d for d in visible if lower is None or d.ingested >= lower),
                        key=lambda d: (d.ingested, d.fid, d.off))
        resp: dict[str, Any] = {}
        if "aggs" in body:
            resp["aggregations"] = {"all": {"window": {"newest": {
                "value": max((d.ingested for d in inside), default=None)}}}}
        after = tuple(body.get("search_after") or ())
        page = [d for d in inside if not after or (d.ingested, d.fid, d.off) > after]
        resp["hits"] = {"hits": [
            {"_id": d.id, "_source": {"message": d.id}, "sort": [d.ingested, d.fid, d.off]}
            for d in page[:body["size"]]]}
        return resp


def test_poll_prints_late_documents_once() -> None:
    docs = [FakeDoc("a", 1_000, 1_000), FakeDoc("b", 2_000, 2_000)]
    index = FakeIndex(docs, now=2_500)
    cur = FollowCursor(overlap_ms=5_000)
    out: list[str] = []
    start(index, SearchRequest(limit=1), cur, lambda d: out.append(d["message"]))
    assert out == ["b"]  # backlog: the newest 1; "a" existed before and is not shown
    # "c" was ingested before "d" but becomes searchable after it (a slow bulk request).
    docs += [FakeDoc("c", 3_000, 6_000), FakeDoc("d", 4_000, 4_100)]
    for now in (3_500, 4_500, 6_500, 9_000, 20_000):
        index.now = now
        poll(index, SearchRequest(), cur, lambda d: out.append(d["message"]))
    assert out == ["b", "d", "c"]
    assert cur.watermark == 4_000 and len(cur) == 4  # all inside the 5 s window
    docs.append(FakeDoc("e", 10_000, 10_000))
    index.now = 10_500
    poll(index, SearchRequest(), cur, lambda d: out.append(d["message"]))
    index.now = 11_000
    poll(index, SearchRequest(), cur, lambda d: out.append(d["message"]))
    assert out == ["b", "d", "c", "e"]
    assert cur.lower_bound() == 5_000 and len(cur) == 1  # only "e" is still remembered


def test_watermark_is_taken_when_a_pass_begins() -> None:
    """A pass of several pages: "d" becomes searchable between pages, sorted before the
    current page, so this pass skips it; "h" is ingested and shows up later in the same pass.
    The next window must still reach back to "d" (the watermark is not "h")."""
    docs = [FakeDoc("p1", 8_000, 0, off=1), FakeDoc("p2", 8_001, 0, off=2),
            FakeDoc("w", 10_000, 10_000, off=3),
            FakeDoc("d", 7_900, 10_501, off=4),  # searchable 2.6 s after ingestion
            FakeDoc("h", 11_000, 11_000, off=5)]
    index = FakeIndex(docs, now=10_000, step=500)  # requests at 10_500, 11_000, 11_500...
    cur = FollowCursor(overlap_ms=3_000)
    cur.advance(10_000)
    out: list[str] = []
    poll(index, SearchRequest(), cur, lambda d: out.append(d["message"]), page_size=1)
    assert "d" not in out and "h" in out
    assert cur.watermark == 10_000
    poll(index, SearchRequest(), cur, lambda d: out.append(d["message"]), page_size=1)
    assert sorted(out) == ["d", "h", "p1", "p2", "w"]


def test_poll_pages_through_a_busy_window() -> None:
    docs = [FakeDoc(f"x{i}", 1_000 + i // 7, 0, off=i) for i in range(95)]
    index = FakeIndex(docs, now=10)
    cur = FollowCursor(overlap_ms=5_000)
    cur.advance(0)
    out: list[str] = []
    assert poll(index, SearchRequest(), cur, lambda d: out.append(d["message"]),
                page_size=10) == 95
    assert out == [f"x{i}" for i in range(95)]
    assert len(index.requests) == 10
    assert poll(index, SearchRequest(), cur, lambda d: out.append(d["message"]),
                page_size=10) == 0


def _simulate(arrivals: list[tuple[int, int]], start_at: int, page: int, max_seen: int,
              overlap: int = 3_000) -> tuple[list[str], set[str], FollowCursor]:
    """Documents (event.ingested, delay until searchable) followed from ``start_at``: what was
    printed, and which documents became searchable after the start."""
    docs = [FakeDoc(f"d{i}", ing, ing + delay, fid=f"f{i % 3}", off=i)
            for i, (ing, delay) in enumerate(arrivals)]
    index = FakeIndex(docs, now=start_at, step=37)
    cur = FollowCursor(overlap_ms=overlap, max_seen=max_seen)
    out: list[str] = []
    req = SearchRequest(limit=3)
    start(index, req, cur, lambda d: out.append(d["message"]))
    started = index.now
    while index.now < 40_000:
        index.now += 700
        poll(index, req, cur, lambda d: out.append(d["message"]), page_size=page)
    return out, {d.id for d in docs if d.visible_at > started}, cur


_ARRIVALS = st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 9_000)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(_ARRIVALS, st.integers(0, 25_000), st.integers(1, 5), st.integers(2, 40))
# The id cap drops printed ids of the oldest millisecond while a pass still returns them.
@example([(0, 0), (0, 112), (0, 0)], 0, 1, 2)
def test_follow_never_prints_twice(arrivals: list[tuple[int, int]], start_at: int, page: int,
                                   max_seen: int) -> None:
    """Whatever the delays (even far beyond the overlap) and however small the id cap."""
    out, _, cur = _simulate(arrivals, start_at, page, max_seen)
    assert len(out) == len(set(out)), "a document was printed twice"
    assert len(cur) <= max_seen


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 2_900)), max_size=60),
       st.integers(0, 8_000), st.integers(1, 5))
@example([(1_000, 0), (2_000, 0), (1_500, 2_500)], 0, 2)  # searchable after a newer one
def test_follow_misses_nothing_searchable_within_the_overlap(
        arrivals: list[tuple[int, int]], start_at: int, page: int) -> None:
    """Every document searchable less than the overlap (3 s here) after its event.ingested,
    and searchable only after the start, is printed."""
    out, later, _ = _simulate(arrivals, start_at, page, max_seen=10_000)
    assert later <= set(out), f"missed {sorted(later - set(out))}"
    assert len(out) == len(set(out))


def test_follow_retries_when_opensearch_goes_away() -> None:
    index = FakeIndex([FakeDoc("a", 1_000, 1_000)], now=2_000)
    out: list[dict[str, Any]] = []
    warnings: list[str] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            index.fail_next = 2
        if len(sleeps) == 4:
            index.docs.append(FakeDoc("b", index.now, index.now))
        if len(sleeps) == 6:
            raise Stopped

    with pytest.raises(Stopped):
        follow(index, SearchRequest(), out.append, warnings.append, interval_s=1.0,
               sleep=sleep)
    assert [d["message"] for d in out] == ["a", "b"]
    assert sleeps == [1.0, 2.0, 4.0, 1.0, 1.0, 1.0]
    assert warnings == ["cannot reach OpenSearch at fake; retrying",
                        "OpenSearch answers again; following"]


def test_signals_stop_following_quietly() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    reached: list[str] = []

    def run() -> None:
        reached.append("started")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        reached.append("not interrupted")

    t0 = time.monotonic()
    run_until_signal(run)
    assert reached == ["started"] and time.monotonic() - t0 < 4
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

    def ctrl_c() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    run_until_signal(ctrl_c)  # no KeyboardInterrupt

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.stages.cri import parse_cri
from agent.stages.multiline import (
    FLAG_MULTILINE_CUT,
    Event,
    MultilineJoiner,
    MultilineRules,
    compile_start_pattern,
)
from agent.stages.partials import PartialJoiner
from logferry.config._agent_sources import MultilineSettings

INDENT = MultilineRules(mode="indent")


def feed_lines(joiner: MultilineJoiner, lines: list[bytes], start: int = 0,
               stream: str = "") -> list[Event]:
    """Feed a plain file's lines (offsets as if each ends in a newline), then drain."""
    out: list[Event] = []
    off = start
    for line in lines:
        end = off + len(line) + 1
        event = joiner.feed(off, end, line, now=0.0, stream=stream)
        if event is not None:
            out.append(event)
        off = end
    last = joiner.drain()
    if last is not None:
        out.append(last)
    return out


def messages(events: list[Event]) -> list[bytes]:
    return [e.message for e in events]


JAVA = [
    b"2024-05-01 10:00:00 ERROR request failed",
    b"java.lang.IllegalStateException: boom",
    b"\tat com.example.Foo.bar(Foo.java:10)",
    b"\tat com.example.Main.main(Main.java:3)",
    b"Caused by: java.io.IOException: disk",
    b"\tat com.example.Disk.read(Disk.java:7)",
    b"\t... 2 more",
    b"2024-05-01 10:00:01 INFO next",
]


def test_java_trace_in_indent_mode() -> None:
    events = feed_lines(MultilineJoiner(INDENT), JAVA)
    # The exception header follows an unindented line: indent mode cannot tell it belongs to it.
    assert messages(events) == [JAVA[0], b"\n".join(JAVA[1:7]), JAVA[7]]
    assert [e.lines for e in events] == [1, 6, 1]


def test_java_trace_with_a_start_pattern() -> None:
    rules = MultilineRules(mode="start_pattern",
                           start_pattern=compile_start_pattern(r"\d{4}-\d{2}-\d{2} "))
    events = feed_lines(MultilineJoiner(rules), JAVA)
    assert messages(events) == [b"\n".join(JAVA[:7]), JAVA[7]]


PYTHON = [
    b"ERROR:root:could not load",
    b"Traceback (most recent call last):",
    b'  File "app.py", line 3, in load',
    b"    int(x)",
    b"ValueError: invalid literal for int() with base 10: 'x'",
    b"",
    b"During handling of the above exception, another exception occurred:",
    b"",
    b"Traceback (most recent call last):",
    b'  File "app.py", line 5, in <module>',
    b"    raise AppError('load') from None",
    b"app.errors.AppError: load",
    b"INFO:root:still running",
]


def test_python_traceback_joins_with_its_logging_line() -> None:
    events = feed_lines(MultilineJoiner(INDENT), PYTHON)
    assert messages(events) == [b"\n".join(PYTHON[:12]), PYTHON[12]]


@pytest.mark.parametrize("last", [b"KeyboardInterrupt", b"mypkg.Http404: /x", b"StopIteration"])
def test_any_exception_ends_a_python_traceback(last: bytes) -> None:
    lines = [b"Traceback (most recent call last):", b'  File "a.py", line 1', last, b"next"]
    assert messages(feed_lines(MultilineJoiner(INDENT), lines)) == [b"\n".join(lines[:3]),
                                                                     b"next"]


def test_plain_lines_stay_apart() -> None:
    lines = [b"one", b"two: three", b"FooError", b"four"]
    assert messages(feed_lines(MultilineJoiner(INDENT), lines)) == lines


def test_other_stream_starts_a_new_event() -> None:
    joiner = MultilineJoiner(INDENT)
    assert joiner.feed(0, 10, b"first", now=0.0, stream="stdout") is None
    event = joiner.feed(10, 20, b"  indented", now=0.0, stream="stderr")
    assert event is not None and event.message == b"first" and event.stream == "stdout"


def test_event_keeps_first_ts_and_merges_flags() -> None:
    joiner = MultilineJoiner(INDENT)
    joiner.feed(0, 10, b"a", now=0.0, ts="t1", flags=("invalid_utf8",))
    joiner.feed(10, 20, b" b", now=0.0, ts="t2", flags=("split", "invalid_utf8"))
    event = joiner.drain()
    assert event is not None
    assert (event.ts, event.flags, event.offset, event.end) == ("t1", ("invalid_utf8", "split"),
                                                                0, 20)


def test_max_lines_splits_without_loss() -> None:
    rules = MultilineRules(mode="indent", max_lines=3)
    lines = [b"head", b" 1", b" 2", b" 3", b" 4", b"next"]
    events = feed_lines(MultilineJoiner(rules), lines)
    assert messages(events) == [b"head\n 1\n 2", b" 3\n 4", b"next"]
    # The event cut at the limit is flagged; what follows starts a new event, unflagged (a
    # resume between the two could not know it continues one).
    assert [e.flags for e in events] == [(FLAG_MULTILINE_CUT,), (), ()]


def test_max_bytes_splits_without_loss() -> None:
    rules = MultilineRules(mode="indent", max_bytes=10)
    events = feed_lines(MultilineJoiner(rules), [b"head", b" 1234", b" 5678"])
    assert messages(events) == [b"head\n 1234", b" 5678"]


def test_timeout_flushes_the_open_event() -> None:
    joiner = MultilineJoiner(MultilineRules(mode="indent", timeout_s=2.0))
    joiner.feed(0, 5, b"head", now=10.0)
    joiner.feed(5, 10, b" one", now=11.0)
    assert joiner.flush_if_stale(now=12.9) is None
    event = joiner.flush_if_stale(now=13.0)
    assert event is not None and event.message == b"head\n one" and event.commit == 10
    assert joiner.pending_start() is None
    assert joiner.flush_if_stale(now=99.0) is None


def test_commit_is_the_origin_of_the_next_event_in_a_plain_file() -> None:
    joiner = MultilineJoiner(INDENT, start=100)
    assert joiner.feed(100, 105, b"head", now=0.0) is None
    assert joiner.pending_start() == 100
    assert joiner.feed(105, 110, b" one", now=0.0) is None
    event = joiner.feed(110, 115, b"next", now=0.0)
    assert event is not None and (event.offset, event.end, event.commit) == (100, 110, 110)
    assert joiner.pending_start() == 110


def test_reset_forgets_the_open_event() -> None:
    joiner = MultilineJoiner(INDENT)
    joiner.feed(0, 5, b"head", now=0.0)
    joiner.reset(0)
    assert joiner.pending_start() is None and joiner.drain() is None


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="start_pattern"):
        MultilineRules(mode="start_pattern")
    with pytest.raises(ValueError, match="positive"):
        MultilineRules(max_lines=0)


# -- properties ----------------------------------------------------------------------------------

_vocabulary = st.sampled_from(JAVA + PYTHON + [b"", b"   ", b"... 3 more", b"Suppressed: x"])
_lines = st.lists(
    st.one_of(_vocabulary, st.binary(max_size=20).filter(lambda b: b"\n" not in b)),
    max_size=30)
_rules = st.builds(
    MultilineRules,
    mode=st.sampled_from(["indent", "start_pattern"]),
    start_pattern=st.just(re.compile(rb"\d{4}-|[A-Z]{4}")),
    max_lines=st.integers(1, 8),
    max_bytes=st.integers(1, 200),
)


@settings(deadline=None, max_examples=150)
@given(_lines, _rules, st.integers(0, 1000))
def test_no_line_is_lost_or_reordered(lines: list[bytes], rules: MultilineRules,
                                      start: int) -> None:
    events = feed_lines(MultilineJoiner(rules, start), lines, start)
    assert [line for e in events for line in e.message.split(b"\n")] == lines
    assert sum(e.lines for e in events) == len(lines)
    off = start
    for event in events:  # contiguous: each event starts where the previous one ended
        assert event.offset == off
        off = event.end
    commits = [e.commit for e in events]
    assert commits == sorted(commits)
    assert all(e.commit >= e.end or e is events[-1] for e in events)


@settings(deadline=None, max_examples=100)
@given(_lines, st.integers(1, 8))
def test_resuming_a_plain_file_at_any_commit_rebuilds_the_same_events(
        lines: list[bytes], max_lines: int) -> None:
    rules = MultilineRules(mode="indent", max_lines=max_lines)
    events = feed_lines(MultilineJoiner(rules), lines)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for cut in {e.commit for e in events}:
        rest = lines[offsets.index(cut):]
        again = feed_lines(MultilineJoiner(rules, cut), rest, cut)
        assert again == [e for e in events if e.offset >= cut]


# -- chained after the PartialJoiner, as on a CRI file -------------------------------------------

TS = "2024-05-01T10:00:00Z"


def pipeline(data: bytes, start: int, flush_at: frozenset[int] = frozenset(),
             raw_bypass: bool = False) -> list[Event]:
    """CRI lines -> PartialJoiner -> MultilineJoiner; a malformed line is fed as stream "raw",
    or with ``raw_bypass`` sent on its own (an Event with ``lines`` 0 here).

    After the line at each offset in ``flush_at`` both stages time out: pinned to file positions,
    timeouts happen at the same places in a replay.
    """
    partials = PartialJoiner()
    multiline = MultilineJoiner(INDENT, start)
    out: list[Event] = []

    def to_multiline(offset: int, end: int, line: bytes, stream: str,
                     flags: tuple[str, ...], commit: int) -> None:
        event = multiline.feed(offset, end, line, now=0.0, stream=stream, flags=flags,
                               commit=commit)
        if event is not None:
            out.append(event)

    off = start
    for raw in data[start:].split(b"\n")[:-1]:
        end = off + len(raw) + 1
        parsed = parse_cri(raw)
        if parsed is None:
            upstream = partials.bypass(end)
            if raw_bypass:
                commit = multiline.bypass(end, upstream)
                out.append(Event(off, end, "", "raw", raw, 0, ("parse_error",), commit))
            else:
                to_multiline(off, end, raw, "raw", ("parse_error",), upstream)
        else:
            joined = partials.feed(off, end, parsed.ts, parsed.stream, parsed.partial,
                                   parsed.message, now=0.0)
            if joined is not None:
                to_multiline(joined.offset, joined.end, joined.message, joined.stream,
                             joined.flags, joined.commit)
        if off in flush_at:
            # Multiline first: its timeout then fires while a partial line may be pending.
            stale = multiline.flush_if_stale(now=10.0)
            if stale is not None:
                out.append(stale)
            for joined in partials.flush_if_stale(now=10.0, timeout_s=1.0):
                to_multiline(joined.offset, joined.end, joined.message, joined.stream,
                             joined.flags, joined.commit)
        off = end
    for joined in partials.drain():
        to_multiline(joined.offset, joined.end, joined.message, joined.stream, joined.flags,
                     joined.commit)
    last = multiline.drain()
    if last is not None:
        out.append(last)
    return out


_piece = st.tuples(st.sampled_from(["stdout", "stderr"]), st.booleans(),
                   st.one_of(_vocabulary, st.sampled_from([b" ", b"x"])))


@settings(deadline=None, max_examples=150)
@given(st.lists(st.one_of(_piece, st.just(None)), max_size=25),
       st.sets(st.integers(0, 25), max_size=3), st.booleans())
def test_resuming_a_cri_file_at_any_commit_rebuilds_the_same_events(
        pieces: list[tuple[str, bool, bytes] | None], flush_after: set[int],
        raw_bypass: bool) -> None:
    lines = [b"garbage\n" if p is None
             else f"{TS} {p[0]} {'P' if p[1] else 'F'} ".encode() + p[2] + b"\n"
             for p in pieces]
    data = b"".join(lines)
    flush_at = frozenset(sum(len(x) for x in lines[:i]) for i in flush_after if i < len(lines))
    events = pipeline(data, 0, flush_at, raw_bypass)
    commits = [e.commit for e in events]
    assert commits == sorted(commits)
    for cut in set(commits):
        assert all(e.end <= cut for e in events if e.offset < cut)
        assert pipeline(data, cut, flush_at, raw_bypass) == [e for e in events
                                                             if e.offset >= cut]


def test_a_bypassed_line_leaves_the_open_event_open() -> None:
    joiner = MultilineJoiner(INDENT)
    joiner.feed(0, 10, b"head", now=0.0)
    assert joiner.bypass(20) == 0  # the open event starts at 0
    assert joiner.feed(20, 30, b"  more", now=0.0) is None
    event = joiner.feed(30, 40, b"next", now=0.0)
    # 30 follows everything fed or bypassed: a clean cut again.
    assert event is not None and (event.message, event.commit) == (b"head\n  more", 30)
    joiner.drain()
    assert joiner.bypass(50) == 50


def test_a_timeout_inside_an_upstream_run_does_not_move_the_cut() -> None:
    joiner = MultilineJoiner(INDENT)
    joiner.feed(0, 10, b"head", now=0.0, stream="stdout", commit=10)
    # A stderr P piece at 10 is pending upstream; this stdout line comes out meanwhile.
    joiner.feed(40, 70, b"  more", now=0.0, stream="stdout", commit=10)
    event = joiner.flush_if_stale(now=5.0)
    # The event holds the line at 40: a restart at 10 would send "  more" again on its own.
    assert event is not None and event.commit == 0
    # Nothing is open now, but the same holds for a line sent on its own.
    assert joiner.bypass(80, commit=10) == 0
    joiner.feed(10, 100, b"stderr line", now=5.0, stream="stderr", commit=100)
    last = joiner.drain()
    assert last is not None and (last.offset, last.commit) == (10, 100)


# -- settings ------------------------------------------------------------------------------------


def test_settings_map_onto_rules() -> None:
    settings_ = MultilineSettings(mode="start_pattern", start_pattern=r"\d{4}-", max_lines=9)
    assert settings_.start_pattern is not None
    rules = MultilineRules(mode="start_pattern",
                           start_pattern=compile_start_pattern(settings_.start_pattern),
                           max_lines=settings_.max_lines, max_bytes=settings_.max_bytes,
                           timeout_s=settings_.timeout_s)
    events = feed_lines(MultilineJoiner(rules), [b"2024-01-01 a", b"b", b"2024-01-02 c"])
    assert messages(events) == [b"2024-01-01 a\nb", b"2024-01-02 c"]
    assert MultilineSettings().mode == "off"
    assert MultilineSettings(mode="off", start_pattern="x").start_pattern == "x"


@pytest.mark.parametrize("kwargs", [
    {"mode": "start_pattern"},
    {"mode": "start_pattern", "start_pattern": "("},
    {"mode": "indent", "start_pattern": "x"},
    {"mode": "sometimes"},
    {"max_lines": 0},
    {"timeout_s": 0},
    {"timeout": 1.0},
])
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MultilineSettings.model_validate(kwargs)

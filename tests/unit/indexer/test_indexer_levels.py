from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages.levels import LEVELS, detect_level, normalize_level


@pytest.mark.parametrize(("value", "expected"), [
    ("trace", "trace"), ("TRC", "trace"), ("finest", "trace"), ("Verbose", "trace"),
    ("V", "trace"),
    ("debug", "debug"), ("DEBUG", "debug"), ("dbg", "debug"), ("D", "debug"),
    ("fine", "debug"), ("CONFIG", "debug"), ("DEBUG3", "debug"),
    ("info", "info"), ("INFO", "info"), ("Info", "info"), ("I", "info"),
    ("informational", "info"), ("NOTICE", "info"), ("LOG", "info"),
    ("WARN", "warn"), ("warning", "warn"), ("W", "warn"), ("Warn", "warn"), ("wrn", "warn"),
    ("error", "error"), ("ERR", "error"), ("E", "error"), ("SEVERE", "error"),
    ("dpanic", "error"),
    ("fatal", "fatal"), ("CRITICAL", "fatal"), ("crit", "fatal"), ("alert", "fatal"),
    ("EMERG", "fatal"), ("panic", "fatal"), ("F", "fatal"), ("A", "fatal"),
    # mixed case, blanks, brackets and a trailing colon are forgiven
    ("wArNiNg", "warn"), (" error ", "error"), ("[warn]", "warn"), ("<ERROR>", "error"),
    ("Error:", "error"),
])
def test_names(value: str, expected: str) -> None:
    assert normalize_level(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (0, "fatal"), (1, "fatal"), (2, "fatal"), (3, "error"), (4, "warn"), (5, "info"),
    (6, "info"), (7, "debug"),
    (10, "trace"), (20, "debug"), (30, "info"), (40, "warn"), (50, "error"), (60, "fatal"),
    ("4", "warn"), ("30", "info"), ("0", "fatal"),
])
def test_syslog_severities_and_pino_levels(value: object, expected: str) -> None:
    assert normalize_level(value) == expected


@pytest.mark.parametrize("value", [
    "", "x", "chatty", "8", "-1", "35", "info2", 8, 9, 35, -1, 4.0, True, False, None, ["info"],
])
def test_unknown(value: object) -> None:
    assert normalize_level(value) is None


@pytest.mark.parametrize(("line", "expected"), [
    # glog / klog
    ("E1125 10:15:00.123456    1 main.go:12] boom", "error"),
    ("W1125 10:15:00.123456    1 main.go:12] careful", "warn"),
    ("I1125 10:15:00.123456    1 main.go:12] hello", "info"),
    ("F1125 10:15:00.123456    1 main.go:12] dead", "fatal"),
    # kernel priority prefix
    ("<3>usb 1-1: device descriptor read error", "error"),
    # key=value, any case, JSON-ish too
    ("ts=1 level=debug msg=x", "debug"),
    ("time=now LEVEL=Fatal", "fatal"),
    ('{"level":"warn","msg":"x"}', "warn"),
    ("lvl=eror caller=x", "error"),
    ("severity: ERROR something", "error"),
    ("high level overview, then level=error", "error"),
    # brackets, any case
    ("2026/11/25 10:15:00 [error] 123#0: *1 open() failed", "error"),
    ("[Wed Oct 11 14:32:52 2026] [core:warn] [pid 1] x", "warn"),
    ("[main] [config] <Info> starting", "info"),
    # upper-case tokens
    ("2026-11-25T10:15:00.123Z  INFO 1 --- [main] c.e.App : Started", "info"),
    ("10:15:00.123 [main] ERROR com.x - msg", "error"),
    ("2026-11-25 10:15:00,123 - app - WARNING - disk low", "warn"),
    ("[2026-11-25T10:15:00Z ERROR app] x", "error"),
    ("something CRITICAL happened", "fatal"),
    ("XERROR then WARN", "warn"),
    # the start of the line
    ("Error: file not found", "error"),
    ("warning: deprecated option", "warn"),
    ("SEVERE: java.util.logging says so", "error"),
    # the leftmost wins
    ("ERROR level=info", "error"),
    ("level=info ERROR", "info"),
    ("[warn] ERROR", "warn"),
])
def test_detect(line: str, expected: str) -> None:
    assert detect_level(line) == expected


@pytest.mark.parametrize("line", [
    "just some prose about an error",
    "Everything is fine",
    "[main] [config] starting",
    "INFO_DB connected",
    "info.example.com resolved",
    "GET /api/errors HTTP/1.1",
    "E123 is not glog",
    "I think so",
    "<9>not a severity",
    "",
    "x" * 150 + " ERROR beyond the first 100 characters",
])
def test_detect_nothing(line: str) -> None:
    assert detect_level(line) is None


@settings(deadline=None)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.booleans()))
def test_normalize_never_raises(value: object) -> None:
    assert normalize_level(value) in (*LEVELS, None)


@settings(deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_detect_never_raises(line: str) -> None:
    assert detect_level(line) in (*LEVELS, None)


@settings(deadline=None)
@given(st.sampled_from(["TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL"]),
       st.text(alphabet=" \t0123456789-:.,TZ", max_size=40), st.text(max_size=200))
def test_detect_upper_token_after_a_timestamp(word: str, prefix: str, rest: str) -> None:
    line = f"{prefix} {word} {rest}"
    assert detect_level(line) == normalize_level(word)

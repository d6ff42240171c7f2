from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages import levels
from indexer.stages.levels import LEVELS, detect_level, detect_level_py, normalize_level


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
@pytest.mark.parametrize("detect", [detect_level, detect_level_py], ids=["built", "python"])
def test_detect(line: str, expected: str, detect: Callable[[str], str | None]) -> None:
    assert detect(line) == expected


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
@pytest.mark.parametrize("detect", [detect_level, detect_level_py], ids=["built", "python"])
def test_detect_nothing(line: str, detect: Callable[[str], str | None]) -> None:
    assert detect(line) is None


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


# -- the C twin (indexer/stages/_levels.c) ---------------------------------------------------

def test_the_c_detection_is_built_where_a_compiler_is(c_compiler: str) -> None:
    # setup.py builds it as optional: a broken build would fall back silently and slowly.
    assert levels.COMPILED
    assert detect_level is not detect_level_py


def _c_twin() -> None:
    if not levels.COMPILED:
        pytest.skip("the C twin is not built")


def test_the_c_name_tables_are_the_python_ones() -> None:
    _c_twin()
    from indexer.stages._levels import names as c_names
    names, words = c_names()
    # A level=<letters> value can only be a name made of letters.
    assert names == {k: v for k, v in levels._LOOKUP.items() if k.isalpha() and k.islower()}
    assert words == levels._WORDS


# Lines made of the pieces the rules look at, so that most of them come close to a rule: level
# names in any case, keys, separators, brackets, glog and kernel heads, word glue, digits, some
# non-ASCII text (the twin's business), at positions around the 100-character head.
_NAME_PIECES = sorted({n for n in levels._LOOKUP if n.isalpha()} | {"debug1", "logger",
                                                                    "levels", "x"})
_piece = st.one_of(
    st.sampled_from(_NAME_PIECES).flatmap(
        lambda n: st.sampled_from([n, n.upper(), n.title(), n[:-1] + n[-1].upper()])),
    st.sampled_from(["level", "LEVEL", "Lvl", "severity", "log_level", "loglevel",
                     "log.level"]),
    st.sampled_from(["=", ":", '"', "'", " ", " ", " ", "\t", ".", "-", "_", ",", "/",
                     "[", "]", "<", ">", "(", ")", "{", "}", "core:", "main:"]),
    st.sampled_from(["E1125 10:15:00.1", "W0101 00:00:", "I1234 5", "<3>", "<7>", "<8>",
                     "<3", "Error:", "WARN:", "E:", "log:", "Fine:", "x" * 60, " " * 37,
                     "0123456789", "= ", "=  ", ": '", '":"', "= \"", "=' "]),
    st.text(alphabet=st.characters(codec="ascii"), max_size=8),
    st.text(max_size=3),
)
_name = st.sampled_from(_NAME_PIECES).flatmap(
    lambda n: st.sampled_from([n, n.upper(), n.title(), n[:-1] + n[-1].upper()]))
# key, separator, value: the separators one character off what the rule takes, too
_pair = st.tuples(
    st.sampled_from(["level", "LEVEL", "Lvl", "severity", "log_level", "loglevel"]),
    st.sampled_from(["=", ":", '"=', '":', "= ", '":"', "=  ", '""=', "= '", "=''", ': "',
                     "=\" ", "=\t", "=='", " = "]),
    _name,
).map("".join)
# an opening bracket, a prefix, a name, a closing bracket, also ones the rule does not take
_bracketed = st.tuples(st.sampled_from("[<({ "), st.sampled_from(["", "core:", "x1_:", "a b:",
                                                                 ":", "core"]),
                       _name, st.sampled_from("])>}: ")).map("".join)
_lines = st.lists(st.one_of(_piece, _pair, _bracketed), max_size=30).map("".join)


@settings(deadline=None, max_examples=3000)
@given(_lines)
def test_the_c_detection_finds_what_the_python_one_finds(line: str) -> None:
    _c_twin()
    assert detect_level(line) == detect_level_py(line)


@settings(deadline=None, max_examples=500)
@given(st.integers(min_value=0, max_value=105), _lines)
def test_the_c_detection_stops_where_the_head_does(shift: int, line: str) -> None:
    _c_twin()
    line = "z" * shift + " " + line
    assert detect_level(line) == detect_level_py(line)


@settings(deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_the_c_detection_on_any_text(line: str) -> None:
    _c_twin()
    assert detect_level(line) == detect_level_py(line)


def test_a_head_that_is_not_ascii_goes_to_the_python_twin() -> None:
    _c_twin()
    # "İ" lowers to two characters in Python; the twin handles it, not the C scan.
    line = "İ level=warn and ERROR"
    assert detect_level(line) == detect_level_py(line) == "warn"
    assert detect_level("é" * 120 + " ERROR") is None


def test_a_str_subclass_goes_to_the_python_twin() -> None:
    _c_twin()

    class Relabelled(str):  # its own slicing: the C scan would read the raw characters
        def __getitem__(self, key: object) -> str:
            return str.__getitem__(self.replace("INFO", "WARN"), key)  # type: ignore[index]

    line = Relabelled("INFO x")
    assert detect_level(line) == detect_level_py(line) == "warn"

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages.parsers import (
    PRESETS,
    PatternParser,
    compile_pattern,
    parse_json_object,
    parse_logfmt,
)

# Arbitrary text including lone surrogates, which hypothesis seldom draws on its own.
any_text = st.text(alphabet=st.one_of(
    st.characters(exclude_categories=()),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.sampled_from('{}[]"\\=<>: -'),
))


# --- JSON -----------------------------------------------------------------------------------

def test_json_object() -> None:
    assert parse_json_object('{"a": 1, "b": {"c": [1, "x"]}}') == {"a": 1, "b": {"c": [1, "x"]}}


def test_json_blanks_around() -> None:
    assert parse_json_object(' \t\ufeff{"a": 1}\r\n') == {"a": 1}


@pytest.mark.parametrize("line", [
    "[1, 2]", '"text"', "42", "null", "{", '{"a": 1', '{"a": 1} trailing', "{'a': 1}",
    '{"a": NaN}', '{"a": 1e400}', '{"a": "\\ud800"}', "", "   ", "plain text {}",
    '{"a": "\ud800"}',
])
def test_json_rejected(line: str) -> None:
    assert parse_json_object(line) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10)


@settings(deadline=None, max_examples=40)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_json_round_trip(obj: dict[str, Any]) -> None:
    assert parse_json_object(orjson.dumps(obj).decode()) == obj


# --- logfmt ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "expected"), [
    ('ts=2026-11-25T10:15:00Z level=info msg="hello \\"world\\"" dur=1.2ms',
     {"ts": "2026-11-25T10:15:00Z", "level": "info", "msg": 'hello "world"', "dur": "1.2ms"}),
    ("a= b=", {"a": "", "b": ""}),
    ('a="" b=1', {"a": "", "b": "1"}),
    ("  a=1   b=2  ", {"a": "1", "b": "2"}),
    ("url=http://x/?a=b&c=d q=1", {"url": "http://x/?a=b&c=d", "q": "1"}),
    ("http.method=GET k8s-ns/x=y", {"http.method": "GET", "k8s-ns/x": "y"}),
    ('k="multi\\nline" t="tab\\there" s="back\\\\slash"',
     {"k": "multi\nline", "t": "tab\there", "s": "back\\slash"}),
    ('k="\\x41 stays" j=1', {"k": "\\x41 stays", "j": "1"}),  # not JSON: escapes kept
    ("a=1 b=2 a=3", {"a": "3", "b": "2"}),
    ('msg="spaces  inside" n=1', {"msg": "spaces  inside", "n": "1"}),
])
def test_logfmt(line: str, expected: dict[str, str]) -> None:
    assert parse_logfmt(line) == expected


@pytest.mark.parametrize("line", [
    "Set timeout=30 for all requests",  # prose with an '=' stays prose
    "a=1",  # one pair is not enough
    "a=1 a=2",  # ... nor one key twice
    "a=1 b=2 done",  # a stray word
    "starting: a=1 b=2",
    'a="x"y b=1',  # a quoted value glued to more text
    'a="unterminated b=1',
    "a=1 =b c=2",
    "1a=1 b=2",  # keys start with a letter or _
    'a=x"y b=1',
    "",
    "no equals sign here",
    '{"a": "b=c", "d": "e=f"}',
])
def test_logfmt_rejected(line: str) -> None:
    assert parse_logfmt(line) is None


keys = st.builds(str.__add__, st.sampled_from("aZ_"), st.text(alphabet="bY9_.-/", max_size=8))
values = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)  # JSON-quotable


def _quote(value: str) -> str:
    return orjson.dumps(value).decode()  # JSON quoting is what Go's logfmt writes


@settings(deadline=None, max_examples=50)
@given(st.dictionaries(keys, values, min_size=2, max_size=6))
def test_logfmt_round_trip(fields: dict[str, str]) -> None:
    line = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
    assert parse_logfmt(line) == fields


# --- patterns -------------------------------------------------------------------------------

COMBINED = ('192.168.1.1 - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" '
            '200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"')


def test_combined_log_format() -> None:
    assert PatternParser(presets=["apache_combined"]).match(COMBINED) == ("apache_combined", {
        "client_ip": "192.168.1.1", "user": "frank", "timestamp": "10/Oct/2026:13:55:36 -0700",
        "method": "GET", "path": "/apache_pb.gif", "http_version": "HTTP/1.0",
        "status": "200", "bytes": "2326", "referrer": "http://www.example.com/start.html",
        "user_agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
    })


def test_nginx_main_format_and_placeholders() -> None:
    line = ('10.0.0.1 - - [25/Nov/2026:12:00:00 +0000] "POST /api/v1/orders HTTP/2.0" 201 - '
            '"-" "curl/8.5.0" "203.0.113.7, 10.0.0.2"')
    assert PatternParser(presets=["nginx_access"]).parse(line) == {
        "client_ip": "10.0.0.1", "timestamp": "25/Nov/2026:12:00:00 +0000", "method": "POST",
        "path": "/api/v1/orders", "http_version": "HTTP/2.0", "status": "201",
        "user_agent": "curl/8.5.0", "forwarded_for": "203.0.113.7, 10.0.0.2",
    }


def test_ingress_nginx_suffix_and_common_format() -> None:
    parser = PatternParser(presets=["nginx_access"])
    ingress = ('10.0.0.1 - - [25/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" '
               '"kube-probe/1.31" 231 0.003 [default-web-80] [] 10.1.1.1:80 612 0.003 200 abc')
    assert (parser.parse(ingress) or {}).get("user_agent") == "kube-probe/1.31"
    common = '127.0.0.1 - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.0" 200 2326'
    assert parser.parse(common) == {
        "client_ip": "127.0.0.1", "timestamp": "10/Oct/2026:13:55:36 -0700", "method": "GET",
        "path": "/", "http_version": "HTTP/1.0", "status": "200", "bytes": "2326"}


@pytest.mark.parametrize(("request_text", "expected"), [
    ("\\x16\\x03\\x01\\x00", "\\x16\\x03\\x01\\x00"),  # TLS on a plain-HTTP port
    ("GET /a b HTTP/1.1", "GET /a b HTTP/1.1"),
    ("", None),
    ("-", None),
])
def test_unusual_request_kept_whole(request_text: str, expected: str | None) -> None:
    line = f'10.0.0.1 - - [25/Nov/2026:12:00:00 +0000] "{request_text}" 400 157 "-" "-"'
    fields = PatternParser(presets=["nginx_access"]).parse(line)
    assert fields is not None and "method" not in fields
    assert fields.get("request") == expected


def test_escaped_quotes_in_user_agent() -> None:
    line = ('1.2.3.4 - - [25/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" '
            '"evil \\"agent\\" 1.0"')
    fields = PatternParser(presets=["nginx_access"]).parse(line)
    assert fields is not None and fields["user_agent"] == 'evil \\"agent\\" 1.0'


@pytest.mark.parametrize(("line", "expected"), [
    ("<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8",
     {"timestamp": "Oct 11 22:14:15", "hostname": "mymachine", "app_name": "su",
      "proc_id": "123", "message": "'su root' failed for lonvick on /dev/pts/8",
      "facility": "4", "severity": "2"}),
    ("Oct  1 22:14:15 host kernel: [  1.2] usb 1-1: new device",
     {"timestamp": "Oct  1 22:14:15", "hostname": "host", "app_name": "kernel",
      "message": "[  1.2] usb 1-1: new device"}),
    ("Oct 11 22:14:15 host no tag on this one",
     {"timestamp": "Oct 11 22:14:15", "hostname": "host", "message": "no tag on this one"}),
])
def test_syslog_rfc3164(line: str, expected: dict[str, str]) -> None:
    assert PatternParser(presets=["syslog_rfc3164"]).parse(line) == expected


@pytest.mark.parametrize(("line", "expected"), [
    # The examples of RFC 5424 section 6.5.
    ("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
     "\ufeff'su root' failed for lonvick on /dev/pts/8",
     {"version": "1", "timestamp": "2003-10-11T22:14:15.003Z",
      "hostname": "mymachine.example.com", "app_name": "su", "msg_id": "ID47",
      "message": "'su root' failed for lonvick on /dev/pts/8", "facility": "4",
      "severity": "2"}),
    ("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
     "%% It's time to make the do-nuts.",
     {"version": "1", "timestamp": "2003-08-24T05:14:15.000003-07:00", "hostname": "192.0.2.1",
      "app_name": "myproc", "proc_id": "8710", "message": "%% It's time to make the do-nuts.",
      "facility": "20", "severity": "5"}),
    ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
     '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
     '[examplePriority@32473 class="high"]',
     {"version": "1", "timestamp": "2003-10-11T22:14:15.003Z",
      "hostname": "mymachine.example.com", "app_name": "evntslog", "msg_id": "ID47",
      "structured_data": '[exampleSDID@32473 iut="3" eventSource="Application" '
                         'eventID="1011"][examplePriority@32473 class="high"]',
      "facility": "20", "severity": "5"}),
    ('<13>1 - - - - - [a b="x \\] y"] m',
     {"version": "1", "structured_data": '[a b="x \\] y"]', "message": "m",
      "facility": "1", "severity": "5"}),
])
def test_syslog_rfc5424(line: str, expected: dict[str, str]) -> None:
    assert PatternParser(presets=["syslog_rfc5424"]).parse(line) == expected


def test_presets_do_not_take_each_others_lines() -> None:
    parser = PatternParser(presets=list(PRESETS))
    found = parser.match("<34>1 2003-10-11T22:14:15.003Z host su - ID47 - x")
    assert found is not None and found[0] == "syslog_rfc5424"
    found = parser.match("<34>Oct 11 22:14:15 host su: x")
    assert found is not None and found[0] == "syslog_rfc3164"
    assert parser.match("2026-11-25T10:15:00Z INFO app: started") is None
    assert parser.match("plain text") is None


def test_user_patterns_first_and_in_order() -> None:
    parser = PatternParser([r"^(?P<a>\w+) (?P<b>\w+)$", r"(?P<word>\w+)"],
                           presets=["nginx_access"])
    assert parser.names == ["pattern_0", "pattern_1", "nginx_access"]
    assert parser.match("hello world") == ("pattern_0", {"a": "hello", "b": "world"})
    assert parser.match("  hello, world") == ("pattern_1", {"word": "hello"})  # re.search
    assert parser.match(COMBINED) == ("pattern_1", {"word": "192"})


def test_unmatched_empty_and_dash_groups_left_out() -> None:
    parser = PatternParser([r"(?P<a>x)(?P<b>y)?(?P<c>-)?(?P<d>z*)"])
    assert parser.parse("x-") == {"a": "x"}
    # Unnamed groups alongside named ones are fine.
    assert PatternParser([r"(x)(?P<b>y)(-)?(?P<c>-)"]).parse("xy-") == {"b": "y"}


def test_empty_parser() -> None:
    parser = PatternParser()
    assert not parser
    assert parser.parse("anything") is None


@pytest.mark.parametrize(("pattern", "reason"), [
    ("(?P<a>", "does not compile"),
    (r"(\w+)", "no named group"),
    ("plain", "no named group"),
])
def test_bad_user_patterns(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        compile_pattern(pattern)
    with pytest.raises(ValueError, match=reason):
        PatternParser([pattern])


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        PatternParser(presets=["log4j"])


# --- no parser raises -----------------------------------------------------------------------

ALL = PatternParser([r"(?P<k>\w+)=(?P<v>\S+)"], presets=list(PRESETS))


@settings(deadline=None)
@given(any_text)
def test_no_parser_raises(line: str) -> None:
    assert parse_json_object(line) is None or isinstance(parse_json_object(line), dict)
    parsed = parse_logfmt(line)
    assert parsed is None or len(parsed) >= 2
    found = ALL.match(line)
    assert found is None or all(isinstance(v, str) for v in found[1].values())


line_like = st.one_of(
    st.builds(lambda ip, ts, req, st_, ua: f'{ip} - - [{ts}] "{req}" {st_} 1 "-" "{ua}"',
              any_text, any_text, any_text, st.integers(), any_text),
    st.builds(lambda pri, rest: f"<{pri}>{rest}", st.integers(0, 999), any_text),
    st.builds(lambda pairs: " ".join(f"{k}={v}" for k, v in pairs),
              st.lists(st.tuples(any_text, any_text), max_size=5)),
)


@settings(deadline=None)
@given(line_like)
def test_no_parser_raises_on_near_misses(line: str) -> None:
    parse_json_object(line)
    parse_logfmt(line)
    ALL.match(line)

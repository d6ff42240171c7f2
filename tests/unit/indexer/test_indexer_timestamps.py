from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.stages import timestamps
from indexer.stages.timestamps import normalize_timestamp

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def parse_back(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text[:-1] + "+00:00")


@pytest.mark.parametrize("value", [
    "2026-11-25T10:15:00Z",
    "2026-11-25T10:15:00.1Z",
    "2026-11-25T10:15:00.123456Z",
    "2026-11-25T10:15:00.123456789Z",  # CRI: nanoseconds kept
    "1970-01-01T00:00:00Z",
    "2024-02-29T23:59:59Z",
])
def test_canonical_is_returned_unchanged(value: str) -> None:
    assert normalize_timestamp(value, NOW) == value


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-25T10:15:00.123456789+02:00", "2026-11-25T08:15:00.123456789Z"),
    ("2026-11-25T00:15:00.5-02:30", "2026-11-25T02:45:00.5Z"),
    ("2026-11-25T10:15:00+0100", "2026-11-25T09:15:00Z"),
    ("2026-11-25T10:15:00+01", "2026-11-25T09:15:00Z"),
    ("2026-11-25T10:15:00.000+00:00", "2026-11-25T10:15:00.000Z"),
    ("2026-11-25t10:15:00z", "2026-11-25T10:15:00Z"),
    ("2026-11-25 10:15:00,123", "2026-11-25T10:15:00.123Z"),  # Python logging, no zone: UTC
    ("2026/11/25 10:15:00", "2026-11-25T10:15:00Z"),  # Go's log package
    ("2026-11-25 10:15:00.123456789 +0000 UTC", "2026-11-25T10:15:00.123456789Z"),  # Go
    ("2026-11-25 10:15:00 UTC", "2026-11-25T10:15:00Z"),
    ("2026-11-25T10:15", "2026-11-25T10:15:00Z"),
    ("2026-11-25", "2026-11-25T00:00:00Z"),
    ("2026-11-25T10:15:00.1234567891Z", "2026-11-25T10:15:00.123456789Z"),  # cut to 9 digits
    ("2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00Z"),  # crosses the year back
    ("  2026-11-25T10:15:00Z  ", "2026-11-25T10:15:00Z"),
])
def test_iso_forms(value: str, expected: str) -> None:
    assert normalize_timestamp(value, NOW) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("10/Oct/2026:13:55:36 -0700", "2026-10-10T20:55:36Z"),
    ("[10/Oct/2026:13:55:36 +0000]", "2026-10-10T13:55:36Z"),
    ("25/Nov/2026:12:30:00 +0530", "2026-11-25T07:00:00Z"),
    ("10/oct/2026:13:55:36 +0000", "2026-10-10T13:55:36Z"),
])
def test_common_log_format(value: str, expected: str) -> None:
    assert normalize_timestamp(value, NOW) == expected


S = calendar.timegm(NOW.utctimetuple())  # 2026-11-25T12:00:00Z in epoch seconds


@pytest.mark.parametrize(("value", "expected"), [
    (S - 3600, "2026-11-25T11:00:00Z"),
    ((S - 3600) * 1000 + 123, "2026-11-25T11:00:00.123Z"),
    ((S - 3600) * 1_000_000 + 123_456, "2026-11-25T11:00:00.123456Z"),
    ((S - 3600) * 1_000_000_000 + 123_456_789, "2026-11-25T11:00:00.123456789Z"),
    ((S - 3600) * 1_000_000_000 + 120_000_000, "2026-11-25T11:00:00.120Z"),
    (float(S - 3600) + 0.25, "2026-11-25T11:00:00.250Z"),
    (1_700_000_000.1, "2023-11-14T22:13:20.100Z"),  # no float noise in the fraction
    (1.7e9, "2023-11-14T22:13:20Z"),
    (1.7e18, "2023-11-14T22:13:20Z"),
    (str(S - 3600), "2026-11-25T11:00:00Z"),
    (f"{S - 3600}.5", "2026-11-25T11:00:00.500Z"),
    (f"{(S - 3600) * 1000}", "2026-11-25T11:00:00Z"),
    (0, "1970-01-01T00:00:00Z"),
])
def test_epoch_units_by_magnitude(value: object, expected: str) -> None:
    assert normalize_timestamp(value, NOW) == expected


@pytest.mark.parametrize(("value", "now", "expected"), [
    ("Oct 11 22:14:15", NOW, "2026-10-11T22:14:15Z"),
    ("Oct  1 22:14:15", NOW, "2026-10-01T22:14:15Z"),
    ("Oct 11 22:14:15.123", NOW, "2026-10-11T22:14:15.123Z"),
    ("Nov 26 11:59:00", NOW, "2026-11-26T11:59:00Z"),  # within the day of slack
    # Later in the year than now: last year's (a log is read after it is written).
    ("Dec 31 23:00:00", NOW, "2025-12-31T23:00:00Z"),
    # Just after midnight on New Year, read a minute before it by a slow clock: next year.
    ("Jan  1 00:00:05", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "2027-01-01T00:00:05Z"),
    # The latest Feb 29 not in the future.
    ("Feb 29 10:00:00", NOW, "2024-02-29T10:00:00Z"),
])
def test_syslog_year_inferred_from_now(value: str, now: datetime, expected: str) -> None:
    assert normalize_timestamp(value, now) == expected


def test_aware_and_naive_datetimes() -> None:
    assert normalize_timestamp(datetime(2026, 1, 1, 1, 2, 3, 500), NOW) == \
        "2026-01-01T01:02:03.000500Z"
    plus5 = timezone(timedelta(hours=5))
    assert normalize_timestamp(datetime(2026, 1, 1, tzinfo=plus5), NOW) == \
        "2025-12-31T19:00:00Z"


def test_naive_now_is_utc() -> None:
    naive = datetime(2026, 11, 25, 12, 0, 0)
    assert normalize_timestamp("2026-11-26T12:00:00Z", naive) == "2026-11-26T12:00:00Z"
    assert normalize_timestamp("2026-11-26T12:00:01Z", naive) is None


def test_future_bound_is_one_day_after_now() -> None:
    assert normalize_timestamp("2026-11-26T12:00:00Z", NOW) == "2026-11-26T12:00:00Z"
    assert normalize_timestamp("2026-11-26T12:00:01Z", NOW) is None
    assert normalize_timestamp(S + 86400, NOW) is not None
    assert normalize_timestamp(S + 86401, NOW) is None
    assert normalize_timestamp("2026-11-26T14:00:00+02:00", NOW) is not None
    assert normalize_timestamp("2026-11-26T13:00:01+01:00", NOW) is None


def test_bound_follows_now_between_calls() -> None:
    later = NOW + timedelta(days=30)
    assert normalize_timestamp("2026-12-20T00:00:00Z", NOW) is None
    assert normalize_timestamp("2026-12-20T00:00:00Z", later) == "2026-12-20T00:00:00Z"
    assert normalize_timestamp("2026-12-20T00:00:00Z", NOW) is None


@pytest.mark.parametrize("value", [
    "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", -1, -1.5, "-5",
    "2026-02-30T10:15:00Z", "2026-02-29T10:15:00Z", "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T10:15:60Z",
    "2026-11-25T10:15:60+01:00", "Oct 11 24:00:00", "Feb 31 00:00:00", "Foo 11 22:14:15",
    "10/Foo/2026:13:55:36 -0700", "32/Oct/2026:13:55:36 -0700", "0000-01-01T00:00:00+01:00",
    "", " ", "-", "garbage", "2026-11-25Tnope", "1e9", "0x10", "NaN",
    float("nan"), float("inf"), True, False, None, [], {}, b"2026-11-25T10:15:00Z",
    10**40, 9.9e300, datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
])
def test_rejected(value: object) -> None:
    assert normalize_timestamp(value, NOW) is None


two = st.integers(0, 99)
fractions = st.sampled_from(["", ".5", ".123", ",123456", ".123456789", ".1234567891234"])
zones = st.sampled_from(["", "Z", "z", "+00:00", "-07:00", "+0530", "+14", " UTC", " +0000 UTC",
                         "+99:99"])
months = st.sampled_from(["Jan", "Feb", "Oct", "Dec", "Foo", "oct"])
texts = st.one_of(
    st.text(),
    st.text(alphabet="0123456789 :.,TZz+-/[]", max_size=40),
    st.builds(lambda y, mo, d, h, mi, s, f, z, sep: (
        f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{f}{z}"),
        st.integers(0, 9999), two, two, two, two, two, fractions, zones,
        st.sampled_from(["T", " ", "t"])),
    st.builds(lambda d, mo, y, h, mi, s, z: f"[{d:02d}/{mo}/{y:04d}:{h:02d}:{mi:02d}:{s:02d} {z}]",
              two, months, st.integers(0, 9999), two, two, two,
              st.sampled_from(["+0000", "-0700", "+1400", "-9999"])),
    st.builds(lambda mo, d, h, mi, s: f"{mo} {d:>2} {h:02d}:{mi:02d}:{s:02d}",
              months, two, two, two, two),
)
values = st.one_of(texts, st.integers(), st.floats(), st.booleans(), st.none(),
                   st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])))
nows = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1),
                    timezones=st.just(UTC))


@settings(deadline=None)
@given(values, nows)
def test_output_always_parses_back_within_bounds(value: object, now: datetime) -> None:
    out = normalize_timestamp(value, now)
    if out is None:
        return
    parsed = parse_back(out)
    assert datetime(1970, 1, 1, tzinfo=UTC) <= parsed
    assert parsed <= now + timedelta(days=1)
    assert normalize_timestamp(out, now) == out  # canonical output is a fixed point


instants = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2026, 11, 25))


@settings(deadline=None)
@given(instants, st.integers(-14 * 60, 14 * 60))
def test_offsets_give_the_same_instant(instant: datetime, offset_min: int) -> None:
    zone = timezone(timedelta(minutes=offset_min))
    local = instant.replace(tzinfo=UTC).astimezone(zone)
    out = normalize_timestamp(local.isoformat(), NOW)
    assert out is not None
    assert parse_back(out) == instant.replace(tzinfo=UTC)


@settings(deadline=None)
@given(instants)
def test_epoch_units_agree(instant: datetime) -> None:
    seconds = calendar.timegm(instant.utctimetuple())
    expected = normalize_timestamp(seconds, NOW)
    assert expected is not None and parse_back(expected) == instant.replace(
        tzinfo=UTC, microsecond=0)
    if seconds >= 10**9:  # below that, smaller units would read as a larger one
        assert normalize_timestamp(seconds * 1000, NOW) == expected
        assert normalize_timestamp(seconds * 1_000_000, NOW) == expected
        assert normalize_timestamp(seconds * 1_000_000_000, NOW) == expected
        assert normalize_timestamp(str(seconds * 1000), NOW) == expected


# -- the C twin of the canonical-form check (indexer/stages/_timestamps.c) ---------------------

def test_the_c_check_is_built_where_a_compiler_is(c_compiler: str) -> None:
    # setup.py builds it as optional: a broken build would fall back silently and slowly.
    assert timestamps.COMPILED
    assert timestamps.canonical is not timestamps.canonical_py


_BASES = ["2026-11-25T10:15:00Z", "2024-02-29T23:59:59.123456789Z", "1970-01-01T00:00:00.5Z",
          "1969-12-31T23:59:59Z", "2026-11-26T12:00:00Z", "2026-11-26T12:00:01.000Z",
          "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z",
          "2026-04-31T00:00:00Z", "2026-12-31T23:59:59Z", "0000-01-01T00:00:00Z",
          "9999-12-31T23:59:59.999999999Z"]
# a canonical-looking time with a few characters replaced, inserted or removed: every
# position of the form, the digits at the edges of each range, non-ASCII digits
_near = st.tuples(
    st.sampled_from(_BASES),
    st.lists(st.tuples(st.integers(0, 31), st.sampled_from(
        ["0", "1", "2", "3", "4", "5", "6", "9", "-", ":", "T", "t", " ", ".", "Z", "z", "",
         "\u0662", "\uff11", "é", "00", "0000000000"]), st.booleans()), max_size=3),
).map(lambda t: _edit(*t))


def _edit(base: str, edits: list[tuple[int, str, bool]]) -> str:
    text = base
    for at, piece, replace in edits:
        text = text[:at] + piece + text[at + 1 if replace else at:]
    return text


_UPPERS = ["2026-11-26T12:00:00", "2026-11-26T12:00:0", "2026-11-26T12:00:00.5", "",
           "9999-12-31T23:59:59", "2026-11-2\u0666T12:00:00"]


@settings(deadline=None, max_examples=3000)
@given(_near, st.sampled_from(_UPPERS))
def test_the_c_check_answers_what_the_python_one_answers(value: str, upper: str) -> None:
    if not timestamps.COMPILED:
        pytest.skip("the C twin is not built")
    assert timestamps.canonical(value, upper) == timestamps.canonical_py(value, upper)


@settings(deadline=None)
@given(st.text(max_size=32), st.sampled_from(_UPPERS))
def test_the_c_check_on_any_text(value: str, upper: str) -> None:
    if not timestamps.COMPILED:
        pytest.skip("the C twin is not built")
    assert timestamps.canonical(value, upper) == timestamps.canonical_py(value, upper)


def test_the_c_check_at_every_value_of_every_field() -> None:
    """Each two-digit field of the form through 00..99 (and the fraction's lengths): the
    range edges, which a random edit rarely hits."""
    if not timestamps.COMPILED:
        pytest.skip("the C twin is not built")
    base = "2024-02-29T23:59:59.123Z"
    values = [base[:at] + f"{n:02d}" + base[at + 2:] for at in (2, 5, 8, 11, 14, 17)
              for n in range(100)]
    values += [f"2024-01-01T00:00:00{fraction}Z" for fraction in
               ("", ".", *(("." + "1" * k) for k in range(1, 12)))]
    for value in values:
        for upper in _UPPERS:
            assert timestamps.canonical(value, upper) == timestamps.canonical_py(value, upper)

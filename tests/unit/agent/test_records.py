"""Records: two parallel lists that still read as a sequence of (value, commit) pairs."""

from __future__ import annotations

import pytest

from agent.stages.records import Records, as_records


def test_records_read_as_pairs() -> None:
    recs = Records([b"a", b"b", b"c"], [2, 4, 6])
    assert len(recs) == 3 and bool(recs) and not Records()
    assert list(recs) == [(b"a", 2), (b"b", 4), (b"c", 6)]
    assert recs[1] == (b"b", 4) and recs[-1] == (b"c", 6)
    assert recs[1:] == [(b"b", 4), (b"c", 6)] and isinstance(recs[1:], Records)
    recs.append((b"d", 8))
    recs.extend([(b"e", 10)])
    recs.extend(Records([b"f"], [12]))
    assert recs.values == [b"a", b"b", b"c", b"d", b"e", b"f"]
    assert recs.commits == [2, 4, 6, 8, 10, 12]
    out: list[tuple[bytes, int]] = []
    out.extend(recs)
    assert out == list(recs)


def test_as_records_and_mismatched_lists() -> None:
    recs = Records([b"a"], [1])
    assert as_records(recs) is recs
    assert as_records([(b"x", 5)]) == Records([b"x"], [5])
    with pytest.raises(ValueError):
        Records([b"a"], [])

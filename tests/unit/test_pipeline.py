"""The per-file pipelines: the flattened CRI fast path must equal the general path, and every
pipeline's records tile the file (origins unique, commits never going backwards)."""

from __future__ import annotations

from itertools import accumulate

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.sources.tailer import Chunk
from agent.stages.pipeline import ContainerPipeline, PlainPipeline, Records
from agent.stages.records import Lines, pack
from logferry.wire import decode, decode_lines

PATH = "/var/log/pods/ns_pod_uid/c/0.log"


def _container() -> ContainerPipeline:
    pipe = ContainerPipeline("h", PATH, "1:2:3", {"namespace": "ns"}, "cri", 64 * 1024, 5.0,
                             None, 0)
    pipe.record_max_bytes = 0  # one line per record: each with its own commit
    return pipe


def _plain(*args: object) -> PlainPipeline:
    pipe = PlainPipeline(*args)  # type: ignore[arg-type]
    pipe.record_max_bytes = 0
    return pipe


def _general(pipe: ContainerPipeline, body: bytes) -> Records:
    out = Lines(with_streams=True)
    off = 0
    for raw in body.split(b"\n"):
        end = off + len(raw) + 1
        pipe._line(raw, off, end, False, 0.0, out)
        off = end
    return pack(pipe._record_head(), out, 0)


def _comparable(records: Records) -> list[tuple[dict[str, object], int]]:
    out = []
    for value, commit in records:
        rec = decode(value).to_dict()
        if "parse_error" in rec.get("flags", []):
            rec.pop("ts")  # read time, differs between two runs
        out.append((rec, commit))
    return out


_line = st.one_of(
    st.tuples(st.sampled_from(["stdout", "stderr"]), st.sampled_from(["F", "P"]),
              st.binary(max_size=40).filter(lambda b: b"\n" not in b)).map(
        lambda t: b"2026-11-25T10:15:00.123456789Z " + t[0].encode() + b" " + t[1].encode()
        + b" " + t[2]),
    st.binary(max_size=30).filter(lambda b: b"\n" not in b),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, min_size=1, max_size=30))
def test_fast_path_equals_general_path(lines: list[bytes]) -> None:
    body = b"\n".join(lines)
    fast = _container().process(Chunk(0, body, len(body) + 1), 0.0)
    general = _general(_container(), body)
    assert _comparable(fast) == _comparable(general)
    commits = [c for _, c in fast]
    assert commits == sorted(commits)
    for value, _ in fast:
        decode(value)  # every record is valid on the wire


def test_cri_records_carry_stream_ts_and_k8s() -> None:
    body = (b"2026-11-25T10:15:00.000000001Z stderr F boom \xe2\x9c\x93\n"
            b"2026-11-25T10:15:00.000000002Z stdout F ok")
    records = _container().process(Chunk(0, body, len(body) + 1), 0.0)
    first, second = (decode(v) for v, _ in records)
    assert (first.stream, first.line, first.off, first.k8s) == ("stderr", "boom ✓", 0,
                                                                {"namespace": "ns"})
    assert (second.ts, second.off) == ("2026-11-25T10:15:00.000000002Z", 49)
    assert [c for _, c in records] == [49, len(body) + 1]


def test_plain_multiline_joins_a_traceback_and_commits_at_clean_cuts() -> None:
    from agent.stages.multiline import MultilineRules

    pipe = _plain("h", "/x.log", "1:2:3", 1024, MultilineRules(mode="indent"), 0)
    body = b"start\nTraceback (most recent call last):\n  File x\nValueError: bad\nnext"
    records = pipe.process(Chunk(0, body, len(body) + 1), 0.0)
    assert [decode(v).line for v, _ in records] == [
        "start\nTraceback (most recent call last):\n  File x\nValueError: bad"]
    assert pipe.holding
    [(value, commit)] = pipe.drain()
    assert decode(value).line == "next" and commit == len(body) + 1


def test_percent_signs_in_path_and_pod_fields_reach_the_record_unchanged() -> None:
    # The hot paths build records with bytes % formatting: the head must not be a format.
    path = "/var/log/pods/ns_100%d-pod_uid/c%s/0.log"
    k8s = {"namespace": "ns", "labels": {"app": "50%b%%"}}
    pipe = ContainerPipeline("h%x", path, "1:2:3", k8s, "cri", 64 * 1024, 5.0, None, 0)
    pipe.record_max_bytes = 0
    body = b"2026-11-25T10:15:00.000000001Z stdout F 100% done"
    [(value, _)] = list(pipe.process(Chunk(0, body, len(body) + 1), 0.0))
    rec = decode(value)
    assert (rec.host, rec.path, rec.k8s, rec.line) == ("h%x", path, k8s, "100% done")
    plain = _plain("h%x", path, "1:2:3", 1024, None, 0)
    [(value, _)] = list(plain.process(Chunk(0, b"50% off", 8), 0.0))
    assert (decode(value).path, decode(value).line) == (path, "50% off")


def test_the_rest_of_an_over_long_line_goes_out_raw_like_its_first_pieces() -> None:
    # The tailer sent the first pieces of a line over max_line_bytes as forced chunks; the next
    # chunk starts with its last piece, which may look like CRI but is not a line of its own.
    pipe = _container()
    cri = b"2026-11-25T10:15:00.000000001Z stdout F next"
    body = b"2026-11-25T10:15:00.000000000Z stdout F tail\n" + cri
    records = pipe.process(Chunk(100, body, 100 + len(body) + 1, continued=True), 0.0)
    first, second = (decode(v) for v, _ in records)
    assert (first.off, first.flags) == (100, ["split", "parse_error"])
    assert first.line == body.split(b"\n")[0].decode()
    nxt = 100 + body.index(b"\n") + 1
    assert (second.off, second.line, second.flags) == (nxt, "next", [])
    assert [c for _, c in records] == [nxt, 100 + len(body) + 1]


def test_plain_multiline_sends_the_pieces_of_a_long_line_alone() -> None:
    from agent.stages.multiline import MultilineRules

    pipe = _plain("h", "/x.log", "1:2:3", 4, MultilineRules(mode="indent"), 0)
    body = b"head\n  aaaaaa\n  b"
    records = pipe.process(Chunk(0, body, len(body) + 1), 0.0)
    # The open event ends before the pieces; the indented line after them opens a new one.
    assert [(decode(v).off, decode(v).line, decode(v).flags, c) for v, c in records] == [
        (0, "head", [], 5), (5, "  aa", ["split"], 9), (9, "aaaa", ["split"], 14)]
    [(value, commit)] = pipe.drain()
    assert (decode(value).off, decode(value).line, commit) == (14, "  b", len(body) + 1)


def test_lines_are_packed_many_to_a_record_with_the_last_commit() -> None:
    cri = [b"2026-11-25T10:15:00.%09dZ %s F line %d" % (i, b"stderr" if i % 3 else b"stdout", i)
           for i in range(2000)]
    body = b"\n".join(cri)
    chunk = Chunk(0, body, len(body) + 1)
    one_each = _container().process(chunk, 0.0)
    pipe = _container()
    pipe.record_max_bytes = 16 * 1024
    packed = pipe.process(chunk, 0.0)
    assert 1 < len(packed) < len(one_each) / 100
    assert sum(packed.lines) == len(one_each) == 2000
    # The same lines, in order; each record's commit is its last line's.
    assert [r for v, _ in packed for r in decode_lines(v)] == [decode(v) for v, _ in one_each]
    last = list(accumulate(packed.lines))
    assert packed.commits == [one_each.commits[i - 1] for i in last]
    for value in packed.values:
        assert len(value) < 16 * 1024 * 1.2  # about the limit (JSON escapes aside)
    small = b"\n".join(cri[:500])
    plain = PlainPipeline("h", "/x.log", "1:2:3", 1024, None, 0).process(
        Chunk(0, small, len(small) + 1), 0.0)
    [(value, commit)] = plain
    assert orjson.loads(value)["ts"] == decode_lines(value)[0].ts  # one stamp for a read
    assert commit == len(small) + 1 and len(decode_lines(value)) == 500


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, min_size=1, max_size=30), st.lists(st.booleans(), max_size=30))
def test_fast_path_equals_general_path_across_chunks(lines: list[bytes],
                                                    cuts: list[bool]) -> None:
    # A chunk may begin while a P piece of the previous one is still pending.
    body = b"\n".join(lines)
    pipe = _container()
    fast = Records()
    start = 0
    group: list[bytes] = []
    for i, line in enumerate(lines):
        group.append(line)
        if i == len(lines) - 1 or (i < len(cuts) and cuts[i]):
            part = b"\n".join(group)
            fast.extend(pipe.process(Chunk(start, part, start + len(part) + 1), 0.0))
            start += len(part) + 1
            group = []
    assert _comparable(fast) == _comparable(_general(_container(), body))


def test_a_chunk_that_starts_with_a_pending_piece_joins_it() -> None:
    pipe = _container()
    first = b"2026-11-25T10:15:00.1Z stdout P abc"
    second = (b"2026-11-25T10:15:00.2Z stdout F def\n2026-11-25T10:15:00.3Z stdout F ghi\n"
              b"2026-11-25T10:15:00.4Z stdout P jk\n2026-11-25T10:15:00.5Z stdout F l")
    assert not pipe.process(Chunk(0, first, len(first) + 1), 0.0)
    start = len(first) + 1
    records = pipe.process(Chunk(start, second, start + len(second) + 1), 0.0)
    assert [decode(v).line for v, _ in records] == ["abcdef", "ghi", "jkl"]

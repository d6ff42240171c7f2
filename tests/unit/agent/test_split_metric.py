"""``logferry_agent_lines_split_total``: one per line over ``max_line_bytes``, whatever the
read size, with the pieces themselves flagged ``split``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.agent.test_open_file_limit import _metric, running, until


@pytest.mark.parametrize("read_chunk_bytes", [4096, 1 << 20])
async def test_each_long_line_counts_once(tmp_path: Path, read_chunk_bytes: int) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    long_a, long_b = "a" * 5000, "b" * 2500
    (logs / "app.log").write_text(f"short\n{long_a}\nmid\n{long_b}\nend\n")
    async with running(tmp_path, max_line_bytes=1024,
                       read_chunk_bytes=read_chunk_bytes) as (app, sink):
        await until(lambda: sink.lines()[-1:] == ["end"], "the last line")
        assert _metric(app, "logferry_agent_lines_split_total") == 2
    pieces = [r for r in sink.records if "split" in r.get("flags", [])]
    assert "".join(r["line"] for r in pieces) == long_a + long_b
    assert [r["line"] for r in sink.records if "split" not in r.get("flags", [])] == [
        "short", "mid", "end"]

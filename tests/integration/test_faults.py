"""The short fault suite (`make faults` runs the full one): every scenario on the real Kafka and
OpenSearch of the session, each line accounted for. The table is printed at the end of the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logferry.devstack import DevStack
from tests.faults.harness import RESULTS, format_table, run_scenario
from tests.faults.scenarios import scenarios

pytestmark = pytest.mark.integration

_SHORT = {s.name: s for s in scenarios(short=True)}


@pytest.mark.parametrize("name", list(_SHORT))
def test_scenario(name: str, stack: DevStack, tmp_path: Path) -> None:
    if _SHORT[name].prepare is not None and os.geteuid() != 0:
        pytest.skip("mounts a tiny tmpfs for the state dir: needs root (CI runs as root)")
    row = run_scenario(_SHORT[name], stack, tmp_path)
    RESULTS.append(row)
    assert row.ok, f"{format_table([row])}\nwork dir: {tmp_path}"

"""Less cyclic garbage collection while a service moves data."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def lean_gc() -> Iterator[None]:
    """What start-up built (modules, clients, settings) lives as long as the process and is
    moved out of the collector's sight, and the youngest generation is collected every 10,000
    allocations instead of 700. Both services allocate tens of thousands of short-lived
    objects a second (lists of lines, documents), almost none in cycles: with the defaults
    the collector took about 7% of the indexer's CPU and 1.3% of the agent's."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()

"""The C twins of the agent's chunk scans (``agent/stages/_scan.c``), when the build made them.

The module is an optional extension (setup.py): without a C compiler the install goes on, both
are None here, and :func:`agent.stages.cri.scan_chunk` and
:func:`agent.stages.framing.split_lines` are their pure-Python twins, which give the same
results more slowly.
"""

from __future__ import annotations

from collections.abc import Callable

# A CRI chunk read: the lines' start offsets and one past the last newline (offsets[i + 1] is
# line i's commit), their timestamps, streams and messages, and the indices of P pieces.
Scanned = tuple[list[int], list[str], list[str], list[str], list[int]]
# A plain chunk split: the same offsets, and the lines' text.
Split = tuple[list[int], list[str]]


def _load() -> tuple[Callable[[bytes, int], Scanned | None],
                     Callable[[bytes, int], Split | None]] | None:
    try:
        from agent.stages._scan import cri, lines
    except ImportError:
        return None
    return cri, lines


_loaded = _load()
COMPILED = _loaded is not None
cri_scan = None if _loaded is None else _loaded[0]
line_split = None if _loaded is None else _loaded[1]

"""indexer/stages/_timestamps.c: see indexer.stages.timestamps.canonical_py."""

from collections.abc import Callable
from typing import Any

def canonical(value: str, upper: str, /) -> Any: ...
def set_fallback(function: Callable[[str, str], Any], /) -> None: ...

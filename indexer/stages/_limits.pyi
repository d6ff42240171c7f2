"""indexer/stages/_limits.c: see indexer.stages.limits.needs_no_capping_py."""

from typing import Any

def needs_no_capping(fields: dict[str, Any], source_chars: int, max_fields: int,
                     max_value_bytes: int, /) -> bool: ...

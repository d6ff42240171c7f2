"""indexer/stages/_document.c: see indexer.stages.document.DocumentBuilder._lines_py."""

from collections.abc import Callable
from typing import Any

def assemble(action: bytes, hash_head: bytes, off: int, timestamp: str, message: str,
             file_part: bytes, stream: str | None, level: str | None, meta_part: bytes,
             flags: list[Any] | None, event_part: bytes, original: str | None,
             k8s_part: bytes | None, fields: dict[str, Any], /) -> bytes | None: ...
def configure(dumps: Callable[[Any], bytes], reserved: frozenset[str], /) -> None: ...
def digest(head: bytes, tail: bytes, /) -> bytes: ...
def assemble_batch(shape: Callable[[str, str, Any], tuple[Any, ...]], now: Any,
                   action_for: Callable[[str], bytes], hash_head: bytes, file_part: bytes,
                   meta_part: bytes, event_part: bytes, k8s_part: bytes | None,
                   offs: list[int], lines: list[str], stamps: list[str],
                   streams: list[str | None], flags: dict[int, list[Any]],
                   fallback: Callable[[int, Any], bytes], /) -> list[bytes]: ...

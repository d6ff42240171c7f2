"""What a pipeline hands to the sink: record values in file order, each with its commit offset.

Two parallel lists rather than a list of ``(value, commit)`` tuples: the hot paths build them
with whole-list operations (``commits`` of a plain chunk is one ``accumulate``), and the sink
takes ``values`` slices as they are. It still reads as a sequence of ``(value, commit)``
pairs, which is what tests and the slow paths use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload


class Records(Sequence[tuple[bytes, int]]):
    """``values[i]`` is one Kafka record value; ``commits[i]`` the offset the file's checkpoint
    may move to once that record and every one before it is acknowledged."""

    __slots__ = ("commits", "values")

    def __init__(self, values: list[bytes] | None = None,
                 commits: list[int] | None = None) -> None:
        self.values: list[bytes] = [] if values is None else values
        self.commits: list[int] = [] if commits is None else commits
        if len(self.values) != len(self.commits):
            raise ValueError("values and commits differ in length")

    @classmethod
    def of(cls, pairs: Iterable[tuple[bytes, int]]) -> Records:
        out = cls()
        out.extend(pairs)
        return out

    def append(self, pair: tuple[bytes, int]) -> None:
        self.values.append(pair[0])
        self.commits.append(pair[1])

    def extend(self, pairs: Iterable[tuple[bytes, int]]) -> None:
        if isinstance(pairs, Records):
            self.values.extend(pairs.values)
            self.commits.extend(pairs.commits)
            return
        for value, commit in pairs:
            self.values.append(value)
            self.commits.append(commit)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        return zip(self.values, self.commits, strict=True)

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, int]: ...

    @overload
    def __getitem__(self, index: slice) -> Records: ...

    def __getitem__(self, index: int | slice) -> tuple[bytes, int] | Records:
        if isinstance(index, slice):
            return Records(self.values[index], self.commits[index])
        return self.values[index], self.commits[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Records):
            return self.values == other.values and self.commits == other.commits
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Records({list(self)!r})"


def as_records(records: Sequence[tuple[bytes, int]]) -> Records:
    """``records`` as :class:`Records` (no copy if it already is one)."""
    return records if isinstance(records, Records) else Records.of(records)

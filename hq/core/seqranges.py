"""Per-device ``seq`` bookkeeping: the contiguous prefix plus the stored ranges above it.

Pure functions over small values, so HQ never scans a device's events to find its gaps: a batch
merges its seqs into the few ranges above ``contiguous`` and the prefix advances when a range
touches it. Merging is idempotent, so a re-sent batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Range = tuple[int, int]  # inclusive: (lo, hi)


@dataclass(frozen=True)
class SeqState:
    """Every seq ``<= contiguous`` is accounted for; ``ranges`` are sorted, disjoint, non-adjacent."""

    contiguous: int
    ranges: tuple[Range, ...] = ()

    @property
    def highest(self) -> int:
        return self.ranges[-1][1] if self.ranges else self.contiguous

    def gaps(self) -> list[Range]:
        """The missing seqs between the contiguous prefix and the highest stored seq."""
        missing = []
        below = self.contiguous
        for lo, hi in self.ranges:
            missing.append((below + 1, lo - 1))
            below = hi
        return missing


def merge(state: SeqState, seqs: Iterable[int]) -> SeqState:
    """``state`` with ``seqs`` added; seqs below 1 or already covered change nothing."""
    fresh = sorted({s for s in seqs if s > state.contiguous})
    ranges = coalesce([*state.ranges, *((s, s) for s in fresh)])
    contiguous = state.contiguous
    if ranges and ranges[0][0] <= contiguous + 1:
        contiguous = max(contiguous, ranges[0][1])
        ranges = ranges[1:]
    return SeqState(contiguous, tuple(ranges))


def coalesce(ranges: Sequence[Range]) -> list[Range]:
    """Sort and join overlapping or adjacent inclusive ranges."""
    joined: list[Range] = []
    for lo, hi in sorted(ranges):
        if joined and lo <= joined[-1][1] + 1:
            joined[-1] = (joined[-1][0], max(joined[-1][1], hi))
        else:
            joined.append((lo, hi))
    return joined

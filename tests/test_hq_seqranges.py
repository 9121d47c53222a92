"""Seq bookkeeping: the contiguous prefix and the gaps agree with a plain set of seqs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hq.core.seqranges import SeqState, coalesce, merge


def test_out_of_order_batches_leave_a_gap_until_it_is_filled() -> None:
    state = merge(SeqState(0), [1, 2, 3])
    state = merge(state, [7, 8])
    state = merge(state, [5])
    assert state == SeqState(3, ((5, 5), (7, 8)))
    assert state.gaps() == [(4, 4), (6, 6)]
    assert merge(state, [4, 6]) == SeqState(8)


def test_merging_again_changes_nothing() -> None:
    state = merge(SeqState(2), [5, 6, 9])
    assert merge(state, [1, 2, 5, 6, 9, 0, -3]) == state


def test_coalesce_joins_adjacent_and_overlapping_ranges() -> None:
    assert coalesce([(5, 6), (1, 2), (3, 3), (6, 9), (11, 11)]) == [(1, 3), (5, 9), (11, 11)]


@given(st.lists(st.lists(st.integers(min_value=1, max_value=60), max_size=15), max_size=12))
def test_matches_a_set_of_seqs(batches: list[list[int]]) -> None:
    state = SeqState(0)
    seen: set[int] = set()
    for batch in batches:
        state = merge(state, batch)
        seen.update(batch)
        contiguous = 0
        while contiguous + 1 in seen:
            contiguous += 1
        assert state.contiguous == contiguous
        assert state.highest == max(seen, default=0)
        missing = {s for lo, hi in state.gaps() for s in range(lo, hi + 1)}
        assert missing == set(range(1, state.highest + 1)) - seen
        assert all(lo <= hi for lo, hi in state.ranges + tuple(state.gaps()))

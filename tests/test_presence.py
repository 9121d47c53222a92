"""Presence per zone: arrivals, departures, smoothed RSSI; pure, with the time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.presence import PresenceChange, PresenceTracker, PresentTag

EPC = "3074257BF7194E4000001A85"
GTIN = "80614141123458"
LF_TAG = "62E3086CED"
T0 = 1_700_000_000.0


def test_first_read_arrives_and_repeats_do_not() -> None:
    tracker = PresenceTracker(departure_s=3.0)
    arrived = tracker.read("cabin-1", EPC, -52, T0)
    assert arrived == [PresenceChange("arrived", "cabin-1", EPC, GTIN, -52, T0, 0)]
    assert tracker.read("cabin-1", EPC, -50, T0 + 1) == []
    assert tracker.read("cabin-1", EPC, -50, T0 + 2.5) == []
    assert tracker.expire(T0 + 5.4) == []  # last read at +2.5, 2.9 s ago


def test_departure_after_departure_s_without_a_read_carries_dwell() -> None:
    tracker = PresenceTracker(departure_s=3.0, rssi_alpha=0.5)
    tracker.read("cabin-1", EPC, -60, T0)
    tracker.read("cabin-1", EPC, -40, T0 + 2)
    assert tracker.expire(T0 + 4.99) == []
    departed = tracker.expire(T0 + 5)
    assert departed == [PresenceChange("departed", "cabin-1", EPC, GTIN, -50, T0, 2000)]
    assert tracker.present() == {}
    assert tracker.expire(T0 + 100) == []  # departs once


def test_rssi_is_an_exponential_moving_average() -> None:
    tracker = PresenceTracker(rssi_alpha=0.3)
    tracker.read("z", EPC, -70, T0)
    for i in range(1, 4):
        tracker.read("z", EPC, -40, T0 + i / 10)
    # -70 -> -61 -> -54.7 -> -50.29
    assert tracker.present()["z"][0].rssi == -50


def test_readers_without_rssi_give_none_and_non_sgtin_gives_no_gtin() -> None:
    tracker = PresenceTracker()
    (change,) = tracker.read("pad", LF_TAG, None, T0)
    assert change.gtin is None and change.rssi is None
    tracker.read("pad", LF_TAG, None, T0 + 1)
    assert tracker.present() == {"pad": [PresentTag(LF_TAG, None, None, T0, T0 + 1)]}


def test_zones_are_separate_and_ordered_by_arrival() -> None:
    tracker = PresenceTracker()
    tracker.read("cabin-2", "AAAA", -50, T0 + 1)
    tracker.read("cabin-1", "BBBB", -50, T0 + 2)
    tracker.read("cabin-1", "CCCC", -50, T0 + 3)
    assert tracker.read("cabin-2", "BBBB", -50, T0 + 4) == []  # heard next door as loud: it stays in cabin-1
    tracker.read("cabin-1", "BBBB", -50, T0 + 5)
    present = tracker.present()
    assert [t.epc for t in present["cabin-1"]] == ["BBBB", "CCCC"]
    assert [t.epc for t in present["cabin-2"]] == ["AAAA"]
    assert tracker.zone_of("BBBB") == "cabin-1" and tracker.zone_of("DDDD") is None
    departed = tracker.expire(T0 + 6.5)
    assert [(c.zone, c.epc) for c in departed] == [("cabin-2", "AAAA"), ("cabin-1", "CCCC")]


def test_remove_zone_departs_its_tags_only() -> None:
    tracker = PresenceTracker()
    tracker.read("cabin-1", "AAAA", -50, T0)
    tracker.read("cabin-1", "AAAA", -50, T0 + 1.5)
    tracker.read("cabin-2", "BBBB", -50, T0)
    changes = tracker.remove_zone("cabin-1", T0 + 2)
    assert [(c.kind, c.epc, c.dwell_ms) for c in changes] == [("departed", "AAAA", 1500)]
    assert list(tracker.present()) == ["cabin-2"]
    assert tracker.remove_zone("nowhere", T0) == []


def test_a_tag_that_returns_arrives_again() -> None:
    tracker = PresenceTracker(departure_s=1.0)
    tracker.read("z", EPC, -50, T0)
    assert len(tracker.expire(T0 + 1)) == 1
    (again,) = tracker.read("z", EPC, -50, T0 + 2)
    assert again.kind == "arrived" and again.since == T0 + 2


@pytest.mark.parametrize("departure_s, alpha", [(0, 0.3), (-1, 0.3), (3, 0), (3, 1.5)])
def test_bad_parameters_are_refused(departure_s: float, alpha: float) -> None:
    with pytest.raises(ValueError):
        PresenceTracker(departure_s, alpha)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["T1", "T2", "T3"]), st.floats(0, 0.9)), max_size=60
    )
)
def test_every_arrival_is_matched_by_one_departure(reads: list[tuple[str, str, float]]) -> None:
    tracker = PresenceTracker(departure_s=1.0)
    now = T0
    changes = []
    for zone, epc, step in reads:
        now += step
        changes += tracker.expire(now)
        changes += tracker.read(zone, epc, -50, now)
    changes += tracker.expire(now + 1.0)
    arrivals = [(c.zone, c.epc, c.since) for c in changes if c.kind == "arrived"]
    departures = [(c.zone, c.epc, c.since) for c in changes if c.kind == "departed"]
    assert sorted(arrivals) == sorted(departures)
    assert all(c.dwell_ms >= 0 for c in changes)
    assert tracker.present() == {}

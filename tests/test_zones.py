"""Zone assignment: the arrival filter, one zone per tag, margin and hold; pure, property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.zones import ARRIVED, DEPARTED, Change, Hysteresis, ZoneAssigner, ZoneRules

EPC = "3074257BF7194E4000001A85"
T0 = 1_700_000_000.0
CABINS = {"cabin-1": ZoneRules(min_reads=3, arrival_window_s=1.0), "cabin-2": ZoneRules(min_reads=3)}


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.kind, c.zone) for c in changes]


def test_a_tag_arrives_after_min_reads_within_the_window() -> None:
    zones = ZoneAssigner(CABINS)
    assert zones.read("cabin-1", EPC, -50, T0) == []
    assert zones.read("cabin-1", EPC, -50, T0 + 0.3) == []
    assert kinds(zones.read("cabin-1", EPC, -50, T0 + 0.6)) == [(ARRIVED, "cabin-1")]


def test_reads_spread_wider_than_the_window_never_arrive() -> None:
    zones = ZoneAssigner(CABINS)
    changes = []
    for i in range(10):  # one read every 0.6 s: never three within a second
        changes += zones.read("cabin-1", EPC, -50, T0 + 0.6 * i) + zones.expire(T0 + 0.6 * i)
    assert changes == [] and zones.present() == {}


def test_the_louder_zone_wins_even_when_the_weaker_qualified_first() -> None:
    zones = ZoneAssigner(CABINS)
    for i in range(3):
        zones.read("cabin-2", EPC, -72, T0 + i * 0.1)  # through the wall, read first
        if i == 0:
            assert zones.read("cabin-1", EPC, -45, T0 + 0.05) == []
    assert zones.zone_of(EPC) is None  # cabin-2 qualified, but cabin-1 hears it louder
    zones.read("cabin-1", EPC, -45, T0 + 0.25)
    changes = zones.read("cabin-1", EPC, -45, T0 + 0.3)
    assert kinds(changes) == [(ARRIVED, "cabin-1")]
    assert list(zones.present()) == ["cabin-1"]


def test_a_garment_carried_next_door_moves_once_after_the_hold() -> None:
    zones = ZoneAssigner(CABINS, Hysteresis(margin_db=6, hold_s=2.0), rssi_alpha=1.0)
    changes: list[Change] = []
    t = T0
    for _ in range(20):  # in cabin 1, heard next door too
        t += 0.1
        changes += zones.read("cabin-1", EPC, -45, t) + zones.read("cabin-2", EPC, -72, t)
    assert kinds(changes) == [(ARRIVED, "cabin-1")]
    carried = t + 0.1
    for _ in range(40):  # now in cabin 2; cabin 1 hears it through the wall
        t += 0.1
        changes += zones.read("cabin-1", EPC, -70, t) + zones.read("cabin-2", EPC, -44, t) + zones.expire(t)
    assert kinds(changes) == [(ARRIVED, "cabin-1"), (DEPARTED, "cabin-1"), (ARRIVED, "cabin-2")]
    moved_at = changes[-1].since
    assert carried + 2.0 <= moved_at <= carried + 2.0 + 0.1 + 1e-9


def test_a_lead_shorter_than_the_hold_does_not_move() -> None:
    zones = ZoneAssigner(CABINS, Hysteresis(margin_db=6, hold_s=2.0), rssi_alpha=1.0)
    t = T0
    for _ in range(5):
        t += 0.1
        zones.read("cabin-1", EPC, -50, t)
    for _ in range(15):  # 1.5 s louder next door, then back within the margin
        t += 0.1
        assert zones.read("cabin-2", EPC, -40, t) + zones.read("cabin-1", EPC, -50, t) + zones.expire(t) == []
    t += 0.1
    assert zones.read("cabin-2", EPC, -48, t) == []
    changes = []
    for _ in range(30):  # a lead kept for longer than the hold does move it, once
        t += 0.1
        changes += zones.read("cabin-2", EPC, -40, t) + zones.read("cabin-1", EPC, -50, t) + zones.expire(t)
    assert kinds(changes) == [(DEPARTED, "cabin-1"), (ARRIVED, "cabin-2")]


def test_departure_hands_a_tag_to_a_zone_that_hears_it() -> None:
    zones = ZoneAssigner({"cabin-1": ZoneRules(departure_s=1.0), "cabin-2": ZoneRules(departure_s=1.0)})
    zones.read("cabin-1", EPC, -45, T0)
    zones.read("cabin-2", EPC, -60, T0 + 0.5)
    zones.read("cabin-2", EPC, -60, T0 + 0.9)
    assert zones.expire(T0 + 0.99) == []
    changes = zones.expire(T0 + 1.0)
    assert kinds(changes) == [(DEPARTED, "cabin-1"), (ARRIVED, "cabin-2")]
    assert kinds(zones.expire(T0 + 2.0)) == [(DEPARTED, "cabin-2")] and zones.present() == {}


def test_remove_zone_departs_its_tags() -> None:
    zones = ZoneAssigner()
    zones.read("cabin-1", EPC, -45, T0)
    zones.read("cabin-2", "AAAA", -45, T0)
    assert kinds(zones.remove_zone("cabin-1", T0 + 1)) == [(DEPARTED, "cabin-1")]
    assert list(zones.present()) == ["cabin-2"]


def test_readers_without_rssi_never_move_by_margin() -> None:
    zones = ZoneAssigner(hysteresis=Hysteresis(margin_db=0, hold_s=0))
    changes = []
    for i in range(10):
        changes += zones.read("pad-1", "62E3086CED", None, T0 + i * 0.1)
        changes += zones.read("pad-2", "62E3086CED", None, T0 + i * 0.1)
    assert kinds(changes) == [(ARRIVED, "pad-1")]


@pytest.mark.parametrize(
    "build",
    [
        lambda: ZoneRules(min_reads=0),
        lambda: ZoneRules(arrival_window_s=0),
        lambda: ZoneRules(departure_s=-1),
        lambda: Hysteresis(margin_db=-1),
        lambda: Hysteresis(hold_s=-0.5),
        lambda: ZoneAssigner(rssi_alpha=0),
    ],
)
def test_bad_parameters_are_refused(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        build()


ZONES = ["a", "b", "c"]
TAGS = ["T1", "T2"]
operations = st.lists(
    st.tuples(st.sampled_from(ZONES + ["expire"]), st.sampled_from(TAGS), st.integers(-90, -30), st.floats(0, 0.7)),
    max_size=120,
)


@settings(max_examples=300)
@given(operations, st.integers(1, 3), st.floats(0, 10), st.floats(0, 3))
def test_a_tag_is_never_in_two_zones_and_changes_are_consistent(
    ops: list[tuple[str, str, int, float]], min_reads: int, margin: float, hold: float
) -> None:
    rules = {zone: ZoneRules(min_reads=min_reads, arrival_window_s=1.0, departure_s=1.5) for zone in ZONES}
    zones = ZoneAssigner(rules, Hysteresis(margin, hold))
    where: dict[str, str] = {}
    now = T0
    for zone, epc, rssi, step in ops:
        now += step
        changes = zones.expire(now) if zone == "expire" else zones.read(zone, epc, rssi, now)
        for change in changes:
            if change.kind == ARRIVED:
                assert change.epc not in where, "arrived while already in a zone"
                where[change.epc] = change.zone
            else:
                assert where.pop(change.epc) == change.zone, "departed from a zone it was not in"
        present = [epc for tags in zones.present().values() for epc, *_ in tags]
        assert len(present) == len(set(present)), "a tag in two zones"
        assert {epc: z for z, tags in zones.present().items() for epc, *_ in tags} == where
    zones.expire(now + 10)
    assert zones.present() == {}


rounds = st.lists(st.tuples(st.integers(-90, -30), st.integers(-90, -30), st.floats(0.01, 0.4)), max_size=80)


@settings(max_examples=300)
@given(rounds, st.floats(0, 12), st.floats(0, 3), st.floats(0.1, 1.0))
def test_no_move_without_the_margin_held_for_the_hold_time(
    reads: list[tuple[int, int, float]], margin: float, hold: float, alpha: float
) -> None:
    """Both zones read the tag every round, so it never departs for silence: every zone change is a
    move, and an independent moving average must show the new zone ahead by the margin at every read
    of a streak that began at least the hold time before the move."""
    zones = ZoneAssigner(hysteresis=Hysteresis(margin, hold), rssi_alpha=alpha)
    ema: dict[str, float] = {}
    history: list[tuple[float, dict[str, float]]] = []  # (time, averages) after every read
    current: str | None = None
    arrived_at = 0  # index in history of the read that brought the tag to its zone
    now = T0
    for rssi_a, rssi_b, step in reads:
        now += step
        for zone, rssi in (("a", rssi_a), ("b", rssi_b)):
            ema[zone] = rssi if zone not in ema else ema[zone] + alpha * (rssi - ema[zone])
            history.append((now, dict(ema)))
            changes = zones.read(zone, EPC, rssi, now)
            if not changes:
                continue
            if current is None:
                assert kinds(changes) in ([(ARRIVED, "a")], [(ARRIVED, "b")])
                current, arrived_at = changes[0].zone, len(history) - 1
                continue
            assert [c.kind for c in changes] == [DEPARTED, ARRIVED]
            old, new = changes[0].zone, changes[1].zone
            assert old == current != new
            start = len(history) - 1
            while start - 1 > arrived_at and _ahead(history[start - 1][1], new, old, margin):
                start -= 1
            assert _ahead(history[-1][1], new, old, margin), "moved while not ahead by the margin"
            assert history[start][0] <= now - hold + 1e-9, "moved before the lead was held for the hold time"
            current, arrived_at = new, len(history) - 1


def _ahead(averages: dict[str, float], new: str, old: str, margin: float) -> bool:
    return new in averages and averages[new] >= averages[old] + margin - 1e-9


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 5.4), st.floats(0, 0.3)), max_size=100))
def test_readings_within_the_margin_never_move_a_tag(reads: list[tuple[str, float, float]]) -> None:
    zones = ZoneAssigner(hysteresis=Hysteresis(margin_db=6.0, hold_s=0.0))
    changes: list[Change] = []
    now = T0
    for zone, offset, step in reads:
        now += step
        changes += zones.read(zone, EPC, round(-60 + offset), now)
    assert [c.kind for c in changes] in ([], [ARRIVED])

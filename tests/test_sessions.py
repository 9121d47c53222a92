"""Shopper sessions: pure logic with the time passed in."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.sessions import SURVEY_WINDOW_S, Sessions


def ids() -> itertools.count:
    return itertools.count(1)


def sessions(role: str, idle_s: float = 60.0) -> Sessions:
    counter = ids()
    return Sessions(role, idle_s, new_id=lambda: f"s{next(counter)}")


def test_kiosk_session_starts_with_a_touch_and_ends_when_idle() -> None:
    book = sessions("kiosk", idle_s=60)
    assert book.current() is None
    [started] = book.touch(100.0)
    assert (started.kind, started.session.session_id, started.at) == ("started", "s1", 100.0)
    assert book.touch(150.0) == []  # same shopper: the touch keeps the session alive
    assert book.expire(209.9) == []
    [ended] = book.expire(210.0)
    assert (ended.kind, ended.reason, ended.duration_ms) == ("ended", "idle", 110_000)
    assert book.current() is None


def test_shared_kiosk_never_joins_two_shoppers() -> None:
    """After the first shopper ends, the very next touch is somebody else: a new session id."""
    book = Sessions("kiosk", 60.0)
    first = book.touch(0.0)[0].session
    book.identify("cust-token-1")
    [ended] = book.end(5.0)
    assert ended.reason == "shopper" and ended.session.session_id == first.session_id
    [started] = book.touch(6.0)
    second = started.session
    assert second.session_id != first.session_id
    assert second.customer is None  # the first shopper's identity does not carry over
    [timed_out] = book.expire(66.0)  # and after an idle timeout too
    assert timed_out.session == second
    third = book.touch(67.0)[0].session
    assert third.session_id not in (first.session_id, second.session_id)


def test_mirror_session_runs_while_garments_are_in_the_cabin() -> None:
    book = sessions("mirror", idle_s=120)
    [started] = book.arrived(10.0)
    assert started.kind == "started"
    assert book.arrived(11.0) == []  # a second garment, same shopper
    assert book.expire(10_000.0) == []  # occupied: never times out
    book.emptied(10_000.0)
    assert book.expire(10_119.0) == []
    [ended] = book.expire(10_120.0)
    assert ended.reason == "empty"
    assert ended.duration_ms == 10_110_000


def test_a_garment_back_before_the_timeout_keeps_the_session() -> None:
    book = sessions("mirror", idle_s=120)
    first = book.arrived(0.0)[0].session
    book.emptied(5.0)
    assert book.arrived(100.0) == []
    assert book.current() == first


def test_shopper_ends_mirror_session_and_the_next_garment_starts_a_new_one() -> None:
    book = sessions("mirror", idle_s=120)
    book.arrived(0.0)
    [ended] = book.end(30.0)
    assert ended.reason == "shopper"
    assert book.end(31.0) == []  # nothing left to end
    [started] = book.arrived(40.0)
    assert started.session.session_id == "s2"


def test_identify_needs_a_running_session() -> None:
    book = sessions("kiosk")
    assert book.identify("cust-token-1") is None
    book.touch(0.0)
    assert book.identify("cust-token-1").customer == "cust-token-1"


def test_feedback_rates_the_running_or_just_ended_session() -> None:
    book = sessions("kiosk")
    assert book.to_rate(0.0) is None
    session = book.touch(0.0)[0].session
    assert book.to_rate(1.0) == session
    book.end(2.0)
    assert book.to_rate(2.0 + SURVEY_WINDOW_S) == session
    assert book.to_rate(2.1 + SURVEY_WINDOW_S) is None


def test_role_is_checked() -> None:
    with pytest.raises(ValueError, match="role"):
        Sessions("tablet", 60.0)


def test_real_session_ids_are_random_and_distinct() -> None:
    book = Sessions("kiosk", 5.0)
    seen = set()
    for n in range(50):
        seen.add(book.touch(n * 10.0)[0].session.session_id)
        book.end(n * 10.0 + 1)
    assert len(seen) == 50 and all(len(s) == 32 for s in seen)


@given(
    st.lists(
        st.tuples(st.sampled_from(["touch", "arrived", "emptied", "end", "expire"]), st.floats(0, 1000)), max_size=60
    )
)
def test_any_sequence_keeps_sessions_well_formed(actions: list[tuple[str, float]]) -> None:
    """Whatever happens, starts and ends alternate and every ended session had started."""
    book = sessions("mirror", idle_s=30)
    now = 0.0
    running: str | None = None
    for action, step in actions:
        now += step
        for change in getattr(book, action)(now) or []:
            if change.kind == "started":
                assert running is None
                running = change.session.session_id
            else:
                assert change.session.session_id == running and change.duration_ms >= 0
                running = None
        assert (book.current().session_id if book.current() else None) == running

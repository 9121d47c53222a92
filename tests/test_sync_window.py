"""The send window (pure go-back-N) and the status codec of contract.topics (acks: tests/test_acks.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import topics
from sync.window import SendWindow


def test_window_fills_to_its_size_and_acks_free_it() -> None:
    window = SendWindow(acked=10, size=2, timeout_s=5)
    window.sent(11, 20, now=0)
    window.sent(21, 25, now=1)
    assert not window.has_room and window.next_after == 25
    assert window.acknowledge(20)
    assert window.has_room and window.in_flight == 1 and window.next_after == 25


def test_partial_ack_trims_the_oldest_batch_and_stale_acks_change_nothing() -> None:
    window = SendWindow(acked=0, size=4, timeout_s=5)
    window.sent(1, 10, now=0)
    assert window.acknowledge(4) and window.in_flight == 1
    assert not window.acknowledge(3) and window.acked == 4
    assert window.acknowledge(10) and window.in_flight == 0 and window.next_after == 10


def test_timeout_rewinds_to_one_batch_then_the_limit_doubles_back() -> None:
    window = SendWindow(acked=0, size=8, timeout_s=5)
    for first in range(1, 9):
        window.sent(first, first, now=first)
    assert not window.expired(5.9) and window.expired(6.0)
    window.rewind()
    assert window.next_after == 0 and window.limit == 1
    window.sent(1, 1, now=7)
    assert not window.has_room  # while HQ is silent, only one batch is re-sent per timeout
    assert window.acknowledge(1) and window.limit == 2


def test_rearm_restarts_the_timers() -> None:
    window = SendWindow(acked=0, size=2, timeout_s=5)
    window.sent(1, 3, now=0)
    window.rearm(now=100)
    assert not window.expired(104) and window.expired(105)


def test_a_batch_that_does_not_follow_is_refused() -> None:
    window = SendWindow(acked=5, size=2, timeout_s=5)
    with pytest.raises(ValueError, match="does not follow"):
        window.sent(3, 9, now=0)


@given(st.lists(st.tuples(st.sampled_from(["send", "ack", "tick"]), st.integers(1, 50)), max_size=80))
def test_window_invariants_hold_for_any_sequence(steps: list[tuple[str, int]]) -> None:
    window = SendWindow(acked=0, size=3, timeout_s=10)
    now, last_seq = 0.0, 0
    for action, n in steps:
        if action == "send" and window.has_room:
            first = window.next_after + 1
            window.sent(first, first + n - 1, now)
            last_seq = max(last_seq, first + n - 1)
        elif action == "ack":
            window.acknowledge(min(n, last_seq))
        else:
            now += n
            if window.expired(now):
                window.rewind()
        assert window.in_flight <= window.limit <= window.size
        assert window.next_after >= window.acked


def test_topics_round_trip() -> None:
    device = topics.DeviceTopics("berlin-01", "mirror-03")
    assert device.client_id == "berlin-01-mirror-03"
    assert topics.parse(device.events) == topics.Topic("berlin-01", "mirror-03", "events")
    assert topics.parse(device.downlink("config")) == topics.Topic("berlin-01", "mirror-03", "config")
    assert topics.parse(device.downlink("catalog")) == topics.Topic("berlin-01", None, "catalog")
    assert topics.parse("touchpoint/v1/Berlin/x/events") is None
    assert topics.parse("touchpoint/v1/a/b/c/events") is None


def test_status_codec() -> None:
    status = topics.Status("online", "2026-11-23T10:00:00.000Z", 3, 1.5, 9, 6, 0, [[2, 3]])
    assert topics.decode_status(status.encode())["backlog"] == 3
    assert topics.decode_status(topics.OFFLINE_WILL) == {"state": "offline"}
    with pytest.raises(topics.PayloadError):
        topics.decode_status(b'{"state": "asleep"}')


@given(st.binary(max_size=200))
def test_the_status_decoder_raises_only_our_error(payload: bytes) -> None:
    try:
        topics.decode_status(payload)
    except topics.PayloadError:
        pass

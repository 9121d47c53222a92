"""Signed acks: the contract's codec and keys (contract.acks) and what the agent makes of them (sync.acks)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import acks
from sync.acks import count, decide

SECRET = "an-hq-secret-of-at-least-32-characters"
KEY = acks.device_key(SECRET, "berlin-01", "mirror-03")


def signed(upto: int, at_us: int = 1_000, ranges: tuple[acks.Range, ...] = (), key: str = KEY) -> bytes:
    return acks.Ack(upto, at_us, ranges).encode(key, "berlin-01", "mirror-03")


def test_keys_are_per_device_and_per_secret() -> None:
    assert acks.is_key(KEY)
    others = {
        acks.device_key(SECRET, "berlin-01", "mirror-04"),
        acks.device_key(SECRET, "berlin-0", "1/mirror-03"),  # the separator is inside the message, not a join
        acks.device_key(SECRET + "x", "berlin-01", "mirror-03"),
    }
    assert KEY not in others and len(others) == 3
    # What deploy/mosquitto/add-device computes with openssl: HMAC-SHA256(secret, "STORE/DEVICE").
    assert KEY == acks.device_key(SECRET, "berlin-01", "mirror-03")


def test_a_signed_ack_round_trips_with_its_ranges() -> None:
    payload = signed(7, 123, ((9, 12), (20, 20)))
    assert set(json.loads(payload)) == {"upto", "ranges", "at_us", "sig"}
    assert acks.decode(payload, [KEY], "berlin-01", "mirror-03") == acks.Ack(7, 123, ((9, 12), (20, 20)))


def test_during_a_rotation_either_key_is_accepted() -> None:
    new = acks.device_key("the-next-secret-of-at-least-32-chars", "berlin-01", "mirror-03")
    for key in (KEY, new):
        assert acks.decode(signed(5, key=key), [new, KEY], "berlin-01", "mirror-03").upto == 5
    with pytest.raises(acks.AckRefused) as refused:
        acks.decode(signed(5, key=KEY), [new], "berlin-01", "mirror-03")
    assert refused.value.reason == "bad-signature"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"upto": 5}', "unsigned"),  # the forged ack
        (b"{oops", "malformed"),
        (b'{"upto": -1, "at_us": 1, "ranges": [], "sig": "00"}', "malformed"),
        (b'{"upto": 5, "at_us": true, "ranges": [], "sig": "00"}', "malformed"),
        (b'{"upto": 5, "at_us": 1, "ranges": [[6, 9]], "sig": "00"}', "malformed"),  # adjacent to upto
        (b'{"upto": 5, "at_us": 1, "ranges": [[9, 7]], "sig": "00"}', "malformed"),
        (b'{"upto": 5, "at_us": 1, "ranges": [], "sig": "00"}', "bad-signature"),
    ],
)
def test_anything_but_a_valid_signature_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(acks.AckRefused) as refused:
        acks.decode(payload, [KEY], "berlin-01", "mirror-03")
    assert refused.value.reason == reason


def test_a_signature_covers_every_field_and_the_device() -> None:
    document = json.loads(signed(5, 100, ((8, 9),)))
    for field, value in (("upto", 6), ("at_us", 101), ("ranges", [[8, 10]])):
        with pytest.raises(acks.AckRefused, match="bad-signature"):
            acks.decode(json.dumps({**document, field: value}).encode(), [KEY], "berlin-01", "mirror-03")
    with pytest.raises(acks.AckRefused, match="bad-signature"):  # replayed onto another device's topic
        acks.decode(json.dumps(document).encode(), [KEY], "berlin-01", "mirror-04")


@given(st.binary(max_size=300))
def test_the_decoder_raises_only_ack_refused(payload: bytes) -> None:
    try:
        acks.decode(payload, [KEY], "berlin-01", "mirror-03")
    except acks.AckRefused:
        pass


# -- what the agent does -------------------------------------------------------------------------


def test_progress_is_taken_from_any_signed_ack_old_or_new() -> None:
    assert decide(acks.Ack(50, at_us=10), believed=20, deleted_upto=20, newest_at_us=99).upto == 50
    stale = decide(acks.Ack(10, at_us=10), believed=20, deleted_upto=20, newest_at_us=99)
    assert (stale.upto, stale.rewind, stale.fresh, stale.lost) == (20, False, False, ())


def test_a_newer_lower_ack_means_hq_lost_data_a_replay_does_not() -> None:
    lost = decide(acks.Ack(100, at_us=200), believed=150, deleted_upto=150, newest_at_us=100)
    assert (lost.upto, lost.rewind, lost.fresh, lost.lost) == (150, True, True, ((101, 150),))
    replay = decide(acks.Ack(100, at_us=50), believed=150, deleted_upto=150, newest_at_us=100)
    assert not replay.rewind and not replay.fresh and replay.upto == 150


def test_gaps_the_outbox_no_longer_holds_are_skipped_so_it_drains() -> None:
    # HQ restored a backup: it lacks 101..150, which this device deleted, and holds 151..400.
    ack = acks.Ack(100, at_us=300, ranges=((151, 400),))
    decision = decide(ack, believed=150, deleted_upto=150, newest_at_us=200)
    assert (decision.upto, decision.rewind, decision.lost) == (400, False, ((101, 150),))
    assert count(decision.lost) == 50


def test_a_gap_the_outbox_still_holds_waits_for_the_resend() -> None:
    ack = acks.Ack(100, at_us=300, ranges=((160, 400),))  # 141..159 are still in the outbox
    decision = decide(ack, believed=140, deleted_upto=140, newest_at_us=200)
    assert decision.upto == 140 and decision.lost == ((101, 140),)
    caught_up = decide(acks.Ack(400, at_us=400), believed=140, deleted_upto=140, newest_at_us=300)
    assert caught_up.upto == 400 and caught_up.lost == ()


@given(
    upto=st.integers(0, 60),
    cuts=st.lists(st.integers(1, 120), max_size=8, unique=True),
    deleted=st.integers(0, 120),
)
def test_nothing_hq_lacks_is_deleted_unless_it_is_gone_already(upto: int, cuts: list[int], deleted: int) -> None:
    """The agent's outbox deletes up to ``decision.upto``: every seq in between must be at HQ or
    already deleted, and ``lost`` must be exactly the deleted seqs HQ lacks."""
    bounds = sorted(c + upto for c in cuts)
    ranges = tuple((lo, hi) for lo, hi in zip(bounds[::2], bounds[1::2]) if lo < hi)
    ranges = tuple(r for n, r in enumerate(ranges) if n == 0 or r[0] > ranges[n - 1][1] + 1)
    ranges = tuple(r for r in ranges if r[0] > upto + 1)
    at_hq = set(range(1, upto + 1)) | {seq for lo, hi in ranges for seq in range(lo, hi + 1)}
    decision = decide(acks.Ack(upto, 2, ranges), believed=deleted, deleted_upto=deleted, newest_at_us=1)
    assert all(seq in at_hq or seq <= deleted for seq in range(1, decision.upto + 1))
    lost = {seq for lo, hi in decision.lost for seq in range(lo, hi + 1)}
    assert lost == {seq for seq in range(1, deleted + 1) if seq not in at_hq}

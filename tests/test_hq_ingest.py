"""Parsing uplink messages: each event is stored or dead-lettered with a reason; nothing raises."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from contract.envelope import MAX_EVENT_BYTES, make_event
from hq.core.intake import DEAD_RAW_BYTES, MAX_PAYLOAD_BYTES, Refused, parse_events, parse_status
from hq.core.records import DeviceBatch, DeviceStatus
from tests.conftest import SOURCE
from tests.hq_support import DEVICE, NOW, events, events_topic, payload

TOPIC = events_topic()


def split(topic: str, body: bytes) -> DeviceBatch:
    batch = parse_events(topic, body, NOW)
    assert isinstance(batch, DeviceBatch), batch
    return batch


def test_a_valid_batch_becomes_rows_with_analytics_columns() -> None:
    sent = events([1, 2])
    sent[1]["data"]["customer"] = "c-42"
    batch = split(TOPIC, payload(sent))
    assert [r.seq for r in batch.events] == [1, 2] and batch.seqs == (1, 2) and not batch.dead
    row = batch.events[1]
    assert (row.store, row.device, row.channel) == ("test-store", "mirror-1", "store")
    assert (row.session_id, row.customer, row.gtin) == ("s2", "c-42", "80614141123458")
    assert json.loads(row.data) == sent[1]["data"] and row.received_at == NOW


def test_invalid_events_are_dead_lettered_and_the_valid_rest_kept() -> None:
    good = events([1, 2, 3, 4, 5, 6])
    good[1].pop("time")
    good[2]["type"] = "touchpoint.tag.teleported"
    good[3]["source"] = "/stores/test-store/devices/mirror-2"
    good[4]["data"]["blob"] = "x" * MAX_EVENT_BYTES
    batch = split(TOPIC, payload([*good, "not an event"]))
    assert [r.seq for r in batch.events] == [1, 6]
    reasons = [d.reason for d in batch.dead]
    assert reasons[0].startswith("time:") and reasons[1].startswith("type:")
    assert reasons[2].startswith("source does not match topic")
    assert reasons[3].startswith("size:") and reasons[4].startswith("event:")
    assert len(batch.dead[3].raw) == DEAD_RAW_BYTES
    # Refused events of this device still close their seq, or the edge would re-send them forever;
    # the one claiming another device's source does not.
    assert batch.seqs == (1, 2, 3, 5, 6)


def test_unreadable_payloads_are_refused_whole_with_the_raw_bytes() -> None:
    for body, reason in [
        (b'[{"id": ', "json:"),
        (b"\xff\xfe", "json:"),
        (b"[NaN]", "json:"),
        (b"{}", "json:"),
        (b"[" + b" " * MAX_PAYLOAD_BYTES + b"]", "size:"),
    ]:
        refused = parse_events(TOPIC, body, NOW)
        assert isinstance(refused, Refused)
        (letter,) = refused.dead
        assert letter.reason.startswith(reason) and letter.raw == body[:DEAD_RAW_BYTES]
    assert isinstance(parse_events("touchpoint/v1/Bad/x/events", b"[]", NOW), Refused)


def test_text_postgres_cannot_hold_is_dead_lettered() -> None:
    nul, surrogate = events([1, 2])
    nul["data"]["session_id"] = "a\x00b"
    surrogate["data"]["session_id"] = "\ud800"
    body = json.dumps([nul, surrogate]).encode()
    batch = split(TOPIC, body)
    assert not batch.events and [d.kind for d in batch.dead] == ["unicode", "unicode"]


def test_status_messages() -> None:
    topic = "touchpoint/v1/test-store/mirror-1/status"
    status = parse_status(topic, b'{"state": "online", "backlog": 7, "last_seq": 9}', NOW)
    assert status is not None and not isinstance(status, Refused)
    assert (status.device, status.state, status.backlog) == (DEVICE, "online", 7)
    will = parse_status(topic, b'{"state": "offline"}', NOW)
    assert will is not None and not isinstance(will, Refused) and will.backlog is None
    assert parse_status(topic, b"", NOW) is None
    for bad in (b'{"state": "asleep"}', b"[1]", b'{"state": "online", "x": NaN}'):
        assert isinstance(parse_status(topic, bad, NOW), Refused)


def test_digital_events_on_a_device_topic_are_refused() -> None:
    web = make_event("page.viewed", {"anonymous_id": "a1"}, source="/channels/web/shop")
    batch = split(TOPIC, payload([web]))
    assert not batch.events and batch.dead[0].reason.startswith("source does not match topic")
    assert batch.seqs == ()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
mutated_events = st.builds(
    lambda event, key, value, drop: ({k: v for k, v in {**event, key: value}.items() if k != drop}),
    st.sampled_from(events([1, 2, 3])),
    st.sampled_from(["id", "seq", "time", "type", "source", "data", "specversion"]) | st.text(max_size=12),
    json_values,
    st.sampled_from(["", "id", "data", "seq", "specversion"]),
)


@given(st.lists(mutated_events | json_values, max_size=8))
def test_every_element_is_stored_or_dead_lettered(batch: list[object]) -> None:
    result = split(TOPIC, json.dumps(batch).encode())
    assert len(result.events) + len(result.dead) == len(batch)
    assert all(r.seq is not None and r.source == SOURCE for r in result.events)
    assert all(d.reason and d.topic == TOPIC for d in result.dead)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(body: bytes) -> None:
    result = parse_events(TOPIC, body, NOW)
    assert isinstance(result, (Refused, DeviceBatch))
    status = parse_status("touchpoint/v1/s/d/status", body, NOW)
    assert status is None or isinstance(status, (Refused, DeviceStatus))

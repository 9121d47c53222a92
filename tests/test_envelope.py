"""The CloudEvents envelope: what the edge writes, HQ accepts; what HQ refuses, it says why."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given
from hypothesis import strategies as st

from contract.envelope import EnvelopeError, cloudevents_objection, make_event, validate

SOURCE = "/stores/berlin-01/devices/mirror-03"
GOOD = make_event(
    "tag.arrived",
    {"session_id": "s1", "zone": "cabin-3", "epc": "3074257BF7194E4000001A85", "gtin": "80614141123458", "rssi": -52},
    source=SOURCE,
    seq=1042,
)


def test_made_event_is_valid_cloudevent_with_uuid7_id() -> None:
    assert validate(copy.deepcopy(GOOD)) == GOOD
    assert GOOD["type"] == "touchpoint.tag.arrived"
    assert GOOD["id"][14] == "7"  # UUID version nibble
    assert GOOD["time"].endswith("Z")


def test_ids_sort_by_creation_time() -> None:
    ids = [make_event("session.started", {"session_id": "s"}, source=SOURCE)["id"] for _ in range(50)]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.pop("id"), "id"),
        (lambda e: e.update(subject=""), "cloudevents"),
        (lambda e: e.update(specversion="0.3"), "specversion"),
        (lambda e: e.update(type="touchpoint.tag.teleported"), "type"),
        (lambda e: e.update(type="com.example.tag.arrived"), "type"),
        (lambda e: e.update(time="yesterday"), "time"),
        (lambda e: e.pop("seq"), "seq"),
        (lambda e: e.update(seq=-1), "seq"),
        (lambda e: e.update(source="/somewhere/else"), "source"),
        (lambda e: e.update(data="text"), "data"),
        (lambda e: e["data"].pop("epc"), "data.epc"),
    ],
)
def test_invalid_events_are_refused_with_a_reason(change, reason: str) -> None:
    event = copy.deepcopy(GOOD)
    change(event)
    with pytest.raises(EnvelopeError) as caught:
        validate(event)
    assert caught.value.reason.startswith(reason)


def test_feedback_scores_are_checked_against_their_scale() -> None:
    source = "/channels/web"
    ok = make_event(
        "feedback.submitted",
        {"anonymous_id": "a", "touchpoint": "web/checkout", "scale": "csat", "score": 5},
        source=source,
    )
    assert validate(ok)
    with pytest.raises(EnvelopeError, match="out of range"):
        make_event(
            "feedback.submitted", {"session_id": "s", "touchpoint": "t", "scale": "nps", "score": 11}, source=SOURCE
        )


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_any_json_value_is_either_valid_or_an_envelope_error(value) -> None:
    try:
        validate(value)
    except EnvelopeError:
        pass


SDK_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.lists(st.integers(), max_size=2)


@given(
    st.dictionaries(
        st.sampled_from(["subject", "datacontenttype", "dataschema", "seq", "x", "Bad", "a-b", ""])
        | st.text(max_size=4),
        SDK_VALUES,
        max_size=5,
    )
)
def test_cloudevents_objection_is_what_the_sdk_says_per_event(extra) -> None:
    """The per-shape answer equals the SDK's own answer for this very event."""
    attributes = {
        "specversion": "1.0",
        "id": "i",
        "source": "/channels/web",
        "type": "touchpoint.cart.added",
        "time": datetime(2026, 11, 23, tzinfo=timezone.utc),
    }
    attributes.update({k: v for k, v in extra.items() if k not in attributes and k not in ("data", "data_base64")})
    try:
        CloudEvent(dict(attributes))
        expected = None
    except BaseCloudEventException as error:
        expected = str(error)
    assert cloudevents_objection(attributes) == expected

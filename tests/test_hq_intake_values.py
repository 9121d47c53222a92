"""Payload values at intake (issue 13): quantities, prices, identifiers, EPCs and labels that no real
event carries are dead letters naming the field, over MQTT and HTTP alike; any JSON value in any
field is stored or refused with a reason, never an exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.envelope import EnvelopeError, make_event, validate
from contract.values import IDENTIFIERS, MAX_TEXT
from hq.core.intake import parse_events, to_row
from hq.core.records import DeviceBatch
from tests.hq_support import DEVICE, NOW, payload
from tests.hq_web_support import API_TOKEN, WEB_TOKEN, bearer, hq_app

EDGE = f"/stores/{DEVICE.store}/devices/{DEVICE.device}"
WEB = "/channels/web/shop"
LONG = "x" * (MAX_TEXT + 1)
ITEM = {"gtin": "04012345010008", "qty": 1, "price": "49.95"}
# One sound event of every type, with every field its rules look at (an edge event has a seq).
SOUND: dict[str, dict[str, Any]] = {
    "session.started": {"session_id": "s-1"},
    "session.ended": {"session_id": "s-1", "duration_ms": 5000, "reason": "timeout"},
    "tag.arrived": {"session_id": "s-1", "zone": "cabin-1", "epc": "30AB", "gtin": None, "rssi": -50},
    "tag.departed": {
        "session_id": "s-1",
        "zone": "cabin-1",
        "epc": "30AB",
        "gtin": "04012345010008",
        "rssi": -50,
        "dwell_ms": 900,
    },
    "product.viewed": {"session_id": "s-1", "gtin": "04012345010008", "via": "tag"},
    "size.requested": {
        "session_id": "s-1",
        "gtin": "04012345010008",
        "request_id": "r-1",
        "requested_gtin": "04012345010015",
        "zone": "cabin-1",
    },
    "size.fulfilled": {"session_id": "s-1", "gtin": "04012345010008", "request_id": "r-1"},
    "customer.identified": {"session_id": "s-1", "customer": "cust-00042", "method": "qr"},
    "handoff.created": {"session_id": "s-1", "token": "t-1", "gtins": ["04012345010008"]},
    "handoff.redeemed": {"token": "t-1", "anonymous_id": "a-1", "customer": "cust-00042"},
    "feedback.submitted": {"session_id": "s-1", "touchpoint": "mirror", "scale": "nps", "score": 9},
    "wishlist.added": {"anonymous_id": "a-1", "gtin": "04012345010008"},
    "cart.added": {"anonymous_id": "a-1", "gtin": "04012345010008"},
    "purchase.completed": {
        "order_id": "o-1",
        "customer": "cust-00042",
        "store": "berlin-01",
        "items": [ITEM, {"gtin": "04012345010015", "qty": 2, "price": 0}],
    },
    "page.viewed": {"anonymous_id": "a-1", "page": "/"},
    "customer.logged_in": {"anonymous_id": "a-1", "customer": "cust-00042"},
}
FIELDS = sorted({field for data in SOUND.values() for field in data} | {"qty", "price", "x"})


def event(name: str, **data: Any) -> dict[str, Any]:
    """A sound event of ``name`` with ``data`` changed; from the edge when that is where it comes from."""
    source = EDGE if name.startswith(("session.", "tag.", "size.", "handoff.created", "customer.id")) else WEB
    made = make_event(name, SOUND[name], source=source, seq=1 if source == EDGE else None, time=NOW)
    made["data"].update(data)
    return made


def reason_of(made: dict[str, Any]) -> str:
    with pytest.raises(EnvelopeError) as caught:
        validate(made)
    return caught.value.reason


def test_every_sound_event_is_valid() -> None:
    for name in SOUND:
        assert validate(event(name))


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("purchase.completed", {"items": [{**ITEM, "qty": -5}]}, "data.items[0].qty: must be a whole number"),
        ("purchase.completed", {"items": [{**ITEM, "qty": 0}]}, "data.items[0].qty"),
        ("purchase.completed", {"items": [{**ITEM, "qty": 1.5}]}, "data.items[0].qty"),
        ("purchase.completed", {"items": [{**ITEM, "qty": True}]}, "data.items[0].qty"),
        ("purchase.completed", {"items": [ITEM, {**ITEM, "price": "-1e9"}]}, "data.items[1].price: must be a non-neg"),
        ("purchase.completed", {"items": [{**ITEM, "price": -0.01}]}, "data.items[0].price"),
        ("purchase.completed", {"items": [{**ITEM, "price": "1e9"}]}, "data.items[0].price"),
        ("purchase.completed", {"items": [{**ITEM, "price": None}]}, "data.items[0].price"),
        ("purchase.completed", {"items": [{"gtin": "04012345010008", "qty": 1}]}, "data.items[0].price: required"),
        ("purchase.completed", {"items": [{**ITEM, "gtin": 4012345010008}]}, "data.items[0].gtin: must be a string"),
        ("purchase.completed", {"items": "all"}, "data.items: must be a list"),
        ("purchase.completed", {"items": [7]}, "data.items[0]: must be an object"),
        ("purchase.completed", {"customer": 42}, "data.customer: must be a string, not a number"),
        ("purchase.completed", {"order_id": LONG}, f"data.order_id: longer than {MAX_TEXT} characters"),
        ("customer.logged_in", {"customer": ""}, "data.customer: must not be empty"),
        ("customer.logged_in", {"anonymous_id": ["a"]}, "data.anonymous_id: must be a string, not a list"),
        ("handoff.redeemed", {"token": None}, "data.token: must be a string, not null"),
        ("size.fulfilled", {"request_id": {"id": 1}}, "data.request_id: must be a string, not an object"),
        ("session.started", {"session_id": LONG}, "data.session_id: longer than"),
        ("tag.arrived", {"epc": ""}, "data.epc: must not be empty"),
        ("tag.arrived", {"epc": 12}, "data.epc: must be a string"),
        ("tag.arrived", {"gtin": 80614141123458}, "data.gtin: must be a string, not a number (or null)"),
        ("feedback.submitted", {"touchpoint": "x" * 8192}, "data.touchpoint: longer than"),
        ("handoff.created", {"gtins": ["04012345010008", LONG]}, "data.gtins[1]: longer than"),
        ("handoff.created", {"gtins": "04012345010008"}, "data.gtins: must be a list"),
    ],
)
def test_values_no_real_event_carries_are_refused_naming_the_field(name: str, change: dict, reason: str) -> None:
    assert reason_of(event(name, **change)).startswith(reason)


def test_prices_as_the_envelope_takes_them() -> None:
    for price in ("49.95", "0", "0.5", "100", 49.95, 0, 12, "123456789012.123456"):
        assert validate(event("purchase.completed", items=[{**ITEM, "price": price}]))
    for price in ("49,95", " 1", "1.", ".5", "+1", "NaN", "1" * 13, 1e12, float("inf"), [1]):
        assert reason_of(event("purchase.completed", items=[{**ITEM, "price": price}])).startswith("data.items[0].")


def test_a_null_anonymous_id_is_a_signed_in_shopper_not_a_refusal() -> None:
    assert validate(event("page.viewed", anonymous_id=None, customer="cust-00042"))
    assert reason_of(event("page.viewed", anonymous_id="")) == "data.anonymous_id: must not be empty"


def test_every_identifier_is_bounded() -> None:
    for field in IDENTIFIERS:
        name = next(n for n, data in SOUND.items() if field in data)
        assert validate(event(name, **{field: "y" * MAX_TEXT}))
        assert reason_of(event(name, **{field: LONG})) == f"data.{field}: longer than {MAX_TEXT} characters"


def test_mqtt_and_http_intake_dead_letter_them_with_the_reason(tmp_path: Path) -> None:
    edge = [event("tag.arrived", epc=""), event("session.started")]
    edge[1]["seq"] = 2
    batch = parse_events(DEVICE.events, payload(edge), NOW)
    assert isinstance(batch, DeviceBatch) and [e.seq for e in batch.events] == [2]
    assert [d.reason for d in batch.dead] == ["data.epc: must not be empty"] and batch.seqs == (1, 2)

    sent = [
        event("purchase.completed", items=[{**ITEM, "qty": -5, "price": "-1e9"}]),
        event("customer.logged_in", customer=42),
        event("page.viewed"),
    ]
    with hq_app(tmp_path) as app:
        client = app.test_client()
        answer = client.post("/v1/events", json=sent, headers=bearer(WEB_TOKEN))
        assert answer.status_code == 207
        body = answer.get_json()
        assert body["accepted"] == [sent[2]["id"]]
        assert [r["reason"].split(":")[0] for r in body["rejected"]] == ["data.items[0].qty", "data.customer"]
        letters = client.get("/v1/dead-letters", headers=bearer(API_TOKEN)).get_json()
        assert sorted(d["reason"].split(":")[0] for d in letters) == ["data.customer", "data.items[0].qty"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(SOUND)),
    changes=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
    item=st.dictionaries(st.sampled_from(["gtin", "qty", "price", "x"]), JSON, max_size=4),
)
def test_any_json_value_in_any_field_is_stored_or_refused_with_its_reason(
    name: str, changes: dict[str, Any], item: dict[str, Any]
) -> None:
    made = event(name, **changes)
    if "items" in made["data"] and isinstance(made["data"]["items"], list):
        made["data"]["items"] = [*made["data"]["items"], {**ITEM, **item}]
    raw = json.dumps(made)
    try:
        row = to_row(copy.deepcopy(made), raw, DEVICE if made["source"] == EDGE else None, NOW)
    except EnvelopeError as error:
        field, _, why = error.reason.partition(": ")
        assert field and why and field == field.strip()  # "data.items[1].qty: must be ...", "unicode: ..."
        return
    assert row.id == made["id"]

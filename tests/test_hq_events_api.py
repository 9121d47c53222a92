"""``POST /v1/events``: token per channel, the MQTT validation rules, idempotency, dead letters,
limits; and the example web-shop client against a real HQ server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.envelope import make_event, parse_time
from hq.core.intake import to_row
from hq.storage import Storage
from hq.web.events_api import MAX_BATCH_EVENTS, MAX_BODY_BYTES
from tests.hq_dataset import fuzzed_data
from tests.hq_web_support import API_TOKEN, POS_TOKEN, WEB_TOKEN, bearer, hq_app


def web_event(name: str = "page.viewed", **data: Any) -> dict[str, Any]:
    return make_event(name, {"anonymous_id": "anon-1", **data}, source="/channels/web/shop")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with hq_app(tmp_path) as app:
        yield app


@pytest.fixture
def storage(app: Flask) -> Storage:
    return app.extensions["hq.storage"]


def stored_ids(storage: Storage) -> list[str]:
    return sorted(row[0] for row in storage.fetchall("SELECT id FROM events"))


def test_one_event_is_stored_once_and_a_resend_is_a_duplicate(client: FlaskClient, storage: Storage) -> None:
    event = web_event()
    first = client.post("/v1/events", json=event, headers=bearer(WEB_TOKEN))
    assert first.status_code == 200
    assert first.get_json() == {"accepted": [event["id"]], "duplicates": [], "rejected": []}
    again = client.post("/v1/events", json=[event, event], headers=bearer(WEB_TOKEN))
    assert again.get_json() == {"accepted": [], "duplicates": [event["id"], event["id"]], "rejected": []}
    assert stored_ids(storage) == [event["id"]]
    (channel, anon) = storage.fetchall("SELECT channel, anonymous_id FROM events")[0]
    assert (channel, anon) == ("web", "anon-1")


def test_a_batch_keeps_its_valid_events_and_says_why_others_were_refused(client: FlaskClient, storage: Storage) -> None:
    good = web_event("cart.added", gtin="04012345010008")
    no_gtin = {**web_event("cart.added", gtin="x"), "data": {"anonymous_id": "anon-1"}}
    pos_event = make_event("purchase.completed", {"order_id": "1", "items": []}, source="/channels/pos/till-1")
    edge = make_event("session.started", {"session_id": "s"}, source="/stores/s1/devices/mirror-1", seq=1)
    answer = client.post("/v1/events", json=[good, no_gtin, pos_event, edge, "text"], headers=bearer(WEB_TOKEN))
    assert answer.status_code == 207
    body = answer.get_json()
    assert body["accepted"] == [good["id"]]
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert [r["id"] for r in body["rejected"]] == [no_gtin["id"], pos_event["id"], edge["id"], None]
    assert reasons[1] == "data.gtin: required for cart.added"
    assert "channel of this token" in reasons[2] and "channel of this token" in reasons[3]
    assert reasons[4] == "event: must be a JSON object"
    letters = storage.dead_letters()
    assert len(letters) == 4 and {d.topic for d in letters} == {"POST /v1/events"}
    assert {d.event_id for d in letters} == {no_gtin["id"], pos_event["id"], edge["id"], None}
    assert stored_ids(storage) == [good["id"]]


def test_the_pos_token_sends_pos_events_and_all_refused_is_422(client: FlaskClient, storage: Storage) -> None:
    sale = make_event(
        "purchase.completed",
        {
            "order_id": "7",
            "items": [{"gtin": "04012345010008", "qty": 1, "price": "49.95"}],
            "store": "berlin-01",
            "customer": "cust-1",
        },
        source="/channels/pos/berlin-01/till-2",
    )
    assert client.post("/v1/events", json=sale, headers=bearer(POS_TOKEN)).status_code == 200
    assert storage.fetchall("SELECT store, customer FROM events") == [("berlin-01", "cust-1")]
    refused = client.post("/v1/events", json=web_event(), headers=bearer(POS_TOKEN))
    assert refused.status_code == 422 and refused.get_json()["accepted"] == []


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), bearer(API_TOKEN), {"Authorization": WEB_TOKEN}])
def test_without_the_channel_token_nothing_is_stored(
    client: FlaskClient, storage: Storage, headers: dict[str, str]
) -> None:
    answer = client.post("/v1/events", json=web_event(), headers=headers)
    assert answer.status_code == 401 and "Bearer" in answer.headers["WWW-Authenticate"]
    assert stored_ids(storage) == [] and storage.dead_letters() == []


def test_limits_and_bad_json(client: FlaskClient, storage: Storage) -> None:
    too_many = [web_event() for _ in range(MAX_BATCH_EVENTS + 1)]
    assert client.post("/v1/events", json=too_many, headers=bearer(WEB_TOKEN)).status_code == 413
    big = json.dumps([web_event(page="x" * 1000) for _ in range(MAX_BODY_BYTES // 1000 + 1)])
    answer = client.post("/v1/events", data=big, headers=bearer(WEB_TOKEN), content_type="application/json")
    assert answer.status_code == 413 and "1048576" in answer.get_json()["error"]
    for body in (b"{", b"\xff\xfe", b'{"a": NaN}'):
        bad = client.post("/v1/events", data=body, headers=bearer(WEB_TOKEN), content_type="application/json")
        assert bad.status_code == 400 and bad.get_json()["error"].startswith("json:")
    assert stored_ids(storage) == []


def test_digital_events_stitch_to_the_store_visit(client: FlaskClient, storage: Storage) -> None:
    """A hand-off from a mirror, redeemed on the web by a shopper who then logs in: one journey."""
    store_source = "/stores/berlin-01/devices/mirror-01"
    visit = [
        make_event("session.started", {"session_id": "cab-1"}, source=store_source, seq=1),
        make_event("handoff.created", {"session_id": "cab-1", "token": "h-1", "gtins": []}, source=store_source, seq=2),
    ]
    storage.store_events([to_row(e, json.dumps(e), None, parse_time(e["time"])) for e in visit])
    web = [
        web_event("handoff.redeemed", token="h-1", anonymous_id="anon-9"),
        web_event("customer.logged_in", anonymous_id="anon-9", customer="cust-9"),
    ]
    assert client.post("/v1/events", json=web, headers=bearer(WEB_TOKEN)).status_code == 200
    journey = client.get("/v1/customers/cust-9/journey", headers=bearer(API_TOKEN)).get_json()
    assert sorted(e["id"] for e in journey["events"]) == sorted(e["id"] for e in visit + web)
    assert {e["channel"] for e in journey["events"]} == {"store", "web"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=fuzzed_data(),
    name=st.sampled_from(
        ["page.viewed", "cart.added", "purchase.completed", "customer.logged_in", "feedback.submitted"]
    ),
)
def test_hostile_data_is_stored_or_refused_never_an_error(
    client: FlaskClient, storage: Storage, data: dict[str, Any], name: str
) -> None:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/channels/web/shop",
        "type": f"touchpoint.{name}",
        "time": "2026-11-23T10:00:00Z",
        "data": data,
    }
    body_text = json.dumps(event)
    answer = client.post("/v1/events", data=body_text, headers=bearer(WEB_TOKEN), content_type="application/json")
    if "Infinity" in body_text:  # Python writes it, JSON has no such thing: the body is refused whole
        assert answer.status_code == 400 and answer.get_json()["error"].startswith("json:")
        return
    assert answer.status_code in (200, 422)
    body = answer.get_json()
    assert len(body["accepted"]) + len(body["rejected"]) == 1
    held = storage.fetchall("SELECT COUNT(*) FROM events WHERE id = ?", (event["id"],))[0][0]
    assert held == len(body["accepted"])

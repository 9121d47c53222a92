"""The Segment HTTP Tracking API's rules at HQ: write keys, gzip, limits, refusals, privacy, time, hand-offs.

Through the real app and its SQLite storage; the SDK tests (test_segment_clients.py,
test_segment_browser.py) show the same against a running process.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hq.core.segment import SegmentRules, event_time, handoff_token, to_events
from hq.storage import Storage
from tests.hq_web_support import WEB_TOKEN, hq_app

HANDOFF = "https://shop.example/h/"
FAR = (datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with hq_app(tmp_path, hq={"handoff_url": HANDOFF, "traits": "preferred_size, loyalty_tier"}) as made:
        yield made


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def stored(app: Flask) -> list[dict[str, Any]]:
    storage: Storage = app.extensions["hq.storage"]
    return [event for event, _ in storage.events_between(*FAR)]


def post(client: FlaskClient, path: str, body: Any, key: str | None = WEB_TOKEN, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, data=data, headers={**(basic(key) if key else {}), **headers})


def track(event: str = "Product Viewed", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "anonymousId": "anon-1", **fields}


def test_the_write_key_comes_from_basic_auth_or_the_body_and_decides_the_channel(
    client: FlaskClient, app: Flask
) -> None:
    assert post(client, "/v1/track", track(messageId="m1", properties={"sku": "1"})).status_code == 200
    assert post(client, "/v1/t", {**track(messageId="m2"), "writeKey": WEB_TOKEN}, key=None).status_code == 200
    assert {(e["id"], e["source"]) for e in stored(app)} == {
        ("m1", "/channels/web/segment"),
        ("m2", "/channels/web/segment"),
    }


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (track(), None),  # no key at all
        ({**track(), "writeKey": "wrong"}, None),
        ({**track(), "writeKey": WEB_TOKEN}, "wrong"),  # a wrong header is not rescued by the body
        (track(), ""),
    ],
)
def test_a_missing_or_wrong_write_key_is_a_401(client: FlaskClient, app: Flask, body: Any, key: str | None) -> None:
    headers = {"Authorization": "Basic !!"} if key == "" else {}
    answer = post(client, "/v1/track", body, key=key or None, **headers)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
    assert stored(app) == []


def test_a_gzip_batch_is_read_and_a_broken_one_is_a_400(client: FlaskClient, app: Flask) -> None:
    batch = {"batch": [track(messageId=f"g{i}") for i in range(3)]}
    assert (
        post(client, "/v1/batch", gzip.compress(json.dumps(batch).encode()), **{"Content-Encoding": "gzip"}).json[
            "accepted"
        ]
        == 3
    )
    assert post(client, "/v1/batch", b"not gzip", **{"Content-Encoding": "gzip"}).status_code == 400
    assert post(client, "/v1/batch", b"{}", **{"Content-Encoding": "br"}).status_code == 400
    assert len(stored(app)) == 3


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/v1/batch", b"{not json", "json"),
        ("/v1/batch", b"[1, 2]", "json"),
        ("/v1/batch", {"batch": {"type": "track"}}, "batch"),
        ("/v1/batch", {"batch": [track(properties={"x": "y" * 33_000})]}, "batch[0]"),
        ("/v1/batch", {"batch": [track(properties={"x": "y" * 30_000}) for _ in range(18)]}, "size"),
        ("/v1/track", track(properties={"x": "y" * 33_000}), "size"),
    ],
)
def test_malformed_or_oversized_bodies_are_a_400(
    client: FlaskClient, app: Flask, path: str, body: Any, reason: str
) -> None:
    answer = post(client, path, body)
    assert answer.status_code == 400 and answer.json["error"].startswith(reason), answer.json
    assert stored(app) == []


def test_an_oversized_gzip_body_is_refused_by_what_it_inflates_to(client: FlaskClient) -> None:
    batch = {"batch": [track(properties={"x": "y" * 30_000}) for _ in range(20)]}  # 600 KB, a few KB gzipped
    body = gzip.compress(json.dumps(batch).encode())
    assert len(body) < 10_000
    assert post(client, "/v1/batch", body, **{"Content-Encoding": "gzip"}).status_code == 400


def test_refused_messages_are_dead_lettered_with_their_reason_and_the_rest_is_kept(
    client: FlaskClient, app: Flask
) -> None:
    batch = [
        track(messageId="ok-1"),
        {"type": "track", "event": "No One", "messageId": "bad-1"},
        {"type": "track", "anonymousId": "a", "messageId": "bad-2"},
        {"type": "shout", "anonymousId": "a", "messageId": "bad-3"},
        track(messageId="x" * 65),
        track(messageId="bad-5", timestamp="yesterday"),
    ]
    answer = post(client, "/v1/batch", {"batch": batch})
    assert answer.status_code == 200 and answer.json["accepted"] == 1
    assert [r["index"] for r in answer.json["rejected"]] == [1, 2, 3, 4, 5]
    reasons = {d.reason.split(":")[0] for d in app.extensions["hq.storage"].dead_letters()}
    assert reasons == {"userId", "event", "type", "messageId", "timestamp"}
    assert {d.topic for d in app.extensions["hq.storage"].dead_letters()} == {"POST /v1/batch"}


def test_every_other_track_is_a_custom_touchpoint_never_a_dead_letter(client: FlaskClient, app: Flask) -> None:
    batch = [track("Store Locator Opened", messageId="c1"), track("Product Viewed", messageId="c2")]  # no product id
    assert post(client, "/v1/batch", {"batch": batch}).json["accepted"] == 2
    assert {(e["type"], e["data"]["event"]) for e in stored(app)} == {
        ("touchpoint.custom.tracked", "Store Locator Opened"),
        ("touchpoint.custom.tracked", "Product Viewed"),
    }
    assert app.extensions["hq.storage"].dead_letters() == []


def test_a_message_without_message_id_is_stored_once_however_often_it_comes(client: FlaskClient, app: Flask) -> None:
    message = track("Size Guide Opened", timestamp="2026-12-08T10:00:00Z")
    first = post(client, "/v1/track", message).json
    again = post(client, "/v1/track", message).json
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (1, 0, 1)
    assert [e["id"].startswith("seg-") for e in stored(app)] == [True]


def test_only_allow_listed_traits_are_kept_and_context_ip_and_user_agent_never(client: FlaskClient, app: Flask) -> None:
    context = {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0 (Secret)", "page": {"url": "https://shop.example/"}}
    identify = {
        "type": "identify",
        "userId": "cust-7",
        "anonymousId": "anon-7",
        "traits": {"email": "anna@example.com", "preferred_size": "M"},
        "context": context,
    }
    assert post(client, "/v1/identify", identify).json["accepted"] == 1
    assert post(client, "/v1/page", {"anonymousId": "anon-7", "context": context}).json["accepted"] == 1
    assert (
        post(
            client, "/v1/group", {"userId": "cust-7", "groupId": "g-1", "traits": {"loyalty_tier": "gold", "name": "X"}}
        ).json["accepted"]
        == 1
    )
    events = stored(app)
    everything = json.dumps(events)
    for secret in ("203.0.113.9", "Secret", "anna@example.com", '"X"'):
        assert secret not in everything
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["touchpoint.customer.logged_in"] == {
        "anonymous_id": "anon-7",
        "customer": "cust-7",
        "traits": {"preferred_size": "M"},
    }
    assert by_type["touchpoint.page.viewed"] == {"anonymous_id": "anon-7", "url": "https://shop.example/"}
    assert by_type["touchpoint.custom.tracked"]["traits"] == {"loyalty_tier": "gold"}


def test_alias_links_the_previous_id_to_the_user(client: FlaskClient, app: Flask) -> None:
    post(client, "/v1/alias", {"previousId": "anon-9", "userId": "cust-9", "messageId": "al-1"})
    assert [(e["type"], e["data"]["anonymous_id"], e["data"]["customer"]) for e in stored(app)] == [
        ("touchpoint.customer.logged_in", "anon-9", "cust-9")
    ]


def test_a_page_at_the_handoff_url_redeems_the_token_for_its_anonymous_id(client: FlaskClient, app: Flask) -> None:
    page = {"anonymousId": "anon-3", "messageId": "p1", "context": {"page": {"url": HANDOFF + "tok-123?utm=qr"}}}
    post(client, "/v1/p", page)
    post(client, "/v1/page", {"anonymousId": "anon-3", "properties": {"url": "https://shop.example/h2/tok-9"}})
    redeemed = [e["data"] for e in stored(app) if e["type"] == "touchpoint.handoff.redeemed"]
    assert redeemed == [{"token": "tok-123", "anonymous_id": "anon-3"}]
    post(client, "/v1/p", page)  # a retry redeems nothing twice
    assert len(stored(app)) == 3


def test_handoff_tokens_need_the_prefix_and_a_token() -> None:
    assert handoff_token(HANDOFF + "abc#top", HANDOFF) == "abc"
    assert handoff_token(HANDOFF, HANDOFF) is None
    assert handoff_token(HANDOFF + "a/b", HANDOFF) is None
    assert handoff_token(HANDOFF + "abc", "") is None


def test_time_is_the_clients_corrected_for_its_clock_skew() -> None:
    received = datetime(2026, 12, 8, 12, 0, tzinfo=timezone.utc)
    ahead = received + timedelta(hours=2)  # the device's clock runs two hours fast
    message = {"originalTimestamp": (ahead - timedelta(seconds=30)).isoformat(), "sentAt": ahead.isoformat()}
    assert event_time(message, received) == received - timedelta(seconds=30)
    batch_sent = {"timestamp": "2026-12-08T13:59:00Z"}
    assert event_time(batch_sent, received, "2026-12-08T14:00:00Z") == received - timedelta(minutes=1)
    assert event_time({"timestamp": "2026-11-01T08:00:00"}, received) == datetime(2026, 11, 1, 8, tzinfo=timezone.utc)
    assert event_time({}, received) == received
    assert event_time({"timestamp": "2027-01-01T00:00:00Z"}, received) == received  # never after receipt


def test_the_ecommerce_spec_maps_onto_touchpoint_events() -> None:
    rules = SegmentRules("web")
    now = datetime(2026, 12, 8, tzinfo=timezone.utc)

    def mapped(event: str, properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        (found,) = to_events(track(event, properties=properties, messageId="e"), rules, now)
        return found["type"].removeprefix("touchpoint."), found["data"]

    assert mapped("Products Searched", {"query": "hemd"})[1]["page"] == "search"
    assert mapped("Product List Viewed", {"category": "Hemden"})[1]["page"] == "category"
    assert mapped("Cart Viewed", {})[1]["page"] == "cart"
    assert mapped("Product Added to Wishlist", {"gtin": "0401"})[0] == "wishlist.added"
    assert mapped("Added Product", {"product_id": 7, "quantity": 3})[1] == {
        "anonymous_id": "anon-1",
        "event": "Added Product",
        "gtin": "7",
        "qty": 3,
    }
    name, order = mapped("Order Completed", {"products": [{"sku": "A", "price": 5}, {"name": "no id"}], "revenue": 5})
    assert (name, order["order_id"], order["items"], order["revenue"]) == (
        "purchase.completed",
        "e",
        [{"gtin": "A", "qty": 1, "price": 5, "sku": "A"}],
        5,
    )
    assert mapped("Order Refunded", {"order_id": "O-1"})[0] == "custom.tracked"


def test_analytics_js_can_post_from_the_shops_origin(client: FlaskClient) -> None:
    answer = client.options(
        "/v1/b", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("feedback.submitted", {"touchpoint": "t", "scale": ["nps"], "score": 9, "session_id": "s"}),
        ("product.viewed", {"gtin": "1", "via": ["tag"]}),
        ("customer.identified", {"session_id": "s", "customer": "c", "method": {"qr": 1}}),
    ],
)
def test_unhashable_enum_fields_are_refused_not_a_500(client: FlaskClient, app: Flask, name: str, data: Any) -> None:
    event = {"specversion": "1.0", "id": "e-1", "source": "/channels/web/shop", "type": f"touchpoint.{name}"}
    answer = client.post(
        "/v1/events",
        json={**event, "time": "2026-12-08T10:00:00Z", "data": data},
        headers={"Authorization": f"Bearer {WEB_TOKEN}"},
    )
    assert answer.status_code == 422, answer.text

"""What the screens need from the edge app beyond the basic API: the staff PIN rate limit per client
address, browse and suggestions, a session's own requests, the identified event, the hand-off
address from the config, and languages found from their translation files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from kiosk import create_app, i18n, shutdown
from kiosk.staff import retry_after
from sync.downlink import DownlinkStore
from sync.outbox import Outbox
from tests.kiosk_support import PIN, SHIRT_M, Clock, edge_config, edge_of, events


def test_wrong_pins_lock_out_one_client_address_with_retry_after(app: Flask, clock: Clock) -> None:
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    colleague = app.test_client()
    colleague.environ_base["REMOTE_ADDR"] = "10.0.0.8"
    for _ in range(5):
        assert guesser.post("/staff/login", data={"pin": "0000"}).status_code == 403
        clock.advance(1)
    locked = guesser.post("/staff/login", data={"pin": PIN})  # even the right PIN
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "55"
    assert "Bitte eine Minute warten" in locked.text
    assert colleague.post("/staff/login", data={"pin": PIN}).status_code == 302  # another address
    clock.advance(55)
    assert guesser.post("/staff/login", data={"pin": PIN}).status_code == 302


@given(st.lists(st.floats(0, 1000), max_size=12).map(sorted), st.floats(0, 1100))
def test_retry_after_is_never_negative_nor_longer_than_the_window(times: list[float], offset: float) -> None:
    now = (times[-1] if times else 0) + offset
    wait = retry_after(times, now, 5, 60.0)
    assert 0 <= wait <= 61
    assert (wait == 0) == (sum(1 for t in times if now - t < 60) < 5)


def test_browse_lists_one_row_per_style_and_records_nothing(app: Flask, outbox: Outbox) -> None:
    products = app.test_client().get("/api/browse?lang=en").json["products"]
    assert len(products) == len({p["style"] for p in products}) == 8
    assert products[0]["name"] == "Linen shirt" and products[0]["image_url"].startswith("/catalog/")
    assert products[0]["currency"] == "EUR"
    assert events(outbox) == []


def test_suggestions_turn_personal_once_a_consenting_customer_is_identified(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    before = client.get(f"/api/suggestions?gtin={SHIRT_M}").json
    assert before["source"] == "catalog" and not before["personal"] and len(before["products"]) == 4
    message = {
        "version": "1",
        "items": {"LS-100": ["RO-800"]},
        "segments": {"new": {"customers": 1, "top": ["KL-500"]}},
        "customers": {"c-consent-77": {"segment": "new", "sizes": ["40"]}},
    }
    store = DownlinkStore(tmp_path / "edge.db")
    try:
        store.apply("recommendations", json.dumps(message).encode())
    finally:
        store.close()
    anonymous = client.get(f"/api/suggestions?gtin={SHIRT_M}").json
    assert anonymous["source"] == "hq" and anonymous["products"][0]["style"] == "RO-800"
    client.post("/api/identify", json={"customer": "c-consent-77", "method": "app"})
    personal = client.get(f"/api/suggestions?gtin={SHIRT_M}").json
    assert personal["personal"]
    assert [(p["style"], p["size"]) for p in personal["products"][:2]] == [("RO-800", "40"), ("KL-500", "40")]


def test_the_session_carries_its_requests_and_identification_is_streamed_without_the_token(
    app: Flask, outbox: Outbox
) -> None:
    client = app.test_client()
    sub = edge_of(app).hub.subscribe()
    made = client.post("/api/requests", json={"gtin": SHIRT_M, "size": "XL"}).json
    session = client.get("/api/session").json["session"]
    assert [(r["id"], r["state"]) for r in session["requests"]] == [(made["id"], "open")]
    client.post("/api/identify", json={"customer": "c-stream-0001", "method": "qr"})
    streamed = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    identified = [m.data for m in streamed if m.event == "session" and m.data["kind"] == "identified"]
    assert identified == [
        {"kind": "identified", "session_id": session["session_id"], "reason": "qr", "zone": "cabin-1"}
    ]
    assert "c-stream-0001" not in json.dumps([m.data for m in streamed])
    assert client.post("/api/session/end").json["ended"] == session["session_id"]
    assert client.post("/api/session/touch").json["session"]["requests"] == []  # a new shopper's


def test_the_hand_off_address_comes_from_the_config(tmp_path: Path, outbox: Outbox) -> None:
    config = edge_config(tmp_path, web={"handoff_url": "https://shop.example/continue/"})
    app = create_app(config, outbox=outbox, start_readers=False)
    try:
        made = app.test_client().post("/api/handoff", json={"gtins": [SHIRT_M]}).json
        assert made["url"] == "https://shop.example/continue/" + made["token"]
    finally:
        shutdown(app)
    with pytest.raises(ValueError, match="web.handoff_url"):
        edge_config(tmp_path, web={"handoff_url": "javascript:alert(1)"})


def test_each_screen_and_the_languages_found_on_disk(app: Flask) -> None:
    assert i18n.languages() == ("de", "en")
    page = app.test_client().get("/?lang=en")
    assert 'src="/static/edge/mirror.js"' in page.text and 'hreflang="de"' in page.text
    assert ">Deutsch</a>" in page.text and ">English</a>" in page.text
    assert "lang=en" in page.headers["Set-Cookie"]
    api = app.test_client().get("/api/browse?lang=en")
    assert "Set-Cookie" not in api.headers  # only pages remember a language; the screen can forget it
